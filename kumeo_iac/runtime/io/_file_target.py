"""File target: appends each result as one JSON line; every batch is flushed and fsynced before it is acked.

Acking only after ``fsync`` makes the file at-least-once: a crash between the two re-appends the batch on
redelivery (a duplicate line, never a lost one). ``{ envelope: true }`` writes ``{"subject", "event_id", "data"}``
instead of the bare result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.io._common import dumps
from kumeo_iac.runtime.io._target import TargetAdapter, event_id_of

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["FileTarget"]

log = logging.getLogger("kumeo.io")


class FileTarget(TargetAdapter):
    """Appends results to a JSON-lines file (relative paths are relative to the workflow's file)."""

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, base_dir: str | Path = ".",
                 **kwargs: Any) -> None:
        super().__init__(workflow, endpoint, **kwargs)
        self.path = Path(base_dir) / endpoint.address
        self.envelope = bool((endpoint.options or {}).get("envelope", False))
        self._file: BinaryIO | None = None

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the adapter's lifetime
        except OSError as exc:
            raise KumeoRuntimeError(f"workflow '{self.workflow.name}': File target {self.endpoint.address!r}: "
                                    f"cannot open {self.path}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._file.close()
            self._file = None

    def _line(self, msg: Msg) -> bytes:
        try:
            data: Any = json.loads(msg.data) if msg.data else None
        except ValueError:
            data = msg.data.decode("utf-8", "replace")
        if self.envelope:
            data = {"subject": msg.subject, "event_id": event_id_of(msg), "data": data}
        return dumps(data) + b"\n"

    async def deliver(self, msgs: list[Msg]) -> None:
        assert self._file is not None
        lines = b"".join(self._line(m) for m in msgs)
        handle = self._file

        def write() -> None:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.error("File target %s: cannot write: %s; retrying in 2 s", self.path, exc.strerror or exc)
            for msg in msgs:
                await msg.nak(delay=2.0)
            return
        for msg in msgs:
            await msg.ack()
        self.delivered += len(msgs)
