"""Progress of `kumeo run` on stderr: one live line on a terminal, plain lines (only when counts change) elsewhere.

The line counts what the run's output shows: ``10 in, 7 routed, 1 dead letter, 2 waiting for review, 0 in flight``
— events published, result lines and dead-letter lines printed on stdout, events parked by HumanReview agents
(shown only when the workflow has one), and events that have reached none of these yet. The closing summary is the
same line, so the two always agree. stdout belongs to the results, so everything here goes to stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["Progress", "ProgressLogHandler"]


class Progress:
    """Counts of a run and the notes said along the way."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, every: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.live = live if live is not None else _isatty(self.stream)
        self.every = every
        self.published = 0
        self.results = 0
        self.dead_letters = 0
        self.in_flight = 0
        #: Events waiting for a person; None when no agent reviews (the count is then left out of the line).
        self.reviews: int | None = None
        self._shown = ""
        self._last_line = 0.0
        self._live_drawn = False

    def note(self, text: str) -> None:
        """One line of its own (``kumeo run: …``)."""
        self._clear()
        print(f"kumeo run: {text}", file=self.stream, flush=True)

    def counts(self) -> str:
        """``10 in, 7 routed, 1 dead letter[, 2 waiting for review]``: the line without what is in flight."""
        text = (f"{self.published} in, {self.results} routed, "
                f"{self.dead_letters} dead letter{'s' if self.dead_letters != 1 else ''}")
        if self.reviews is not None:
            text += f", {self.reviews} waiting for review"
        return text

    def status(self) -> str:
        return f"{self.counts()}, {self.in_flight} in flight"

    def update(self, *, force: bool = False) -> None:
        text = self.status()
        now = time.monotonic()
        if self.live:
            if text != self._shown or force:
                self.stream.write(f"\r\x1b[Kkumeo run: {text}")
                self.stream.flush()
                self._shown = text
                self._live_drawn = True
        elif (text != self._shown and now - self._last_line >= self.every) or force:
            print(f"kumeo run: {text}", file=self.stream, flush=True)
            self._shown = text
            self._last_line = now

    def _clear(self) -> None:
        if self.live and self._live_drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._live_drawn = False
            self._shown = ""

    def close(self) -> None:
        self._clear()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressLogHandler(logging.Handler):
    """Log records as ``kumeo run: LEVEL: message`` lines that do not collide with the live progress line."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            self.progress.note(f"{record.levelname.lower()}: {text}")
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)
