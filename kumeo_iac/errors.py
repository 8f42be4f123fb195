"""The one exception tree of Kumeo, and the diagnostics that validation produces.

Users catch :class:`KumeoError`; third-party errors (lark, pydantic, nats, httpx) are mapped to a subclass at the
boundary where they happen, so nobody has to import another library to handle our failures.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class SourceSpan:
    """Where a node came from in a `.kumeo` file: 1-based line and column of its first and last character."""

    path: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclasses.dataclass(frozen=True, slots=True)
class PythonSpan(SourceSpan):
    """Where a Spec node was built in Python: the file and line of the call, for diagnostics only.

    It is a position in Python code, not in `.kumeo` text, so the formatter (which orders and lays out entries by
    where they were written) ignores it.
    """


class Severity(str, enum.Enum):
    """How bad a diagnostic is; the values are what the CLI prints."""

    ERROR = "error"
    WARNING = "warning"


#: Characters that end a line for ``str.splitlines`` or are C0/C1 controls (tab aside), mapped to their escapes.
_ONE_LINE = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


@dataclasses.dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a program, printed gcc-style as ``PATH:LINE:COL: error: MESSAGE``."""

    message: str
    span: SourceSpan | None = None
    severity: Severity = Severity.ERROR
    hint: str | None = None
    code: str = "kumeo"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def format(self) -> str:
        """One line, whatever the message quotes: control and line-breaking characters of a user's text (a name
        holding ``\\x1e`` or ``\\u2028``) are written as escapes, so tools reading the output line by line see one
        diagnostic per line."""
        where = str(self.span) if self.span is not None else "<kumeo>"
        text = f"{where}: {self.severity.value}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text.translate(_ONE_LINE)

    def __str__(self) -> str:
        return self.format()


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Order diagnostics by file, line and column so output is stable and reads top to bottom."""

    def key(d: Diagnostic) -> tuple[str, int, int, str]:
        if d.span is None:
            return ("", 0, 0, d.message)
        return (d.span.path, d.span.line, d.span.column, d.message)

    return sorted(diagnostics, key=key)


class KumeoError(Exception):
    """The root of every error Kumeo raises on purpose."""


class KumeoSyntaxError(KumeoError):
    """A `.kumeo` file (or an expression) does not follow the grammar."""

    def __init__(self, message: str, span: SourceSpan | None = None, hint: str | None = None) -> None:
        self.message = message
        self.span = span
        self.hint = hint
        super().__init__(self.diagnostic.format())

    @property
    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.message, self.span, Severity.ERROR, self.hint, code="syntax")

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [self.diagnostic]


class KumeoExpressionError(KumeoSyntaxError):
    """An expression in `when`, a rule, a route or a condition does not parse or cannot be evaluated statically."""


class KumeoValidationError(KumeoError):
    """A program parses but does not make sense; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        shown = errors or self.diagnostics
        summary = "\n".join(d.format() for d in shown)
        super().__init__(summary or "invalid program")


class KumeoSpecError(KumeoError):
    """A Spec built in Python was given an argument of the wrong type or shape."""


class KumeoCompileError(KumeoError):
    """A checked Spec cannot be turned into a Plan (for example a referenced file is missing)."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        self.diagnostics = list(diagnostics)
        self.span = self.diagnostics[0].span if self.diagnostics else None
        super().__init__(message)


class KumeoDeployError(KumeoError):
    """Pulumi, the Kubernetes provider or a JetStream provider could not apply the Plan."""


class KumeoRuntimeError(KumeoError):
    """An agent worker or the local runner failed in a way the user can act on."""


class KumeoEvaluationError(KumeoRuntimeError):
    """An expression failed at run time on a concrete event (the event goes to the dead-letter subject)."""
