"""Durations as the language writes them (``"30s"``, ``"2m"``, ``"500ms"``, a number of seconds): one parser for
validation, compile and the typed agent settings, so what ``kumeo check`` accepts is what compile plans."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator

__all__ = ["DURATION_HINT", "Duration", "parse_duration"]

_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

#: What to write instead, for messages about a value that is not a duration.
DURATION_HINT: Final = 'write e.g. "30s", "2m", "1h", "500ms" or a number of seconds'


def parse_duration(value: Any) -> float:
    """The seconds a duration stands for; :class:`ValueError` (saying why) when ``value`` is none."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_show(value)} is not a duration; {DURATION_HINT}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"{_show(value)} is not a duration; {DURATION_HINT}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{_show(value)} is not a duration: it must not be negative")
    return round(seconds, 3)


def _checked(value: Any) -> Any:
    parse_duration(value)
    return value


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _plain(value: Any) -> Any:
    # Strict pydantic types refuse a str subclass (LocatedStr) nowhere, but a bool is no duration even though it
    # is an int: refuse it before the union tries its members.
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    return value


#: A setting holding a duration: kept as written (the runtime parses it again with the same rules).
Duration = Annotated[str | int | float, BeforeValidator(_plain), AfterValidator(_checked)]
