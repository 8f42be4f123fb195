"""HumanReview on a real nats-server: events parked in KV and acked, decided over the worker's HTTP API, released
to the agent's outputs with the review attached, timeouts, webhooks, and a worker restart that loses nothing.

The review API checks callers with the dashboard's verifier: tokens here are signed by a test RSA key whose JWKS a
loopback HTTP server publishes (an OIDC provider as far as the worker can tell), configured through the same
environment variables a pod would get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from worker_support import (
    Harness,
    agent_plan,
    new_slug,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.runtime import envelope

pytest.importorskip("jwt")  # oidc_provider signs tokens with PyJWT
pytest.importorskip("starlette")  # the dashboard's verifier

from oidc_provider import OIDCProvider  # after the importorskips above: it imports jwt and cryptography

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

AGENT = "adjuster"
AUDIENCE = "kumeo-reviews"


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    """Tokens for the review API: a loopback OIDC provider (tests/oidc_provider.py)."""
    with OIDCProvider(AUDIENCE) as oidc:
        yield oidc


@pytest.fixture(autouse=True)
def review_auth(monkeypatch, provider):
    """The worker's environment, as a pod with OIDC would have it (and nothing else review-related)."""
    for name in ("KUMEO_REVIEW_HOST", "KUMEO_REVIEW_PORT", "KUMEO_REVIEW_AUTH", "KUMEO_REVIEW_TOKEN",
                 "KUMEO_DASHBOARD_TOKEN", "KUMEO_OIDC_DEFAULT_ROLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUMEO_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("KUMEO_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("KUMEO_OIDC_JWKS_URL", f"{provider.issuer}/jwks.json")
    monkeypatch.setenv("KUMEO_OIDC_ROLES_CLAIM", "groups")
    monkeypatch.setenv("KUMEO_OIDC_ROLES", "claims-team=reviewer,claims-readers=viewer")
    return monkeypatch


_PROVIDER: list[OIDCProvider] = []


@pytest.fixture(autouse=True)
def _remember(provider):
    _PROVIDER[:] = [provider]


def _as(sub: str, *groups: str) -> dict[str, str]:
    """Request headers with a token for ``sub`` (a reviewer unless other groups are given)."""
    return {"Authorization": f"Bearer {_PROVIDER[0].token(sub, groups=list(groups or ['claims-team']))}"}


async def _setup(harness: Harness, config: dict[str, Any], *, trigger: str | None = None,
                 targets: list[str] | None = None, slug: str | None = None):
    slug = slug or new_slug()
    plan_agent = agent_plan(slug, AGENT, {"": source_subject(slug)}, kind="HumanReview", targets=targets)
    plan_agent.settings.update({"interface": "web", "config": config, "review_bucket": f"kumeo_{slug}_reviews"})
    if trigger:
        plan_agent.settings["trigger"] = trigger
    plan = await harness.deploy(slug, [plan_agent])
    return slug, plan


async def _start(harness: Harness, plan, health_host: str = "127.0.0.1") -> tuple[Any, httpx.AsyncClient]:
    """A worker and a client of its review API, signed in as ana (a reviewer) unless a request says otherwise."""
    worker = await harness.run_worker(plan, AGENT, None, health_port=0, health_host=health_host)
    url = worker.agent.review_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    client = httpx.AsyncClient(base_url=url.removesuffix("/reviews"), timeout=5.0, headers=_as("ana"))
    return worker, client


async def _wait_reviews(client: httpx.AsyncClient, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    reviews: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.get("/reviews")
        assert response.status_code == 200, response.text
        reviews = response.json()["reviews"]
        if len(reviews) >= n:
            return reviews
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} open reviews, found {len(reviews)}")


async def _outputs(harness: Harness, slug: str, n: int, timeout: float = 10.0) -> list[Any]:
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.{AGENT}.out"
    assert await wait_count(harness.js, internal, out, n, timeout) >= n
    return await read_subject(harness.js, internal, out)


CONFIG = {"ui": {"title": "Large claim", "fields": [{"field": "claim_id", "label": "Claim"}, "amount"]},
          "timeout": "1h", "on_timeout": "reject"}


async def test_an_approved_review_releases_the_event_with_the_review_and_its_original_ids(harness):
    slug, plan = await _setup(harness, CONFIG, trigger="amount > 1000")
    worker, client = await _start(harness, plan)
    async with client:
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        await harness.js.publish(source_subject(slug), json.dumps({"claim_id": "c1", "amount": 5000}).encode(),
                                 headers={envelope.EVENT_ID: "claim-1", envelope.TRACEPARENT: trace})
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "small", "amount": 10}])

        # The small claim is not selected by the trigger: it passes straight through, unchanged.
        (passed,) = await _outputs(harness, slug, 1)
        assert json.loads(passed.data) == {"claim_id": "small", "amount": 10}

        (review,) = await _wait_reviews(client, 1)
        assert review["id"] == "claim-1" and review["status"] == "pending" and review["title"] == "Large claim"
        assert [f["value"] for f in review["fields"]] == ["c1", 5000]
        # The input was acked at once: nothing waits unacked on the consumer for 48 hours.
        _, sources = stream_names(slug)
        info = await harness.js.consumer_info(sources, AGENT)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        # ... and the review is durable in the workflow's KV bucket.
        kv = await harness.js.key_value(f"kumeo_{slug}_reviews")
        stored = json.loads((await kv.get(f"{AGENT}.claim-1")).value)
        assert stored["status"] == "pending" and stored["headers"][envelope.TRACEPARENT] == trace

        response = await client.post("/reviews/claim-1/approve",
                                      json={"reviewer": "ana", "comment": "receipts check out",
                                            "fields": {"amount": 4800}})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "approved" and response.json()["released"] is True

        msgs = await _outputs(harness, slug, 2)
        released = msgs[1]
        data = json.loads(released.data)
        assert data["claim_id"] == "c1" and data["amount"] == 4800
        assert data["review"]["decision"] == "approved" and data["review"]["reviewer"] == "ana@example.com"
        assert data["review"]["comments"][0]["comment"] == "receipts check out"
        assert released.headers[envelope.EVENT_ID] == "claim-1"
        assert released.headers[envelope.MSG_ID] == f"claim-1:{AGENT}"
        assert released.headers[envelope.TRACEPARENT].split("-")[1] == trace.split("-")[1]  # same trace

        assert (await client.get("/reviews")).json()["reviews"] == []
        again = await client.post("/reviews/claim-1/reject", json={}, headers=_as("bo"))
        assert again.status_code == 409 and "already decided" in again.json()["error"]
    assert worker.metrics.events_out == 2


async def test_a_rejected_review_is_released_too_so_a_router_can_route_it(harness):
    slug = new_slug()
    target = source_subject(slug, "decided")  # a workflow target (stored in the sources stream, not consumed)
    slug, plan = await _setup(harness, CONFIG, targets=[target], slug=slug)
    _, client = await _start(harness, plan)
    async with client:
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "c2", "amount": 20000}])
        (review,) = await _wait_reviews(client, 1)
        response = await client.post(f"/reviews/{review['id']}/reject", json={"reviewer": "bo", "comment": "fraud"})
        assert response.status_code == 200 and response.json()["status"] == "rejected"
        (msg,) = await _outputs(harness, slug, 1)
        assert json.loads(msg.data)["review"]["decision"] == "rejected"
        _, sources = stream_names(slug)
        assert await wait_count(harness.js, sources, target, 1) == 1
        (to_target,) = await read_subject(harness.js, sources, target)
        assert json.loads(to_target.data)["review"]["comments"][0]["comment"] == "fraud"


async def test_comment_rounds_then_a_race_where_the_stale_reviewer_gets_409(harness):
    slug, plan = await _setup(harness, CONFIG)
    _, client = await _start(harness, plan)
    async with client:
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "c3", "amount": 3000}])
        (review,) = await _wait_reviews(client, 1)
        rid = review["id"]
        seen = (await client.get(f"/reviews/{rid}")).json()
        r1 = await client.post(f"/reviews/{rid}/comment", json={"reviewer": "ana", "comment": "photos?",
                                                               "revision": seen["revision"]})
        assert r1.status_code == 200 and r1.json()["status"] == "pending"
        r2 = await client.post(f"/reviews/{rid}/comment", json={"comment": "attached", "fields": {"amount": 2900}},
                               headers=_as("bo"))
        assert r2.status_code == 200 and len(r2.json()["rounds"]) == 2
        current = r2.json()["revision"]

        # Two reviewers decide on the same revision at once: exactly one wins, the other gets 409.
        approve, reject = await asyncio.gather(
            client.post(f"/reviews/{rid}/approve", json={"reviewer": "ana", "revision": current}),
            client.post(f"/reviews/{rid}/reject", json={"revision": current}, headers=_as("cy")),
        )
        assert sorted([approve.status_code, reject.status_code]) == [200, 409]
        # The stale first read is refused too.
        stale = await client.post(f"/reviews/{rid}/comment", json={"reviewer": "dd", "comment": "late",
                                                                  "revision": seen["revision"]})
        assert stale.status_code == 409

        (msg,) = await _outputs(harness, slug, 1)
        data = json.loads(msg.data)
        assert data["amount"] == 2900 and data["review"]["rounds"] == 3
        assert [c["comment"] for c in data["review"]["comments"]] == ["photos?", "attached"]
        assert [c["reviewer"] for c in data["review"]["comments"]] == ["ana@example.com", "bo@example.com"]


class _WebhookReceiver:
    """A loopback HTTP server recording JSON POSTs; the first ``fail_first`` requests get a 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_first = fail_first
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def __aenter__(self) -> _WebhookReceiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = {}
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        self.requests += 1
        status = "503 Service Unavailable" if self.requests <= self.fail_first else "204 No Content"
        if self.requests > self.fail_first:
            self.received.append(json.loads(body))
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def wait(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.received


async def test_a_timeout_escalates_notifies_and_then_releases_as_configured(harness, monkeypatch):
    async with _WebhookReceiver(fail_first=1) as hook, _WebhookReceiver() as escalation:
        monkeypatch.setenv("KUMEO_TEST_HOOK", hook.url)
        config = {**CONFIG, "notifications": {"webhook": "${env.KUMEO_TEST_HOOK}", "email": "team@example.com"},
                  "timeout": "600ms", "on_timeout": "escalate", "escalation_timeout": "600ms",
                  "escalation_path": [escalation.url, "claims-lead"], "sweep_interval": "100ms"}
        slug, plan = await _setup(harness, config)
        _, client = await _start(harness, plan)
        async with client:
            await publish_events(harness.js, source_subject(slug), [{"claim_id": "c4", "amount": 9000}])
            # The webhook answered 503 once: the notification was retried and arrived.
            (pending,) = await hook.wait(1)
            assert pending["event"] == "review.pending" and pending["agent"] == AGENT
            assert pending["review"]["fields"][0]["value"] == "c4" and pending["email"] == ["team@example.com"]
            assert pending["url"] == f"/reviews/{pending['review']['id']}"

            # After the deadline the review is escalated (still open) and the escalation path is told.
            (escalated,) = await escalation.wait(1)
            assert escalated["event"] == "review.escalated" and escalated["escalation_path"][1] == "claims-lead"
            rid = escalated["review"]["id"]
            assert (await client.get(f"/reviews/{rid}")).json()["status"] == "escalated"
            assert [r["id"] for r in (await client.get("/reviews")).json()["reviews"]] == [rid]

            # Nobody acts on the escalation either: it is released with decision "escalated".
            (msg,) = await _outputs(harness, slug, 1)
            review = json.loads(msg.data)["review"]
            assert review["decision"] == "escalated" and review["timed_out"] and review["escalated"]


@pytest.mark.parametrize("on_timeout", ["approve", "reject"])
async def test_a_timeout_approves_or_rejects(harness, on_timeout):
    slug, plan = await _setup(harness, {**CONFIG, "timeout": "300ms", "on_timeout": on_timeout,
                                        "sweep_interval": "100ms"})
    await _start(harness, plan)
    await publish_events(harness.js, source_subject(slug), [{"claim_id": "c5", "amount": 9000}])
    (msg,) = await _outputs(harness, slug, 1)
    review = json.loads(msg.data)["review"]
    assert review["decision"] == {"approve": "approved", "reject": "rejected"}[on_timeout]
    assert review["timed_out"] is True and review["reviewer"] == "kumeo:timeout"


async def test_pending_reviews_survive_a_worker_restart(harness):
    slug, plan = await _setup(harness, CONFIG)
    worker, client = await _start(harness, plan)
    await publish_events(harness.js, source_subject(slug), [{"claim_id": f"r{i}", "amount": 7000} for i in range(3)])
    async with client:
        reviews = await _wait_reviews(client, 3)
    await worker.stop()
    harness.workers.remove(worker)

    # A new worker (a new pod) finds every pending review in KV and serves it.
    worker2, client2 = await _start(harness, plan)
    async with client2:
        again = await _wait_reviews(client2, 3)
        assert [r["id"] for r in again] == [r["id"] for r in reviews]
        response = await client2.post(f"/reviews/{reviews[1]['id']}/approve", json={"reviewer": "ana"})
        assert response.status_code == 200
        (msg,) = await _outputs(harness, slug, 1)
        assert json.loads(msg.data)["claim_id"] == "r1"
        assert msg.headers[envelope.EVENT_ID] == reviews[1]["event_id"]
        assert len(await _wait_reviews(client2, 2)) == 2
    with contextlib.suppress(Exception):
        await worker2.stop()


async def test_only_an_authenticated_reviewer_decides_and_the_token_names_the_approver(harness, provider):
    slug, plan = await _setup(harness, CONFIG)
    _, client = await _start(harness, plan)
    async with client:
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "c9", "amount": 9000}])
        (review,) = await _wait_reviews(client, 1)
        rid = review["id"]
        forged = {"reviewer": "anyone@anywhere", "comment": "trust me"}

        anonymous = await client.post(f"/reviews/{rid}/approve", json=forged, headers={"Authorization": ""})
        assert anonymous.status_code == 401 and "Authorization" in anonymous.json()["error"]
        assert (await client.get("/reviews", headers={"Authorization": ""})).status_code == 401
        viewer = await client.post(f"/reviews/{rid}/approve", json=forged, headers=_as("vi", "claims-readers"))
        assert viewer.status_code == 403 and "reviewer role" in viewer.json()["error"]
        assert (await client.get("/reviews", headers=_as("vi", "claims-readers"))).status_code == 200
        no_role = await client.post(f"/reviews/{rid}/approve", json=forged, headers=_as("eve", "other"))
        assert no_role.status_code == 403
        wrong_audience = provider.token("ana", groups=["claims-team"], aud="another-api")
        assert (await client.post(f"/reviews/{rid}/approve", json=forged,
                                  headers={"Authorization": f"Bearer {wrong_audience}"})).status_code == 401
        expired = provider.token("ana", groups=["claims-team"], expires_in=-600)
        assert (await client.post(f"/reviews/{rid}/approve", json=forged,
                                  headers={"Authorization": f"Bearer {expired}"})).status_code == 401
        assert (await client.get(f"/reviews/{rid}")).json()["rounds"] == []  # none of these wrote anything

        approved = await client.post(f"/reviews/{rid}/approve", json=forged)  # ana's token, a forged body
        assert approved.status_code == 200, approved.text
        (msg,) = await _outputs(harness, slug, 1)
        decided = json.loads(msg.data)["review"]
        assert decided["decision"] == "approved" and decided["reviewer"] == "ana@example.com"
        assert decided["comments"] == [{"reviewer": "ana@example.com", "comment": "trust me", "action": "approve",
                                        "at": decided["comments"][0]["at"]}]

        # The decision is in KUMEO_AUDIT, with the token's identity; none of the refused attempts left a record.
        (record,) = [r for r in await _review_audit(harness) if r["review_id"] == rid]
        assert approved.json()["audit"] == {"seq": record["seq"], "id": record["id"]}
        assert record["action"] == "review.approve" and record["via"] == "review-api"
        assert record["user"] == {"subject": "ana", "role": "reviewer", "email": "ana@example.com",
                                  "issuer": provider.issuer, "groups": ["claims-team"]}
        assert (record["workflow"], record["agent"], record["review_id"], record["event_id"]) == (
            plan.name, AGENT, rid, review["event_id"])
        assert record["comment"] == "trust me" and record["status"] == "approved"
        assert "anyone@anywhere" not in json.dumps(record)


async def _review_audit(harness: Harness) -> list[dict[str, Any]]:
    """The review API's records in KUMEO_AUDIT (subject kumeo.audit.review), oldest first, with their sequence."""
    from kumeo_iac.runtime.review import REVIEW_SUBJECT

    out = []
    for msg in await read_subject(harness.js, "KUMEO_AUDIT", REVIEW_SUBJECT):
        out.append({**json.loads(msg.data), "seq": msg.metadata.sequence.stream})
    return out


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_the_review_api_listens_on_loopback_and_never_on_the_probe_port(harness):
    slug, plan = await _setup(harness, CONFIG)
    # The probe port listens on every interface, as in a pod; the review API does not follow it.
    worker, client = await _start(harness, plan, health_host="0.0.0.0")
    async with client:
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "c10", "amount": 9000}])
        (review,) = await _wait_reviews(client, 1)
        server = worker.agent._server
        assert server.host == "127.0.0.1"
        assert {s.getsockname()[0] for s in server._server.sockets} == {"127.0.0.1"}
        other = _non_loopback_address()
        if other is not None:
            with pytest.raises(OSError):
                await asyncio.wait_for(asyncio.open_connection(other, server.port), 2.0)

        # The probe port answers /reviews with where the API is, and decides nothing.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.health_port}", headers=_as("ana"),
                                     timeout=5.0) as probe:
            assert (await probe.get("/healthz")).status_code == 200
            pointer = await probe.post(f"/reviews/{review['id']}/approve", json={"reviewer": "ana"})
            assert pointer.status_code == 404 and str(server.port) in pointer.json()["error"]
        assert (await client.get(f"/reviews/{review['id']}")).json()["status"] == "pending"


async def test_without_authentication_configured_nobody_can_approve(harness, review_auth):
    for name in ("KUMEO_OIDC_ISSUER", "KUMEO_OIDC_AUDIENCE", "KUMEO_OIDC_JWKS_URL"):
        review_auth.delenv(name)
    slug, plan = await _setup(harness, CONFIG)
    _, client = await _start(harness, plan)
    async with client:
        await publish_events(harness.js, source_subject(slug), [{"claim_id": "c11", "amount": 9000}])
        (review,) = await _wait_reviews(client, 1)  # reads from this machine still work
        for headers in ({"Authorization": ""}, _as("ana")):
            refused = await client.post(f"/reviews/{review['id']}/approve", json={"reviewer": "anyone@anywhere"},
                                        headers=headers)
            assert refused.status_code == 403 and "no authentication configured" in refused.json()["error"]
        assert (await client.get(f"/reviews/{review['id']}")).json()["status"] == "pending"
