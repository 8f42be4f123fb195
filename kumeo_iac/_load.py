"""One way in: a `.kumeo` file or a Python workflow becomes a checked Program, or every problem with it.

Every entry point reads a workflow through this module (``kumeo check/fmt/graph/render/run/preview/up``,
``Workflow.from_file``, the Automation API), so a file means the same thing everywhere and its problems are
reported the same way: importer and validation errors are fatal, as ``PATH:LINE:COL: error: …`` on the command
line and as :class:`~kumeo_iac.errors.KumeoValidationError` (carrying the diagnostics) from Python.

A Python workflow is a `.py` file that assigns Spec objects to module-level names. The file is run (not as
``__main__``, so a ``if __name__ == "__main__":`` block does not run) with its folder first on ``sys.path``, then:

- one ``Program`` at module level is the program; other module-level workflows that are not part of it are
  ignored with a warning; two or more Programs are an error;
- otherwise every module-level ``WorkflowSpec``, ``SubworkflowSpec`` and ``IntegrationSpec``, in the order they
  are defined, makes the program — as if the file were a `.kumeo` file declaring them.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import (
    Diagnostic,
    KumeoError,
    KumeoValidationError,
    Severity,
    SourceSpan,
    sort_diagnostics,
)

if TYPE_CHECKING:  # pragma: no cover
    from kumeo_iac.spec import Program

__all__ = ["Loaded", "diagnostics_of", "is_pulumi_program", "load", "load_file", "load_text"]

#: The ``__name__`` a Python workflow runs under: anything but ``"__main__"``.
RUN_NAME = "__kumeo_workflow__"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclasses.dataclass
class Loaded:
    """What one file declares (``None`` when nothing usable could be read) and every diagnostic about it."""

    path: Path
    program: Program | None
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        """True when the program can be used: it was read and nothing is an error (warnings allowed)."""
        return self.program is not None and not self.errors

    def program_or_raise(self) -> Program:
        """The program; :class:`KumeoValidationError` with every diagnostic when it has an error."""
        if self.program is None or self.errors:
            raise KumeoValidationError(self.diagnostics or [
                Diagnostic("the file declares nothing usable", SourceSpan(str(self.path), 1, 1))])
        return self.program


def load(path: str | os.PathLike[str], *, strict_files: bool = False) -> Program:
    """Read, import and validate a workflow file (`.kumeo`, or a Python workflow `.py`) into a checked Program.

    Raises :class:`~kumeo_iac.errors.KumeoValidationError` carrying every diagnostic (warnings included) when the
    file cannot be read, does not parse, has a part the importer could not read (an unknown kind such as
    ``LLMM(…)``), fails to run (Python), or does not validate. ``strict_files=True`` makes missing model, network
    and rule files errors (what ``render``, ``run`` and ``up`` use); by default they are warnings.
    """
    return load_file(path, strict_files=strict_files).program_or_raise()


def load_file(path: str | os.PathLike[str], *, strict_files: bool = False) -> Loaded:
    """Like :func:`load`, but returns the program and all diagnostics instead of raising (what the CLI prints)."""
    path = Path(path)
    if path.suffix == ".py":
        program, diagnostics = _python_program(path)
    else:
        from kumeo_iac.lang import parse_file

        try:
            result = parse_file(path)
        except KumeoError as exc:
            return Loaded(path, None, diagnostics_of(exc, path))
        program, diagnostics = result.program, list(result.diagnostics)
    return _validated(path, program, diagnostics, base_dir=path.parent, strict_files=strict_files)


def load_text(text: str, path: str | os.PathLike[str], *, base_dir: Path | None = None,
              strict_files: bool = False) -> Loaded:
    """:func:`load_file` for `.kumeo` text not (yet) on disk, e.g. the dashboard's editor buffer."""
    from kumeo_iac.lang import parse

    path = Path(path)
    try:
        result = parse(text, str(path))
    except KumeoError as exc:
        return Loaded(path, None, diagnostics_of(exc, path))
    return _validated(path, result.program, list(result.diagnostics), base_dir=base_dir, strict_files=strict_files)


def _validated(path: Path, program: Program | None, diagnostics: list[Diagnostic], *, base_dir: Path | None,
               strict_files: bool) -> Loaded:
    from kumeo_iac.validate import dedupe, validate

    if program is not None:
        diagnostics = diagnostics + validate(program, base_dir=base_dir, strict_files=strict_files)
    return Loaded(path, program, dedupe(sort_diagnostics(diagnostics)))


def diagnostics_of(exc: KumeoError, path: Path) -> list[Diagnostic]:
    """The diagnostics a Kumeo error carries, each with a position (the file's start when it had none)."""
    found = list(getattr(exc, "diagnostics", None) or []) or [Diagnostic(str(exc) or type(exc).__name__)]
    return [d if d.span is not None else dataclasses.replace(d, span=SourceSpan(str(path), 1, 1)) for d in found]


# -- Python workflows ---------------------------------------------------------------------------------------------


def is_pulumi_program(path: str | os.PathLike[str]) -> bool:
    """Whether a `.py` file is a Pulumi program (it imports ``pulumi`` or Kumeo's components) rather than a
    Python workflow; read without running it. A file that does not parse is not one (loading it says why)."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=os.fspath(path))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module] + ([f"{node.module}.{a.name}" for a in node.names])
        else:
            continue
        for module in modules:
            if module.split(".")[0] == "pulumi" or module.startswith(("kumeo_iac.components", "kumeo_iac.Workflow")):
                return True
    return False


def _python_program(path: Path) -> tuple[Program | None, list[Diagnostic]]:
    """Run a Python workflow and gather the Specs it defines at module level."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:  # said as the `.kumeo` reader says it
        return None, [Diagnostic(f"cannot read file: {exc.strerror or exc}", SourceSpan(str(path), 1, 1),
                                 code="load")]
    namespace, failure = _run(path)
    if failure is not None:
        return None, [failure]
    return _program_of(path, namespace)


def _run(path: Path) -> tuple[dict[str, Any], Diagnostic | None]:
    import runpy

    # Like `python FILE`: the file's folder comes first on sys.path, so it can import its neighbours.
    folder = str(path.parent.resolve())
    sys.path.insert(0, folder)
    try:
        return runpy.run_path(str(path), run_name=RUN_NAME), None
    except SyntaxError as exc:  # the file itself (or a module it imports) is not Python
        span = SourceSpan(exc.filename or str(path), exc.lineno or 1, exc.offset or 1)
        return {}, Diagnostic(f"invalid Python: {exc.msg}", span, code="load")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code failed; say where, never a traceback
        return {}, _failure(exc, path)
    finally:
        with contextlib.suppress(ValueError):  # the program may have taken it out itself
            sys.path.remove(folder)


def _failure(exc: BaseException, path: Path) -> Diagnostic:
    """The error a running workflow raised, at the last frame of the user's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if _is_user_file(f.filename)]
    at = user[-1] if user else None
    if at is not None:
        column = getattr(at, "colno", None)  # 0-based start of the failing expression (Python 3.11+)
        span = SourceSpan(at.filename, at.lineno or 1, column + 1 if column is not None else 1)
    else:
        span = SourceSpan(str(path), 1, 1)
    if isinstance(exc, SystemExit):
        message = f"the workflow called sys.exit({exc.code!r}) while it was being loaded"
    else:
        detail = str(exc) if isinstance(exc, KumeoError) else f"{type(exc).__name__}: {exc}"
        message = f"running the workflow failed: {detail}".rstrip(": ")
    return Diagnostic(message, span, code="load",
                      hint="the workflow file is run to read its Specs; fix the error at this line")


def _is_user_file(filename: str) -> bool:
    if filename.startswith(("<", _PACKAGE_DIR)):
        return False
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    absolute = os.path.abspath(filename)
    return not any(absolute.startswith(os.path.join(p, "lib")) for p in prefixes)


def _program_of(path: Path, namespace: dict[str, Any]) -> tuple[Program | None, list[Diagnostic]]:
    from kumeo_iac.spec import IntegrationSpec, Program, SubworkflowSpec, WorkflowSpec

    programs: dict[int, tuple[str, Program]] = {}
    flows: dict[int, tuple[str, Any]] = {}
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if isinstance(value, Program):
            programs.setdefault(id(value), (name, value))
        elif isinstance(value, (WorkflowSpec, SubworkflowSpec, IntegrationSpec)):
            flows.setdefault(id(value), (name, value))
    where = SourceSpan(str(path), 1, 1)
    if len(programs) > 1:
        names = ", ".join(f"{n} (line {p.span.line})" if p.span else n for n, p in programs.values())
        return None, [Diagnostic(f"the file defines {len(programs)} Programs: {names}; a workflow file holds one "
                                 "program", _span(list(programs.values())[1][1], where), code="load",
                                 hint="keep one Program, or put every workflow in it")]
    if programs:
        _, program = next(iter(programs.values()))
        return _with_path(program, path), _stray(program, flows, where)
    if not flows:
        hint = ("it imports pulumi, so it looks like a Pulumi program: deploy it with `kumeo up` or `pulumi up`"
                if is_pulumi_program(path) else
                "assign a WorkflowSpec (or a Program) to a module-level name, e.g. `WORKFLOW = WorkflowSpec(…)`")
        return None, [Diagnostic("the file defines no workflow at module level", where, code="load", hint=hint)]
    specs = [value for _, value in flows.values()]
    program = Program(
        workflows=[s for s in specs if isinstance(s, WorkflowSpec)],
        subworkflows=[s for s in specs if isinstance(s, SubworkflowSpec)],
        integrations=[s for s in specs if isinstance(s, IntegrationSpec)],
    )
    return _with_path(program, path), []


def _with_path(program: Program, path: Path) -> Program:
    if program.path is None:  # validate and compile find the workflow's files next to it
        program.path = str(path)
    return program


def _span(node: Any, fallback: SourceSpan) -> SourceSpan:
    span = getattr(node, "span", None)
    return span if isinstance(span, SourceSpan) else fallback


def _stray(program: Program, flows: dict[int, tuple[str, Any]], where: SourceSpan) -> list[Diagnostic]:
    """Module-level workflows the Program leaves out: a warning each, since a forgotten one never deploys."""
    inside = {id(x) for x in (*program.workflows, *program.subworkflows, *program.integrations)}
    return [Diagnostic(f"{name} ({type(value).__name__} {getattr(value, 'name', '')!r}) is not part of the "
                       "file's Program, so it is ignored", _span(value, where), Severity.WARNING, code="load",
                       hint="add it to the Program or remove it")
            for name, value in flows.values() if id(value) not in inside]
