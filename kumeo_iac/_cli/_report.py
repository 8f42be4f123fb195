"""How every command prints the problems of a workflow file: one ``PATH:LINE:COL: error|warning: MESSAGE`` a line
on stderr, so `check`, `graph`, `render`, `run` and `up` say the same thing about the same file."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from pathlib import Path

from kumeo_iac.errors import Diagnostic, KumeoError, SourceSpan, sort_diagnostics

__all__ = ["emit", "emit_error", "plural", "reject_python"]


def emit(diagnostics: Iterable[Diagnostic], *, quiet: bool = False, path: Path | None = None) -> None:
    """Print diagnostics in file order; ``quiet`` keeps errors only. One problem, one line: editors and CI
    annotators parse ``PATH:LINE:COL`` line by line, so newlines inside a message are escaped."""
    for d in sort_diagnostics(diagnostics):
        if quiet and not d.is_error:
            continue
        if d.span is None and path is not None:
            d = dataclasses.replace(d, span=SourceSpan(str(path), 1, 1))
        print(d.format().replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)


def emit_error(exc: KumeoError, path: Path) -> None:
    """Print a Kumeo error the way :func:`emit` prints diagnostics (its own text when it carries none)."""
    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        emit(diagnostics, path=path)
        return
    text = str(exc)
    print(text if ": error: " in text else f"kumeo: error: {text}", file=sys.stderr)


def reject_python(command: str, paths: Iterable[str]) -> list[str]:
    """The usage errors of a command that reads `.kumeo` text only, one per `.py` path given."""
    return [f"kumeo {command}: error: {p}: `kumeo {command}` works on .kumeo files only; a Python workflow is Python "
            "code (format it with your Python formatter, e.g. `ruff format`)" for p in paths if p.endswith(".py")]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
