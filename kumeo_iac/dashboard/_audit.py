"""The audit trail: who decided a review, replayed a dead letter or saved a file, in the ``KUMEO_AUDIT`` stream.

One stream holds every audit record of a NATS account, on subjects under ``kumeo.audit.>``: deploy records on
``kumeo.audit.deploy`` (written by `kumeo up`), the dashboard's on ``kumeo.audit.ui``, the HumanReview worker's
review API's on ``kumeo.audit.review`` (``kumeo_iac.runtime.review._audit``). Whoever writes first creates
the stream; :func:`ensure_audit_stream` is idempotent and only ever widens it, so a stream created for
``kumeo.audit.deploy`` alone is extended to ``kumeo.audit.>`` (the subjects it covers are folded into the wildcard,
as a stream may not list overlapping subjects) and nothing else about it changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Any, Final

from kumeo_iac.jetstream import AUDIT_STREAM, AUDIT_SUBJECTS, covers

__all__ = ["AUDIT_STREAM", "AUDIT_SUBJECTS", "UI_SUBJECT", "AuditLog", "ensure_audit_stream"]

UI_SUBJECT: Final = "kumeo.audit.ui"
ACTION_HEADER: Final = "Kumeo-Audit-Action"


def _covered(subject: str, by: str = AUDIT_SUBJECTS) -> bool:
    return covers(by, subject)


async def ensure_audit_stream(js: Any) -> None:
    """Create ``KUMEO_AUDIT`` on ``kumeo.audit.>``, or widen an existing one to cover it; never narrows it."""
    import nats.js.errors

    from kumeo_iac.jetstream import audit_stream_config

    for _ in range(3):
        try:
            info = await js.stream_info(AUDIT_STREAM)
        except nats.js.errors.NotFoundError:
            config = audit_stream_config()  # the deployers' settings, on the whole audit namespace
            try:
                await js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                continue  # created by someone else at this moment: read it again
        subjects = list(info.config.subjects or [])
        if any(_covered(AUDIT_SUBJECTS, by=s) for s in subjects):
            return
        widened = [s for s in subjects if not _covered(s)] + [AUDIT_SUBJECTS]
        await js.update_stream(dataclasses.replace(info.config, subjects=widened))
        return
    raise RuntimeError(f"could not create or read the {AUDIT_STREAM} stream")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Writes the dashboard's audit records to ``kumeo.audit.ui``; each one is acknowledged by JetStream."""

    def __init__(self, js: Any, subject: str = UI_SUBJECT) -> None:
        self.js = js
        self.subject = subject
        self._ready = False

    async def ensure(self) -> None:
        """Make sure the audit stream exists and covers this log's subject (asked of the server once per log)."""
        if not self._ready:
            await ensure_audit_stream(self.js)
            self._ready = True

    async def record(self, action: str, user: dict[str, Any], **details: Any) -> dict[str, Any]:
        """Store one record ``{id, at, action, user, …details}`` and return it with its stream sequence."""
        await self.ensure()
        record = {"id": uuid.uuid4().hex, "at": now_iso(), "action": action, "user": user, **details}
        data = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str).encode()
        ack = await self.js.publish(self.subject, data, headers={"Nats-Msg-Id": record["id"], ACTION_HEADER: action},
                                    timeout=5.0)
        return {**record, "seq": ack.seq}

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest records the dashboard wrote, newest first."""
        from kumeo_iac.dashboard._streams import recent_messages

        out = []
        for msg in await recent_messages(self.js, AUDIT_STREAM, self.subject, limit):
            try:
                out.append({**json.loads(msg.data), "seq": msg.seq})
            except ValueError:
                continue
        return list(reversed(out))
