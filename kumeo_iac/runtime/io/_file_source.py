"""File source: each line of a JSON-lines file is an event.

A line that is not a JSON object is never dropped silently: it goes to ``kumeo.<slug>.dlq.source`` with the reason,
the file and the line number. ``{ follow: true }`` keeps reading lines appended later (like ``tail -f``).
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
    dumps,
    parse_line,
    publish_dead_letter,
    source_headers,
)

if TYPE_CHECKING:
    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["FileSource"]

log = logging.getLogger("kumeo.io")

_BATCH = 256


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
        number = 0
        partial = ""
        try:
            with open(self.path, encoding="utf-8", errors="replace", newline="") as handle:
                while True:
                    batch: list[tuple[int, str]] = []
                    for _ in range(_BATCH):
                        line = handle.readline()
                        if not line:
                            break
                        if not line.endswith("\n") and self.follow:
                            partial += line  # a line still being written: wait for its end
                            continue
                        line, partial = partial + line, ""
                        number += 1
                        if line.strip():
                            batch.append((number, line.rstrip("\r\n")))
                    if batch:
                        await self._publish(js, batch, producer)
                        continue
                    if not self.follow:
                        if partial.strip():
                            number += 1
                            await self._publish(js, [(number, partial)], producer)
                        break
                    self._done.set()  # caught up with the file; more may come
                    await asyncio.sleep(self.poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, and the runner sees the source finished
            log.error("File source %s stopped at line %d: %r", self.path, number, exc)
        finally:
            self._done.set()

    async def _publish(self, js: Any, batch: list[tuple[int, str]], producer: str) -> None:
        futures = []
        for number, text in batch:
            parsed = parse_line(text, number)
            if isinstance(parsed, InvalidLine):
                reason = f"{self.path.name}:{parsed.line}: {parsed.reason}"
                log.warning("File source %s", reason)
                await publish_dead_letter(
                    js, dead_letter_subject(self.workflow, "source"), event_id=envelope.new_event_id(),
                    producer=producer, reason=reason,
                    body={"source": self.endpoint.address, "file": str(self.path), "line": parsed.line,
                          "input": parsed.text})
                self.dead_lettered += 1
                continue
            event_id = envelope.new_event_id()
            futures.append(await js.publish_async(self.endpoint.subject, dumps(parsed[1]),
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
