"""Reviewer actions taken over the worker's review API, recorded in ``KUMEO_AUDIT`` as the dashboard records its own.

One record per comment, approval or rejection, on ``kumeo.audit.review`` (the dashboard writes ``kumeo.audit.ui``,
deploys ``kumeo.audit.deploy``; one stream holds them all)::

    {"id": "…", "at": "2025-01-31T12:00:00.123Z", "action": "review.approve", "via": "review-api",
     "user": {"subject": "ana", "email": "ana@example.com", "role": "reviewer", "issuer": "…"},
     "workflow": "claims", "agent": "adjuster", "review_id": "…", "event_id": "…", "comment": "ok",
     "fields": {}, "status": "approved", "released": true}

``user`` is the identity the verifier authenticated, never a field of the request. The API makes sure the record can
be stored *before* it acts (:meth:`ReviewAudit.ready`): a worker that cannot write to the audit stream decides
nothing (503). Its NATS user then needs publish on ``kumeo.audit.review`` and, to find the stream,
``$JS.API.STREAM.INFO.KUMEO_AUDIT``. The stream code is the dashboard's (``kumeo_iac.dashboard._audit``), imported
when the first decision is made: a worker that can decide has the dashboard's verifier, so it has that module too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["REVIEW_SUBJECT", "ReviewAudit"]

REVIEW_SUBJECT: Final = "kumeo.audit.review"


class ReviewAudit:
    """Writes the review API's audit records through the worker's JetStream context (``js()``, read on each use so
    a reconnected worker's new context is the one used)."""

    def __init__(self, js: Callable[[], Any], *, subject: str = REVIEW_SUBJECT, timeout: float = 5.0) -> None:
        self._js = js
        self.subject = subject
        self.timeout = timeout
        self._log: Any = None
        self._log_js: Any = None

    def _audit_log(self) -> Any:
        from kumeo_iac.dashboard import AuditLog

        js = self._js()
        if js is None:
            raise ConnectionError("the worker is not connected to NATS")
        if self._log is None or self._log_js is not js:
            self._log, self._log_js = AuditLog(js, self.subject), js
        return self._log

    async def ready(self) -> None:
        """Make sure the audit stream exists and covers :attr:`subject`; raises when it cannot be (no decision).

        Asked of the server before every action (one request; people decide at people's pace), so a worker that
        lost NATS since its last decision refuses the next one instead of taking it unrecorded."""
        from kumeo_iac.dashboard import ensure_audit_stream

        await asyncio.wait_for(ensure_audit_stream(self._audit_log().js), self.timeout)

    async def record(self, action: str, user: Mapping[str, Any], **details: Any) -> dict[str, Any]:
        """Store one record (``action`` is ``comment``/``approve``/``reject``); returns it with its stream sequence."""
        return await asyncio.wait_for(
            self._audit_log().record(f"review.{action}", dict(user), via="review-api", **details), self.timeout)
