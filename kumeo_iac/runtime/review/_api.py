"""The review HTTP API, served under ``/reviews`` on the HumanReview worker's own listener (loopback by default).

====================================  =========================================================================
``GET  /reviews``                     open reviews (pending and escalated), oldest first;
                                      ``?status=all|pending|escalated|approved|rejected`` for others
``GET  /reviews/{id}``                one review: payload, display fields, rounds, deadline, ``revision``
``POST /reviews/{id}/comment``        ``{comment, fields?, revision?}``: a round; the review stays open
``POST /reviews/{id}/approve``        ``{comment?, fields?, revision?}``: decide and release the event
``POST /reviews/{id}/reject``         same; the event is released with ``review.decision == "rejected"``
====================================  =========================================================================

Every request carries ``Authorization: Bearer <token>``, checked by the dashboard's verifier (see ``_access.py``):
GETs need the **viewer** role, POSTs **reviewer**; 401 without a valid token, 403 without the role. The reviewer
recorded is the authenticated identity (its e-mail, else name, else subject, as the dashboard records it); a
``reviewer`` field in the body is ignored. Without a configured verifier every POST is 403 and GETs are answered to
loopback clients only.

Every comment, approval and rejection is recorded in ``KUMEO_AUDIT`` (``kumeo.audit.review``, see ``_audit.py``)
with the authenticated identity, as the dashboard records its own; the API makes sure it can write that record
before it acts, so when it cannot (503) nothing is decided. The answer carries ``audit: {seq, id}``.

Answers are JSON. ``revision`` (in the body, or an ``If-Match`` header) makes an action conditional: if the review
changed since that revision the answer is **409** and nothing is written, so two reviewers racing on one review
cannot both win. Without it an action applies to the latest revision (a comment written in between is kept), but
acting on a review that is already decided is a 409 too. Other errors: 400 (body is not a JSON object), 404 (no
such review), 405, 422 (a field that is not editable), 503 (NATS unreachable, or the verifier cannot reach the
OIDC provider).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, unquote

from kumeo_iac.runtime.review._access import AccessDenied, ReviewAccess
from kumeo_iac.runtime.review._audit import ReviewAudit
from kumeo_iac.runtime.review._model import (
    InvalidReviewAction,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    ReviewStatus,
)
from kumeo_iac.runtime.review._queue import ReviewQueue

__all__ = ["ReviewAPI"]

log = logging.getLogger("kumeo.runtime.review")

_JSON = "application/json"
_ACTIONS = ("comment", "approve", "reject")


class ReviewAPI:
    """Routes review requests to a :class:`ReviewQueue`; mount :meth:`handle` at :attr:`prefix`."""

    prefix = "/reviews"

    def __init__(self, queue: ReviewQueue, access: ReviewAccess | None = None,
                 audit: ReviewAudit | None = None) -> None:
        self.queue = queue
        #: Who may call: no verifier (the default) refuses every state-changing request.
        self.access = access if access is not None else ReviewAccess()
        #: Where every action is recorded; the HumanReview worker always gives one (None: an in-memory queue
        #: in tests or a library, with no NATS to record on).
        self.audit = audit

    async def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, str]:
        path, _, query = target.partition("?")
        parts = [unquote(p) for p in path[len(self.prefix):].split("/") if p]
        try:
            identity = await self.access.check(headers, "viewer" if method in ("GET", "HEAD") else "reviewer")
        except AccessDenied as exc:
            return _error(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 - the verifier failed (provider unreachable): not a yes
            log.warning("review API %s %s: authentication failed: %r", method, path, exc)
            return _error(503, f"cannot check your token now: {type(exc).__name__}; try again")
        try:
            if not parts:
                if method not in ("GET", "HEAD"):
                    return _error(405, "use GET /reviews")
                return await self._list(parse_qs(query))
            if len(parts) == 1:
                if method not in ("GET", "HEAD"):
                    return _error(405, f"use GET /reviews/{parts[0]}, or POST "
                                       f"/reviews/{parts[0]}/approve|reject|comment")
                return _ok((await self.queue.store.get(parts[0])).to_api())
            if len(parts) == 2 and parts[1] in _ACTIONS:
                if method != "POST":
                    return _error(405, f"use POST /reviews/{parts[0]}/{parts[1]}")
                if identity is None:  # unreachable: check() refuses a POST without a verifier
                    return _error(403, "refused: no authenticated identity")
                return await self._act(parts[0], parts[1], identity, headers, body)
            return _error(404, f"no such route: {method} {path} (see GET /reviews)")
        except ReviewNotFound as exc:
            return _error(404, str(exc))
        except ReviewConflict as exc:
            return _error(409, str(exc))
        except InvalidReviewAction as exc:
            return _error(422, str(exc))
        except ReviewError as exc:
            return _error(500, str(exc))
        except Exception as exc:  # noqa: BLE001 - the bucket is unreachable (NATS down): try again later
            log.warning("review API %s %s failed: %r", method, path, exc)
            return _error(503, f"the review store is unavailable: {type(exc).__name__}; try again")

    async def _list(self, query: dict[str, list[str]]) -> tuple[int, str, str]:
        wanted = (query.get("status") or ["open"])[0]
        reviews = await self.queue.store.list()
        if wanted == "open":
            reviews = [r for r in reviews if r.is_open]
        elif wanted != "all":
            try:
                status = ReviewStatus(wanted)
            except ValueError:
                return _error(400, f"status {wanted!r}: use open, all, "
                                   + ", ".join(s.value for s in ReviewStatus))
            reviews = [r for r in reviews if r.status is status]
        return _ok({"agent": self.queue.agent, "reviews": [r.summary() for r in reviews]})

    async def _act(self, review_id: str, action: str, identity: Any, headers: dict[str, str],
                   body: bytes) -> tuple[int, str, str]:
        try:
            request = json.loads(body or b"{}")
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        if not isinstance(request, dict):
            return _error(400, "the body must be a JSON object: {comment, fields?, revision?}")
        revision = _revision(request.get("revision"), headers.get("if-match"))
        text = request.get("comment")
        if text is not None and not isinstance(text, str):
            raise InvalidReviewAction("'comment' must be a string")
        if self.audit is not None:
            try:  # an action that could not be audited is not taken
                await self.audit.ready()
            except Exception as exc:  # noqa: BLE001 - NATS down, no permission, no stream: refuse, say why
                log.error("review %s/%s: %s by %s refused: cannot write to the audit stream: %r", self.queue.agent,
                          review_id, action, identity.subject, exc)
                return _error(503, f"cannot record this {action} in the audit stream KUMEO_AUDIT "
                                   f"({type(exc).__name__}), so nothing was done; try again, or decide in the "
                                   "dashboard")
        # The reviewer is who the token says, never a body field (a "reviewer" in the body is ignored).
        fields = request.get("fields")
        kwargs: dict[str, Any] = {"reviewer": identity.display, "text": text, "fields": fields,
                                  "revision": revision}
        if action == "comment":
            review = await self.queue.comment(review_id, **kwargs)
        elif action == "approve":
            review = await self.queue.approve(review_id, **kwargs)
        else:
            review = await self.queue.reject(review_id, **kwargs)
        log.info("review %s/%s: %s by %s (%s)", self.queue.agent, review_id, action, identity.subject,
                 identity.role.label)
        audit: dict[str, Any] | None = None
        if self.audit is not None:
            try:
                record = await self.audit.record(
                    action, identity.to_json(), workflow=self.queue.workflow, agent=self.queue.agent,
                    review_id=review.id, event_id=review.event_id, comment=text, fields=fields or {},
                    status=review.status.value, released=review.released)
                audit = {"seq": record["seq"], "id": record["id"]}
            except Exception as exc:  # noqa: BLE001 - the stream was writable a moment ago; the action stands
                log.error("review %s/%s: %s by %s was made but its audit record was not stored: %r",
                          self.queue.agent, review_id, action, identity.subject, exc)
        return _ok({**review.to_api(), "audit": audit})


def _revision(body_value: Any, if_match: str | None) -> int | None:
    value = body_value
    if value is None and if_match:
        value = if_match.removeprefix("W/").strip('"')
    if value is None:
        return None
    try:
        revision = int(value)
    except (TypeError, ValueError):
        raise InvalidReviewAction(f"'revision' must be the integer revision you read, got {value!r}") from None
    return revision


def _ok(data: Any) -> tuple[int, str, str]:
    return 200, json.dumps(data, ensure_ascii=False) + "\n", _JSON


def _error(status: int, message: str) -> tuple[int, str, str]:
    return status, json.dumps({"error": message}, ensure_ascii=False) + "\n", _JSON
