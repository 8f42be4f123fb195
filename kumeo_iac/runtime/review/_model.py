"""A pending review as it is stored: the parked event, what reviewers said, and the decision; transitions are pure.

Every change to a review is a function from one :class:`Review` to the next (``comment``, ``decide``,
``time_out``, ``mark_released``, ``touch``), so the rules (who may do what, when) are testable without NATS; the
store applies them with revision-checked writes.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope

__all__ = [
    "InvalidReviewAction",
    "Review",
    "ReviewConflict",
    "ReviewError",
    "ReviewNotFound",
    "ReviewStatus",
    "Round",
    "comment",
    "decide",
    "get_path",
    "mark_released",
    "new_review",
    "review_id_for",
    "time_out",
    "touch",
]

#: The record layout; bumped when a field changes meaning, so an old worker can refuse a newer record.
RECORD_VERSION: Final = 1
#: Who decides when nobody did before the deadline.
TIMEOUT_REVIEWER: Final = "kumeo:timeout"

_ID_TOKEN: Final = re.compile(r"[-_=A-Za-z0-9]+\Z")


class ReviewStatus(str, enum.Enum):
    """Where a review stands; ``pending`` and ``escalated`` are open (reviewers may still act)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ESCALATED = "escalated"



class ReviewError(KumeoRuntimeError):
    """A review action that cannot be done."""


class ReviewNotFound(ReviewError):
    """No review has this id (never parked, or expired from the bucket)."""


class ReviewConflict(ReviewError):
    """The review changed since the caller read it (stale revision), or it is already decided."""


class InvalidReviewAction(ReviewError):
    """The request itself is wrong: no reviewer, a field that is not editable, an unknown action."""


def review_id_for(event_id: str) -> str:
    """The id of the review of one event: the event id when a KV key and a URL path segment can hold it, else a hash."""
    return event_id if _ID_TOKEN.match(event_id) else hashlib.sha256(event_id.encode()).hexdigest()[:40]


def now_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text).timestamp()


@dataclasses.dataclass(frozen=True)
class Round:
    """One reviewer action: a comment, a decision, or what the timeout did."""

    reviewer: str
    action: str  # "comment" | "approve" | "reject" | "escalate" | "timeout"
    at: str
    comment: str | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reviewer": self.reviewer, "action": self.action, "at": self.at}
        if self.comment is not None:
            out["comment"] = self.comment
        if self.fields:
            out["fields"] = dict(self.fields)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Round:
        return cls(reviewer=str(data.get("reviewer", "")), action=str(data.get("action", "")),
                   at=str(data.get("at", "")), comment=data.get("comment"), fields=dict(data.get("fields") or {}))


@dataclasses.dataclass(frozen=True)
class Review:
    """One parked event and its review; ``revision`` is the KV revision it was read at (0: not stored yet)."""

    id: str
    agent: str
    workflow: str
    event_id: str
    payload: dict[str, Any]
    headers: dict[str, str]
    status: ReviewStatus
    created_at: str
    updated_at: str
    deadline: str | None = None
    title: str | None = None
    #: What the UI shows: ``[{field, label, type}]`` from the agent's ``config.ui.fields``.
    display: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Field values reviewers changed (``fields`` of their requests), applied to the payload on release.
    edits: dict[str, Any] = dataclasses.field(default_factory=dict)
    rounds: list[Round] = dataclasses.field(default_factory=list)
    #: ``{decision, reviewer, at, timed_out}`` once decided.
    decision: dict[str, Any] | None = None
    escalated_at: str | None = None
    #: True once the released event was published (a sweeper republishes decided reviews that are not).
    released: bool = False
    revision: int = 0

    @property
    def is_open(self) -> bool:
        """Not decided yet: reviewers may still comment, approve or reject (``pending`` or ``escalated``)."""
        return self.decision is None

    @property
    def deadline_ts(self) -> float | None:
        return parse_iso(self.deadline)

    @property
    def traceparent(self) -> str | None:
        return self.headers.get(envelope.TRACEPARENT)

    def current_payload(self) -> dict[str, Any]:
        """The payload with the reviewers' edits applied."""
        data = copy.deepcopy(self.payload)
        for path, value in self.edits.items():
            _set_path(data, path, value)
        return data

    def fields(self) -> list[dict[str, Any]]:
        """The display fields with their current values."""
        data = self.current_payload()
        return [{**spec, "value": get_path(data, spec["field"])} for spec in self.display]

    def released_event(self) -> dict[str, Any]:
        """The event this review releases: the (edited) payload plus ``review: {decision, reviewer, comments…}``."""
        if self.decision is None:
            raise ReviewError(f"review {self.id} is not decided yet")
        data = self.current_payload()
        data["review"] = {
            "id": self.id,
            "decision": self.decision["decision"],
            "reviewer": self.decision["reviewer"],
            "decided_at": self.decision["at"],
            "timed_out": bool(self.decision.get("timed_out")),
            "escalated": self.escalated_at is not None,
            "comments": [
                {"reviewer": r.reviewer, "comment": r.comment, "at": r.at, "action": r.action}
                for r in self.rounds if r.comment
            ],
            "rounds": len(self.rounds),
        }
        if self.edits:
            data["review"]["edits"] = dict(self.edits)
        return data

    def summary(self) -> dict[str, Any]:
        """What ``GET /reviews`` lists for one review."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "status": self.status.value,
            "title": self.title,
            "fields": self.fields(),
            "created_at": self.created_at,
            "deadline": self.deadline,
            "rounds": len(self.rounds),
            "revision": self.revision,
        }

    def to_json(self) -> dict[str, Any]:
        """The stored record (also what ``GET /reviews/{id}`` returns, plus ``revision`` and ``fields``)."""
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "agent": self.agent,
            "workflow": self.workflow,
            "event_id": self.event_id,
            "status": self.status.value,
            "payload": self.payload,
            "headers": dict(self.headers),
            "title": self.title,
            "display": [dict(d) for d in self.display],
            "edits": dict(self.edits),
            "rounds": [r.to_json() for r in self.rounds],
            "decision": dict(self.decision) if self.decision else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deadline": self.deadline,
            "escalated_at": self.escalated_at,
            "released": self.released,
        }

    def to_api(self) -> dict[str, Any]:
        return {**self.to_json(), "fields": self.fields(), "revision": self.revision}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], revision: int = 0) -> Review:
        version = data.get("version", RECORD_VERSION)
        if not isinstance(version, int) or version > RECORD_VERSION:
            raise ReviewError(f"review record version {version!r} is newer than this runtime understands")
        return cls(
            id=str(data["id"]),
            agent=str(data.get("agent", "")),
            workflow=str(data.get("workflow", "")),
            event_id=str(data["event_id"]),
            payload=dict(data.get("payload") or {}),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            status=ReviewStatus(data["status"]),
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            deadline=data.get("deadline"),
            title=data.get("title"),
            display=[dict(d) for d in data.get("display") or []],
            edits=dict(data.get("edits") or {}),
            rounds=[Round.from_json(r) for r in data.get("rounds") or []],
            decision=dict(data["decision"]) if data.get("decision") else None,
            escalated_at=data.get("escalated_at"),
            released=bool(data.get("released")),
            revision=revision,
        )


# -- transitions (pure) -------------------------------------------------------------------------------------------


def new_review(
    *,
    agent: str,
    workflow: str,
    event_id: str,
    payload: dict[str, Any],
    traceparent: str | None,
    now: float,
    timeout_seconds: float | None,
    title: str | None = None,
    display: list[dict[str, Any]] | None = None,
) -> Review:
    """The pending review of one event, parked at ``now``."""
    headers = {envelope.EVENT_ID: event_id}
    if traceparent:
        headers[envelope.TRACEPARENT] = traceparent
    stamp = now_iso(now)
    return Review(
        id=review_id_for(event_id), agent=agent, workflow=workflow, event_id=event_id, payload=payload,
        headers=headers, status=ReviewStatus.PENDING, created_at=stamp, updated_at=stamp,
        deadline=now_iso(now + timeout_seconds) if timeout_seconds else None, title=title,
        display=list(display or []),
    )


def comment(review: Review, *, reviewer: str, text: str | None, fields: Mapping[str, Any] | None,
            editable: frozenset[str], now: float) -> Review:
    """Add a round of comments (and field edits); the review stays open."""
    _require_open(review)
    reviewer = _require_reviewer(reviewer)
    if not text and not fields:
        raise InvalidReviewAction("a comment needs 'comment' text or 'fields' to change")
    edits = _check_fields(fields, editable)
    stamp = now_iso(now)
    return dataclasses.replace(
        review, rounds=[*review.rounds, Round(reviewer, "comment", stamp, text or None, edits)],
        edits={**review.edits, **edits}, updated_at=stamp)


def decide(review: Review, *, approve: bool, reviewer: str, text: str | None, fields: Mapping[str, Any] | None,
           editable: frozenset[str], now: float) -> Review:
    """Approve or reject an open review: it is decided and waits to be released."""
    _require_open(review)
    reviewer = _require_reviewer(reviewer)
    edits = _check_fields(fields, editable)
    stamp = now_iso(now)
    status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
    action = "approve" if approve else "reject"
    return dataclasses.replace(
        review, status=status, rounds=[*review.rounds, Round(reviewer, action, stamp, text or None, edits)],
        edits={**review.edits, **edits}, updated_at=stamp,
        decision={"decision": status.value, "reviewer": reviewer, "at": stamp, "timed_out": False})


def time_out(review: Review, *, on_timeout: str, now: float, escalation_seconds: float | None) -> Review:
    """What happens at the deadline: approve, reject, or escalate (once; an escalated review that times out again
    is released with the decision ``escalated``, so no event waits forever)."""
    _require_open(review)
    stamp = now_iso(now)
    if on_timeout == "escalate" and review.status is ReviewStatus.PENDING:
        return dataclasses.replace(
            review, status=ReviewStatus.ESCALATED, escalated_at=stamp, updated_at=stamp,
            deadline=now_iso(now + escalation_seconds) if escalation_seconds else None,
            rounds=[*review.rounds, Round(TIMEOUT_REVIEWER, "escalate", stamp, "no decision before the deadline")])
    if on_timeout == "escalate":
        decision, status = "escalated", ReviewStatus.ESCALATED
    elif on_timeout == "approve":
        decision, status = "approved", ReviewStatus.APPROVED
    else:
        decision, status = "rejected", ReviewStatus.REJECTED
    return dataclasses.replace(
        review, status=status, updated_at=stamp,
        rounds=[*review.rounds,
                Round(TIMEOUT_REVIEWER, "timeout", stamp, f"no decision before the deadline: {decision}")],
        decision={"decision": decision, "reviewer": TIMEOUT_REVIEWER, "at": stamp, "timed_out": True})


def mark_released(review: Review, *, now: float) -> Review:
    if review.decision is None:
        raise ReviewError(f"review {review.id} is not decided yet")
    return dataclasses.replace(review, released=True, updated_at=now_iso(now))


def touch(review: Review, *, now: float) -> Review:
    """The same review written again, so a bucket TTL counts its age from now (see ReviewQueue.sweep)."""
    return dataclasses.replace(review, updated_at=now_iso(now))


def is_decided_unreleased(review: Review) -> bool:
    return review.decision is not None and not review.released


# -- helpers ------------------------------------------------------------------------------------------------------


def _require_open(review: Review) -> None:
    if review.decision is not None:
        raise ReviewConflict(f"review {review.id} is already decided: {review.decision['decision']} by "
                             f"{review.decision['reviewer']}")


def _require_reviewer(reviewer: Any) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InvalidReviewAction("'reviewer' (who is acting, a non-empty string) is required")
    return reviewer.strip()


def _check_fields(fields: Mapping[str, Any] | None, editable: frozenset[str]) -> dict[str, Any]:
    if not fields:
        return {}
    if not isinstance(fields, Mapping):
        raise InvalidReviewAction("'fields' must be an object of field → new value")
    wrong = sorted(str(k) for k in fields if k not in editable)
    if wrong:
        allowed = ", ".join(sorted(editable)) or "none (the agent's config.ui.fields lists none)"
        raise InvalidReviewAction(f"field(s) {', '.join(wrong)} cannot be changed here; editable: {allowed}")
    return {str(k): v for k, v in fields.items()}


def get_path(data: Any, path: str) -> Any:
    """``a.b.c`` of nested objects; None when any step is missing."""
    value = data
    for name in path.split("."):
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        else:
            return None
    return value


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    names = path.split(".")
    target = data
    for name in names[:-1]:
        child = target.get(name)
        if not isinstance(child, dict):
            child = {}
            target[name] = child
        target = child
    target[names[-1]] = value
