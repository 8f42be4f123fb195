"""The input of `kumeo run`: a JSON-lines file (or standard input) read into events, bad lines reported by number."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from kumeo_iac.errors import KumeoRuntimeError

__all__ = ["InputEvents", "parse_event_line", "read_events"]


@dataclasses.dataclass
class InputEvents:
    """The events of an input file: ``(line, payload)`` pairs, and one ``PATH:LINE: error: …`` per bad line."""

    name: str  # what messages call the input: its path, or "<stdin>"
    stem: str  # the prefix of its event ids
    events: list[tuple[int, Any]]
    problems: list[str]


def parse_event_line(line: str) -> tuple[Any, str | None]:
    """One line as ``(JSON object, None)`` or ``(None, why it is not an event)``; never raises.

    Strict JSON: ``NaN``/``Infinity``, numbers beyond a double and nesting past the decoder's limit are refused
    with what and where, like the worker refuses them.
    """
    from kumeo_iac.runtime import envelope

    try:
        value = envelope.loads(line)
    except envelope.NotJSON as exc:
        return None, str(exc)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except Exception as exc:  # noqa: BLE001 - whatever else a hostile line makes the decoder raise
        return None, f"cannot read the line: {type(exc).__name__}: {exc}"
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        return None, f"expected a JSON object, got {kind}"
    return value, None


def read_events(path: str) -> InputEvents:
    """Read ``path`` (``-``: standard input); every non-blank line must be one JSON object.

    A line that is not one is reported as ``PATH:LINE: error: why`` and skipped; the others are still events.
    """
    if path == "-":
        name, stem = "<stdin>", "stdin"
        try:
            buffer = getattr(sys.stdin, "buffer", None)
            data = buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        except (OSError, UnicodeDecodeError) as exc:
            raise KumeoRuntimeError(f"<stdin>: error: cannot read standard input: {exc}") from None
    else:
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise KumeoRuntimeError(f"{path}: error: no such file") from None
        except OSError as exc:
            raise KumeoRuntimeError(f"{path}: error: cannot read it: {exc.strerror or exc}") from None
        name, stem = path, file.stem
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    events: list[tuple[int, Any]] = []
    problems: list[str] = []
    # Lines end at \n, \r\n or \r only: a JSON string may hold U+2028 and friends.
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{name}:{number}: error: the line is not UTF-8 (invalid byte 0x{raw[exc.start]:02x} "
                            f"at column {exc.start + 1})")
            continue
        if not line.strip():
            continue
        value, problem = parse_event_line(line)
        if problem is not None:
            problems.append(f"{name}:{number}: error: {problem}")
        else:
            events.append((number, value))
    return InputEvents(name, stem, events, problems)
