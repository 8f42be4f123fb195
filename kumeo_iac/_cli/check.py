"""``kumeo check``, ``kumeo fmt`` and ``kumeo graph``: the commands that read workflow files and deploy nothing.

Files are read by :func:`kumeo_iac._load.load_file`, like every other command: a `.kumeo` file, or a Python
workflow (a `.py` file named explicitly; directories are searched for `*.kumeo` only, since finding workflows in
`.py` files would mean running every script of a folder). Diagnostics go to stderr, gcc-style
(``PATH:LINE:COL: error: MESSAGE``), followed by a one-line summary; stdout carries only what a command produces (a
graph, a diff), so it can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kumeo_iac._cli._report import emit, plural, reject_python
from kumeo_iac.errors import Diagnostic, KumeoError, KumeoSyntaxError, SourceSpan

if TYPE_CHECKING:  # pragma: no cover
    from kumeo_iac.spec import SubworkflowSpec, WorkflowSpec

__all__ = ["collect_files", "read_source", "run_check", "run_docs", "run_fmt", "run_graph"]


def collect_files(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The workflow files named by ``paths`` (directories are searched recursively for `*.kumeo`), and the
    problems met.

    Hidden directories (``.git``, ``.venv``) are skipped; a file named explicitly is taken whatever its suffix.
    """
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*.kumeo")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts[:-1])
            )
            if not found:
                problems.append(f"{raw}: no .kumeo files in this directory (name a Python workflow explicitly)")
            files += found
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            problems.append(f"{raw}: no such file or directory")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique, problems


def read_source(path: Path) -> str:
    """The text of a `.kumeo` file; unreadable files and invalid UTF-8 raise a KumeoSyntaxError with a position."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise KumeoSyntaxError(f"cannot read the file: {reason}", SourceSpan(str(path), 1, 1)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise KumeoSyntaxError(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            SourceSpan(str(path), line, column),
        ) from None


# -- kumeo check --------------------------------------------------------------------------------------------------


def check_paths(paths: Sequence[str], *, strict_files: bool = False) -> tuple[int, list[Diagnostic], list[str]]:
    """Check files and directories: (number of files checked, their diagnostics, path-level problems)."""
    from kumeo_iac._load import load_file

    files, problems = collect_files(paths)
    diagnostics: list[Diagnostic] = []
    for file in files:
        diagnostics += load_file(file, strict_files=strict_files).diagnostics
    return len(files), diagnostics, problems


def run_check(args: argparse.Namespace) -> int:
    """``kumeo check PATH...``: exit 0 when no file has an error (warnings allowed), 1 otherwise."""
    count, diagnostics, problems = check_paths(args.paths, strict_files=args.strict)
    quiet = getattr(args, "quiet", False)
    for problem in problems:
        print(f"kumeo: error: {problem}", file=sys.stderr)
    emit(diagnostics, quiet=quiet)
    errors = sum(1 for d in diagnostics if d.is_error) + len(problems)
    warnings = sum(1 for d in diagnostics if not d.is_error)
    if not quiet:
        found = ", ".join(p for p in (plural(errors, "error") if errors else "",
                                      plural(warnings, "warning") if warnings else "") if p) or "no problems"
        print(f"checked {plural(count, 'file')}: {found}", file=sys.stderr)
    return 1 if errors else 0


# -- kumeo fmt ----------------------------------------------------------------------------------------------------


def run_fmt(args: argparse.Namespace) -> int:
    """``kumeo fmt PATH... [--check] [--diff]``: rewrite files canonically, or report which would change.

    A file with an error (what ``kumeo check`` reports) is left untouched and reported: formatting prints the
    Spec, so a part the importer could not read would be deleted from the file.
    """
    from kumeo_iac._load import load_text
    from kumeo_iac.lang import format_text, parse

    python_files = reject_python("fmt", args.paths)
    if python_files:
        for line in python_files:
            print(line, file=sys.stderr)
        return 2
    files, problems = collect_files(args.paths)
    for problem in problems:
        print(f"kumeo: error: {problem}", file=sys.stderr)
    failed = bool(problems)
    changed: list[Path] = []
    refused: list[Path] = []
    for file in files:
        try:
            text = read_source(file)
        except KumeoSyntaxError as exc:  # unreadable, or not UTF-8
            emit(exc.diagnostics)
            refused.append(file)
            continue
        loaded = load_text(text, file, base_dir=file.parent)
        if loaded.errors:
            emit(loaded.errors)
            refused.append(file)
            continue
        formatted = format_text(text, str(file))
        if formatted == text:
            continue
        # Never rewrite a file into something that means another program.
        try:
            same = parse(text, str(file)).program == parse(formatted, str(file)).program
        except KumeoError:
            same = False
        if not same:
            print(f"kumeo: internal error: formatting {file} would change its meaning, so it was left unchanged; "
                  f"please report this with the file", file=sys.stderr)
            return 3
        changed.append(file)
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                fromfile=f"{file} (original)", tofile=f"{file} (formatted)",
            ))
        if args.check:
            print(f"would reformat {file}", file=sys.stderr)
        elif not args.diff:
            _write_atomically(file, formatted)
            print(f"reformatted {file}", file=sys.stderr)
    unchanged = len(files) - len(changed) - len(refused)
    verb = "would be reformatted" if (args.check or args.diff) else "reformatted"
    left = f", {plural(len(refused), 'file')} with errors left as they are" if refused else ""
    print(f"{plural(len(changed), 'file')} {verb}, {unchanged} unchanged{left}", file=sys.stderr)
    if failed or refused:
        return 1
    return 1 if (args.check and changed) else 0


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- kumeo graph --------------------------------------------------------------------------------------------------


def run_graph(args: argparse.Namespace) -> int:
    """``kumeo graph PATH``: print each workflow's agent graph on stdout; problems go to stderr (exit 1).

    A file with errors still gets the graph of what could be read (it helps to see what is wrong), but the exit
    code is 1 and the errors are printed, as ``kumeo check`` prints them.
    """
    from kumeo_iac._load import load_file
    from kumeo_iac.graph import build_graph
    from kumeo_iac.spec import closest as _closest

    path = Path(args.path)
    loaded = load_file(path)
    program = loaded.program
    errors = loaded.errors
    if program is None:
        emit(errors)
        return 1
    flows: list[WorkflowSpec | SubworkflowSpec] = [*program.workflows, *program.subworkflows]
    if args.workflow:
        chosen = [f for f in flows if f.name == args.workflow]
        if not chosen:
            names = [f.name for f in flows]
            match = _closest(args.workflow, names)
            hint = f"did you mean '{match}'?" if match else f"it declares: {', '.join(names) or 'nothing'}"
            print(f"kumeo: error: {path} has no workflow or subworkflow '{args.workflow}'; {hint}", file=sys.stderr)
            return 1
        flows = chosen
    if not flows:
        print(f"kumeo: error: {path} declares no workflow", file=sys.stderr)
        return 1
    parts = []
    for flow in flows:
        graph = build_graph(flow)
        if args.format == "dot":
            parts.append(graph.to_dot())
        else:
            header = f"%% {('subworkflow' if flow in program.subworkflows else 'workflow')} {flow.name}\n"
            parts.append(header + graph.to_mermaid())
    sys.stdout.write("\n".join(parts))
    emit(errors)
    if errors:
        print(f"{path}: the graph above is incomplete: {plural(len(errors), 'error')}", file=sys.stderr)
    return 1 if errors else 0


# -- kumeo docs (hidden) ------------------------------------------------------------------------------------------


def run_docs(args: argparse.Namespace) -> int:
    """``kumeo docs [--out FILE] [--check]``: (re)generate the language reference from the Spec."""
    from kumeo_iac._docs import language_reference

    text = language_reference()
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            print(f"{out} is out of date; regenerate it with `kumeo docs --out {out}`", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0
