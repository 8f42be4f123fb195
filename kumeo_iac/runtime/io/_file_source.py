"""File source: each line of a JSON-lines file is an event.

A line that is not a JSON object is never dropped silently: it goes to ``kumeo.<slug>.dlq.source`` with the reason,
the file and the line number. Lines are read as a worker reads events: strict UTF-8 and strict JSON (``NaN``,
``Infinity``, nesting past the decoder's limit are refused, saying what and where), and a line over the workflow's
input limit (``max_input_bytes``, ``KUMEO_MAX_INPUT_BYTES``, 1 MiB by default) is dead-lettered unread, its size
counted while it is skipped, so no line can make the gateway hold more than the limit in memory. A dead letter
carries the line itself up to 16 KiB, else its size and a preview. ``{ follow: true }`` keeps reading lines
appended later (like ``tail -f``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime.io._common import (
    Adapter,
    InvalidLine,
    dead_letter_subject,
    parse_line,
    publish_dead_letter,
    source_headers,
)

if TYPE_CHECKING:
    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["FileSource"]

log = logging.getLogger("kumeo.io")

_BATCH = 256
#: A bad line longer than this travels in its dead letter as its size and a preview, not as itself.
_MAX_QUOTED = 16 * 1024
_PREVIEW = 200


class _Oversized:
    """A line skipped unread because it is over the limit: only its size is kept."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class FileSource(Adapter):
    """Publishes every line of a JSON-lines file (relative paths are relative to the workflow's file)."""

    role = "source"

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, base_dir: str | Path = ".",
                 follow: bool | None = None, poll_seconds: float = 0.25) -> None:
        super().__init__(workflow, endpoint)
        options = endpoint.options or {}
        self.path = Path(base_dir) / endpoint.address
        self.follow = bool(options.get("follow", False)) if follow is None else follow
        self.poll_seconds = poll_seconds
        try:
            #: The longest line (bytes) read as an event: $KUMEO_MAX_INPUT_BYTES, else the Plan's option, else 1 MiB.
            self.max_input_bytes = envelope.max_input_bytes(options.get("max_input_bytes"))
        except ValueError as exc:
            raise KumeoRuntimeError(f"workflow '{workflow.name}': File source {endpoint.address!r}: {exc}") from None
        self.published = 0
        self.dead_lettered = 0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    async def wait_finished(self) -> None:
        await self._done.wait()

    async def start(self, nc: Any) -> None:
        if not self.path.is_file():
            raise KumeoRuntimeError(
                f"workflow '{self.workflow.name}': File source {self.endpoint.address!r}: no such file "
                f"{self.path}")
        js = nc.jetstream()
        self._task = asyncio.create_task(self._run(js), name=f"kumeo-file-{self.endpoint.name}")

    async def _run(self, js: Any) -> None:
        producer = f"source.{self.endpoint.name}"
        cap = self.max_input_bytes
        number = 0
        partial = b""  # the start of a line still being written (follow)
        skipped: int | None = None  # bytes of an over-long line counted so far, while it is skipped
        try:
            with open(self.path, "rb") as handle:
                while True:
                    batch: list[tuple[int, bytes | _Oversized]] = []
                    for _ in range(_BATCH):
                        # Never more than the limit (+ "\r\n") at once: an endless line cannot fill the memory.
                        chunk = handle.readline(cap + 2)
                        if not chunk:
                            break
                        if chunk.endswith(b"\n"):
                            line, partial = partial + chunk, b""
                            number += 1
                            if skipped is not None:
                                batch.append((number, _Oversized(skipped + len(line.rstrip(b"\r\n")))))
                                skipped = None
                            elif line.strip():
                                batch.append((number, line.rstrip(b"\r\n")))
                            continue
                        if skipped is not None or len(partial) + len(chunk) > cap + 1:
                            skipped = (skipped or 0) + len(partial) + len(chunk)
                            partial = b""
                            continue
                        partial += chunk  # the end of the file, in the middle of a line
                        if not self.follow:
                            break
                    if batch:
                        await self._publish(js, batch, producer)
                        continue
                    if not self.follow:
                        if skipped is not None:
                            await self._publish(js, [(number + 1, _Oversized(skipped))], producer)
                        elif partial.strip():
                            await self._publish(js, [(number + 1, partial.rstrip(b"\r\n"))], producer)
                        break
                    self._done.set()  # caught up with the file; more may come
                    await asyncio.sleep(self.poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, and the runner sees the source finished
            log.error("File source %s stopped at line %d: %r", self.path, number, exc)
        finally:
            self._done.set()

    def _read(self, number: int, raw: bytes | _Oversized) -> tuple[int, Any] | tuple[InvalidLine, int]:
        """The event on one line, or why it is none and how many bytes the line had."""
        if isinstance(raw, _Oversized):
            reason = envelope.over_limit(raw.size, self.max_input_bytes, "event")
            return InvalidLine(number, reason, ""), raw.size
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"the line is not UTF-8 (invalid byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            return InvalidLine(number, reason, raw.decode("utf-8", "replace")), len(raw)
        parsed = parse_line(text, number, self.max_input_bytes)
        return (parsed, len(raw)) if isinstance(parsed, InvalidLine) else parsed

    async def _publish(self, js: Any, batch: list[tuple[int, bytes | _Oversized]], producer: str) -> None:
        futures = []
        for number, raw in batch:
            parsed = self._read(number, raw)
            if isinstance(parsed[0], InvalidLine):
                invalid, size = parsed
                reason = f"{self.path.name}:{invalid.line}: {invalid.reason}"
                log.warning("File source %s", reason)
                body: dict[str, Any] = {"source": self.endpoint.address, "file": str(self.path),
                                        "line": invalid.line}
                if invalid.text and size <= _MAX_QUOTED:
                    body["input"] = invalid.text
                else:
                    body.update(input_bytes=size, input_preview=invalid.text[:_PREVIEW],
                                input_omitted=f"the line is {size} bytes; dead letters quote lines of up to "
                                              f"{_MAX_QUOTED}")
                await publish_dead_letter(
                    js, dead_letter_subject(self.workflow, "source"), event_id=envelope.new_event_id(),
                    producer=producer, reason=reason, body=body)
                self.dead_lettered += 1
                continue
            event_id = envelope.new_event_id()
            futures.append(await js.publish_async(self.endpoint.subject, envelope.dumps(parsed[1]),
                                                  headers=source_headers(event_id, producer)))
        if futures:
            await asyncio.gather(*futures)
            self.published += len(futures)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
