"""Human review without NATS: the record and its transitions, settings, the store's revision rules, the queue's
timeouts and releases, and the HTTP API over an in-memory bucket."""

from __future__ import annotations

import json

import pytest

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime.review import (
    InvalidReviewAction,
    MemoryKeyValue,
    Review,
    ReviewAPI,
    ReviewConflict,
    ReviewNotFound,
    ReviewQueue,
    ReviewSettings,
    ReviewStatus,
    ReviewStore,
    expand_env,
    parse_duration,
    review_id_for,
)
from kumeo_iac.runtime.review._model import comment, decide, new_review, time_out

T0 = 1_700_000_000.0
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _review(**kw) -> Review:
    base = {"agent": "adjuster", "workflow": "Claims", "event_id": "e1", "payload": {"claim_id": "c1", "amount": 12000},
            "traceparent": TRACE, "now": T0, "timeout_seconds": 3600.0, "title": "Large claim",
            "display": [{"field": "amount", "label": "Amount", "type": "number"}]}
    base.update(kw)
    return new_review(**base)


# -- the record and its transitions -------------------------------------------------------------------------------


def test_a_new_review_is_pending_with_its_deadline_headers_and_display_fields():
    review = _review()
    assert review.status is ReviewStatus.PENDING and review.is_open
    assert review.deadline_ts == pytest.approx(T0 + 3600)
    assert review.headers == {envelope.EVENT_ID: "e1", envelope.TRACEPARENT: TRACE}
    assert review.fields() == [{"field": "amount", "label": "Amount", "type": "number", "value": 12000}]
    assert Review.from_json(json.loads(json.dumps(review.to_json()))) == review


def test_comment_rounds_keep_the_review_open_and_decide_releases_payload_with_the_review():
    editable = frozenset({"amount"})
    review = comment(_review(), reviewer="ana", text="check the invoice", fields=None, editable=editable, now=T0 + 1)
    review = comment(review, reviewer="bo", text="invoice is fine", fields={"amount": 11500}, editable=editable,
                     now=T0 + 2)
    assert review.is_open and len(review.rounds) == 2
    review = decide(review, approve=True, reviewer="ana", text="ok", fields=None, editable=editable, now=T0 + 3)
    assert review.status is ReviewStatus.APPROVED and not review.is_open
    event = review.released_event()
    assert event["amount"] == 11500 and event["claim_id"] == "c1"
    assert event["review"]["decision"] == "approved" and event["review"]["reviewer"] == "ana"
    assert [c["comment"] for c in event["review"]["comments"]] == ["check the invoice", "invoice is fine", "ok"]
    assert event["review"]["rounds"] == 3 and event["review"]["timed_out"] is False
    assert review.payload["amount"] == 12000  # the original stays as it arrived


def test_a_decided_review_cannot_be_acted_on_again_and_requests_are_checked():
    editable = frozenset({"amount"})
    decided = decide(_review(), approve=False, reviewer="ana", text=None, fields=None, editable=editable, now=T0)
    assert decided.released_event()["review"]["decision"] == "rejected"
    with pytest.raises(ReviewConflict, match="already decided: rejected by ana"):
        decide(decided, approve=True, reviewer="bo", text=None, fields=None, editable=editable, now=T0)
    with pytest.raises(InvalidReviewAction, match="reviewer"):
        comment(_review(), reviewer=" ", text="x", fields=None, editable=editable, now=T0)
    with pytest.raises(InvalidReviewAction, match="claim_id cannot be changed here; editable: amount"):
        comment(_review(), reviewer="ana", text=None, fields={"claim_id": "x"}, editable=editable, now=T0)
    with pytest.raises(InvalidReviewAction, match="needs 'comment'"):
        comment(_review(), reviewer="ana", text="", fields=None, editable=editable, now=T0)


@pytest.mark.parametrize(("on_timeout", "decision"), [("approve", "approved"), ("reject", "rejected")])
def test_a_timeout_decides_as_configured(on_timeout, decision):
    review = time_out(_review(), on_timeout=on_timeout, now=T0 + 3601, escalation_seconds=None)
    event = review.released_event()["review"]
    assert event["decision"] == decision and event["timed_out"] is True and event["reviewer"] == "kumeo:timeout"


def test_escalation_keeps_the_review_open_once_then_releases_it_as_escalated():
    review = time_out(_review(), on_timeout="escalate", now=T0 + 3601, escalation_seconds=600.0)
    assert review.status is ReviewStatus.ESCALATED and review.is_open
    assert review.deadline_ts == pytest.approx(T0 + 3601 + 600)
    again = time_out(review, on_timeout="escalate", now=T0 + 5000, escalation_seconds=600.0)
    assert not again.is_open
    assert again.released_event()["review"].items() >= {"decision": "escalated", "escalated": True}.items()


def test_review_ids_are_the_event_id_or_a_hash_when_it_cannot_be_a_key():
    assert review_id_for("KUMEO_X_SOURCES-12") == "KUMEO_X_SOURCES-12"
    hashed = review_id_for("orders/2024:1 a")
    assert len(hashed) == 40 and hashed.isalnum()


# -- settings ----------------------------------------------------------------------------------------------------


def test_settings_read_ui_notifications_timeout_and_expand_env():
    settings = ReviewSettings.from_config({
        "ui": {"title": "Large claim", "fields": [{"field": "claim_id", "label": "Claim"}, "summary"]},
        "notifications": {"webhook": "https://hooks.example.com/${env.HOOK_TOKEN}", "email": "a@example.com"},
        "timeout": "48h", "on_timeout": "escalate", "escalation_path": ["https://esc.example.com", "lead"],
    }, "HumanReview 'adjuster'", interface="web", environ={"HOOK_TOKEN": "t0k"})
    assert settings.webhook == "https://hooks.example.com/t0k"
    assert settings.timeout_seconds == 48 * 3600 and settings.escalation_seconds == 48 * 3600
    assert settings.editable == {"claim_id", "summary"}
    assert settings.escalation_urls == ("https://esc.example.com",)
    assert settings.email == ("a@example.com",)
    assert settings.sweep_seconds == 5.0


@pytest.mark.parametrize(("config", "message"), [
    ({"on_timeout": "ignore"}, "on_timeout 'ignore' must be one of approve, reject, escalate"),
    ({"timeout": "two days"}, "config.timeout 'two days' is not a duration"),
    ({"notifications": {"webhook": "${env.NOPE_NOT_SET}"}}, "NOPE_NOT_SET is not set"),
    ({"notifications": {"webhook": "ftp://x"}}, "is not an http"),
    ({"ui": {"fields": [3]}}, r"config.ui.fields\[0\] must be a field name"),
])
def test_bad_settings_fail_at_start_naming_the_agent(config, message):
    with pytest.raises(KumeoRuntimeError, match=message):
        ReviewSettings.from_config(config, "HumanReview 'adjuster'", environ={})


def test_durations_and_env_expansion():
    assert parse_duration("500ms", "x") == 0.5 and parse_duration(90, "x") == 90.0
    assert parse_duration("2d", "x") == 172800
    assert expand_env("a${env.A}b${env.A}", "x", {"A": "-"}) == "a-b-"
    with pytest.raises(KumeoRuntimeError, match="interface 'slack' is not supported"):
        ReviewSettings.from_config({}, "agent", interface="slack")


# -- store, queue and API over an in-memory bucket ----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _queue(config=None, ttl=None, fail_release=0):
    clock = _Clock()
    released: list[dict] = []
    failures = {"left": fail_release}

    async def release(review):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("NATS is down")
        released.append(review.released_event())

    settings = ReviewSettings.from_config(config or {"ui": {"fields": ["amount"]}, "timeout": "1h"}, "agent")
    queue = ReviewQueue(ReviewStore(MemoryKeyValue(ttl=ttl), "adjuster"), settings, workflow="Claims",
                        release=release, clock=clock)
    queue.bucket_ttl = ttl
    return queue, clock, released


async def test_parking_is_idempotent_for_a_redelivered_event():
    queue, _, _ = _queue()
    first, created = await queue.park("e1", {"amount": 1}, TRACE)
    again, created_again = await queue.park("e1", {"amount": 1}, TRACE)
    assert created and not created_again and again.revision == first.revision


async def test_a_stale_revision_is_a_conflict_and_without_one_the_latest_applies():
    queue, _, released = _queue()
    parked, _ = await queue.park("e1", {"amount": 1}, None)
    commented = await queue.comment("e1", reviewer="ana", text="hm", revision=parked.revision)
    with pytest.raises(ReviewConflict, match="someone acted on it first"):
        await queue.approve("e1", reviewer="bo", revision=parked.revision)
    approved = await queue.approve("e1", reviewer="bo")
    assert approved.released and approved.revision > commented.revision
    assert released[0]["review"]["decision"] == "approved"
    with pytest.raises(ReviewConflict, match="already decided"):
        await queue.reject("e1", reviewer="cy")
    with pytest.raises(ReviewNotFound):
        await queue.comment("nope", reviewer="ana", text="x")


async def test_the_sweep_times_out_escalates_retries_releases_and_refreshes():
    queue, clock, released = _queue({"timeout": "1h", "on_timeout": "approve"}, ttl=3 * 3600, fail_release=1)
    await queue.park("late", {"amount": 1}, None)
    clock.now += 1800
    await queue.park("young", {"amount": 2}, None)
    clock.now += 1801  # "late" is past its deadline, "young" is not
    result = await queue.sweep()
    assert result.timed_out == 1 and result.released == 0  # the publish failed: decided, not released
    assert (await queue.store.get("late")).status is ReviewStatus.APPROVED
    result = await queue.sweep()
    assert result.released == 1 and released[0]["review"]["timed_out"] is True
    assert (await queue.store.get("late")).released


async def test_the_sweep_rewrites_open_reviews_before_the_bucket_ttl_forgets_them():
    queue, clock, _ = _queue({"timeout": "10h"}, ttl=3 * 3600)
    parked, _ = await queue.park("e1", {"amount": 1}, None)
    clock.now += 1800
    assert (await queue.sweep()).refreshed == 0
    clock.now += 1801  # older than a third of the TTL since its last write
    assert (await queue.sweep()).refreshed == 1
    assert (await queue.store.get("e1")).revision > parked.revision


async def test_escalation_through_the_sweep_keeps_the_review_listed_as_open():
    queue, clock, released = _queue({"timeout": "1h", "on_timeout": "escalate", "escalation_timeout": "30m"})
    await queue.park("e1", {"amount": 1}, None)
    clock.now += 3601
    assert (await queue.sweep()).escalated == 1
    review = await queue.store.get("e1")
    assert review.status is ReviewStatus.ESCALATED and review.is_open and not released
    await queue.reject("e1", reviewer="lead", text="no")
    assert released[0]["review"].items() >= {"decision": "rejected", "escalated": True}.items()


#: A request from this machine with the local token (the dashboard's LocalTokenAuth: its holder is an admin).
LOCAL = {":peer": "127.0.0.1", "authorization": "Bearer t0ken"}


async def _call(api, method, target, body=None, headers=None):
    status, text, ctype = await api.handle(method, target, dict(LOCAL, **(headers or {})),
                                           json.dumps(body).encode() if body is not None else b"")
    assert ctype == "application/json"
    return status, json.loads(text)


async def test_the_http_api_lists_shows_and_acts_with_status_codes():
    pytest.importorskip("starlette")
    from kumeo_iac.dashboard import LocalTokenAuth
    from kumeo_iac.runtime.review import ReviewAccess

    queue, _, released = _queue()
    api = ReviewAPI(queue, ReviewAccess(auth=LocalTokenAuth(token="t0ken", user="ana")))
    await queue.park("e1", {"amount": 5, "claim_id": "c"}, None)
    await queue.park("e2", {"amount": 6}, None)

    status, body = await _call(api, "GET", "/reviews")
    assert status == 200 and [r["id"] for r in body["reviews"]] == ["e1", "e2"]
    status, one = await _call(api, "GET", "/reviews/e1")
    assert status == 200 and one["payload"]["claim_id"] == "c" and one["fields"][0]["value"] == 5

    status, body = await _call(api, "POST", "/reviews/e1/comment", {"reviewer": "ana", "comment": "?",
                                                                     "revision": one["revision"]})
    assert status == 200 and body["status"] == "pending" and len(body["rounds"]) == 1
    status, body = await _call(api, "POST", "/reviews/e1/approve", {"reviewer": "bo"},
                               headers={"if-match": f'"{one["revision"]}"'})
    assert status == 409 and "someone acted on it first" in body["error"]
    status, body = await _call(api, "POST", "/reviews/e1/approve", {"reviewer": "bo", "fields": {"amount": 4}})
    assert status == 200 and body["status"] == "approved" and released[0]["amount"] == 4
    # The reviewer is the token's identity: the "reviewer" fields of the bodies were ignored.
    assert [r["reviewer"] for r in body["rounds"]] == ["ana", "ana"] and released[0]["review"]["reviewer"] == "ana"

    status, body = await _call(api, "GET", "/reviews")
    assert [r["id"] for r in body["reviews"]] == ["e2"]
    status, body = await _call(api, "GET", "/reviews?status=approved")
    assert [r["id"] for r in body["reviews"]] == ["e1"]

    assert (await _call(api, "GET", "/reviews/zz"))[0] == 404
    assert (await _call(api, "POST", "/reviews/e2/approve", {"reviewer": "a", "fields": {"x": 1}}))[0] == 422
    assert (await _call(api, "POST", "/reviews/e2/approve", [1]))[0] == 400
    assert (await _call(api, "GET", "/reviews/e2/approve"))[0] == 405
    assert (await _call(api, "POST", "/reviews/e2/frobnicate", {}))[0] == 404
    assert (await _call(api, "GET", "/reviews?status=weird"))[0] == 400
