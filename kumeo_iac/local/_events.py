"""The input of `kumeo run`: a JSON-lines file (or standard input) read into events, bad lines reported by number."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from kumeo_iac.errors import KumeoRuntimeError

__all__ = ["InputEvents", "read_events"]


@dataclasses.dataclass
class InputEvents:
    """The events of an input file: ``(line, payload)`` pairs, and one ``PATH:LINE: error: …`` per bad line."""

    name: str  # what messages call the input: its path, or "<stdin>"
    stem: str  # the prefix of its event ids
    events: list[tuple[int, Any]]
    problems: list[str]


def read_events(path: str) -> InputEvents:
    """Read ``path`` (``-``: standard input); every non-blank line must be one JSON object."""
    from kumeo_iac.runtime.io import InvalidLine, parse_json_lines

    if path == "-":
        name, stem = "<stdin>", "stdin"
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise KumeoRuntimeError(f"<stdin>: error: cannot read standard input: {exc}") from None
    else:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KumeoRuntimeError(f"{path}: error: no such file") from None
        except UnicodeDecodeError as exc:
            raise KumeoRuntimeError(f"{path}: error: the file is not UTF-8 (byte {exc.start})") from None
        except OSError as exc:
            raise KumeoRuntimeError(f"{path}: error: cannot read it: {exc.strerror or exc}") from None
        name, stem = path, file.stem
    events: list[tuple[int, Any]] = []
    problems: list[str] = []
    for item in parse_json_lines(text):
        if isinstance(item, InvalidLine):
            problems.append(f"{name}:{item.line}: error: {item.reason}")
        else:
            events.append(item)
    return InputEvents(name, stem, events, problems)
