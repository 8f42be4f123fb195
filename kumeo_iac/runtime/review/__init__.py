"""Durable human review: parked events in a JetStream KV bucket, a review HTTP API, notifications and timeouts.

The HumanReview agent (``kumeo_iac.runtime.agents.human_review``) is a thin layer over these pieces:

- :class:`Review` and its pure transitions (comment, decide, time out) — the rules;
- :class:`ReviewStore` — reviews in KV with revision-checked writes (:class:`NatsKeyValue`, :class:`MemoryKeyValue`);
- :class:`ReviewQueue` — park, act, sweep deadlines, and release decided events (an outbox);
- :class:`ReviewAPI` — ``/reviews`` over HTTP; :class:`ReviewAccess` — who may call it (the dashboard's verifier);
  :class:`ReviewAudit` — every action it takes, recorded in ``KUMEO_AUDIT``;
  :class:`WebhookNotifier` — best-effort JSON POSTs;
- :class:`ReviewSettings` — the agent's ``config:`` parsed once.
"""

from kumeo_iac.runtime.review._access import AccessDenied, ReviewAccess, listen_address
from kumeo_iac.runtime.review._api import ReviewAPI
from kumeo_iac.runtime.review._audit import REVIEW_SUBJECT, ReviewAudit
from kumeo_iac.runtime.review._model import (
    InvalidReviewAction,
    Review,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    ReviewStatus,
    Round,
    review_id_for,
)
from kumeo_iac.runtime.review._notify import WebhookNotifier
from kumeo_iac.runtime.review._queue import ReviewQueue, SweepResult
from kumeo_iac.runtime.review._settings import (
    ReviewSettings,
    expand_env,
    parse_duration,
)
from kumeo_iac.runtime.review._store import (
    KeyValueBackend,
    MemoryKeyValue,
    NatsKeyValue,
    ReviewStore,
)

__all__ = [
    "REVIEW_SUBJECT",
    "AccessDenied",
    "InvalidReviewAction",
    "KeyValueBackend",
    "MemoryKeyValue",
    "NatsKeyValue",
    "Review",
    "ReviewAPI",
    "ReviewAccess",
    "ReviewAudit",
    "ReviewConflict",
    "ReviewError",
    "ReviewNotFound",
    "ReviewQueue",
    "ReviewSettings",
    "ReviewStatus",
    "ReviewStore",
    "Round",
    "SweepResult",
    "WebhookNotifier",
    "expand_env",
    "listen_address",
    "parse_duration",
    "review_id_for",
]
