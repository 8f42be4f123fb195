"""Did-you-mean: the one way Kumeo suggests the name a user probably meant (validation, compile, settings)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (or to one of its dotted/slashed prefixes), if close enough."""
    pool = sorted({c for c in candidates if c and c != word})
    if not pool or not word:
        return None
    words = [word]
    for sep in (".", "/"):
        parts = word.split(sep)
        words += [sep.join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    best: tuple[float, str] | None = None
    for w in words:
        for c in pool:
            ratio = difflib.SequenceMatcher(None, w, c).ratio()
            if ratio >= 0.6 and (best is None or ratio > best[0]):
                best = (ratio, c)
    return best[1] if best else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` to append to a message, or ``""`` when nothing is close."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match else ""
