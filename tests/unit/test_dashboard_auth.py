"""The dashboard API's authentication and authorization, end to end on a real workflow and a real nats-server.

Tokens are signed by a test RSA key whose JWKS (and OIDC discovery document) a loopback HTTP server publishes, so
the dashboard verifies them exactly as it would against a real provider. The workflow (tests/e2e/ui_demo) runs in
this process on LocalRunner; one of its events waits in the HumanReview queue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jwt")  # oidc_provider signs tokens with PyJWT
httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

# after the importorskips above
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from oidc_provider import OIDCProvider  # noqa: E402

from kumeo_iac.dashboard import (  # noqa: E402
    DashboardConfig,
    LocalTokenAuth,
    OIDCAuth,
    Role,
    create_app,
    parse_role_map,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

DEMO = Path(__file__).resolve().parents[1] / "e2e" / "ui_demo"
AUDIENCE = "kumeo-dashboard"


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    """Tokens for the dashboard: a loopback OIDC provider (tests/oidc_provider.py)."""
    with OIDCProvider(AUDIENCE) as oidc:
        yield oidc


# -- a running workflow with a parked review ------------------------------------------------------------------


async def _running(nats_url: str) -> Any:
    from kumeo_iac.compile import compile_program
    from kumeo_iac.local._runner import LocalRunner
    from kumeo_iac.validate import load

    path = DEMO / "orders.kumeo"
    plan = compile_program(load(path, strict_files=True), base_dir=path.parent)
    runner = LocalRunner(plan, base_dir=path.parent, nats_url=nats_url, fetch_expires=0.5)
    await runner.start()
    events = [json.loads(line) for line in (DEMO / "orders.jsonl").read_text().splitlines() if line.strip()]
    await runner.publish("orders.submitted", [(f"t-{i}", e) for i, e in enumerate(events, 1)])
    await runner.drain(20)
    return runner


async def _client(app: Any) -> httpx.AsyncClient:
    await app.state.live.start()
    assert await app.state.live.wait_connected(10)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
                             base_url="http://dashboard")


@pytest.fixture
async def oidc_app(nats_url: str, provider: OIDCProvider) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    runner = await _running(nats_url)
    auth = OIDCAuth(provider.issuer, AUDIENCE, roles_claim="roles",
                    role_map=parse_role_map(["kumeo-reviewers=reviewer"]))
    app = create_app(DashboardConfig(path=str(DEMO / "orders.kumeo"), nats_url=nats_url, auth=auth))
    client = await _client(app)
    try:
        yield client, runner
    finally:
        await client.aclose()
        await app.state.live.stop()
        await runner.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _open_review(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    for _ in range(100):
        response = await client.get("/api/reviews", headers=bearer(token))
        assert response.status_code == 200, response.text
        reviews = response.json()["reviews"]
        if reviews:
            return reviews[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no review was parked")


# -- the tests ------------------------------------------------------------------------------------------------


async def test_oidc_tokens_are_verified_and_roles_enforced(oidc_app: Any, provider: OIDCProvider) -> None:
    client, runner = oidc_app
    viewer = provider.token(sub="victor", roles=["viewer"])
    reviewer = provider.token(sub="rita", roles=["kumeo-reviewers"], name="Rita Reviewer")

    # No token, an expired one, one for another audience, one signed by another key: 401.
    assert (await client.get("/api/me")).status_code == 401
    expired = provider.token(roles=["admin"], expires_in=-3600)
    response = await client.get("/api/me", headers=bearer(expired))
    assert response.status_code == 401 and "expired" in response.json()["error"]
    response = await client.get("/api/me", headers=bearer(provider.token(roles=["admin"], aud="someone-else")))
    assert response.status_code == 401 and "audience" in response.json()["error"]
    forged = provider.token(roles=["admin"], key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert (await client.get("/api/me", headers=bearer(forged))).status_code == 401
    # A valid token without any Kumeo role: authenticated, but allowed nothing.
    assert (await client.get("/api/me", headers=bearer(provider.token(roles=["staff"])))).status_code == 403

    me = (await client.get("/api/me", headers=bearer(reviewer))).json()
    assert me["role"] == "reviewer" and me["subject"] == "rita" and me["can"] == {
        "review": True, "replay": False, "edit": False}

    review = await _open_review(client, viewer)
    assert review["title"] == "Large order"
    assert {f["field"]: f["value"] for f in review["fields"]} == {"order_id": "o-2", "amount": 4800}
    url = f"/api/reviews/{review['workflow']}/{review['agent']}/{review['id']}/approve"

    # A viewer may read but not decide.
    response = await client.post(url, headers=bearer(viewer), json={"comment": "looks fine"})
    assert response.status_code == 403 and "reviewer" in response.json()["error"]

    # A reviewer decides; the event is released to the workflow's target; the decision is audited.
    seen: list[Any] = []

    async def collect(msg: Any) -> None:
        seen.append(msg)

    sub = await runner.nc.subscribe("orders.accepted", cb=collect)
    response = await client.post(url, headers=bearer(reviewer), json={"comment": "verified by phone"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "approved" and result["released"] is True
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    released = json.loads(seen[0].data)
    assert released["order_id"] == "o-2" and released["review"]["decision"] == "approved"
    assert released["review"]["reviewer"] == "rita@example.com"

    msg = await runner.js.get_msg("KUMEO_AUDIT", result["audit"]["seq"])
    assert msg.subject == "kumeo.audit.ui"
    record = json.loads(msg.data)
    assert record["action"] == "review.approve" and record["review_id"] == review["id"]
    assert record["user"] == {"subject": "rita", "role": "reviewer", "name": "Rita Reviewer",
                              "email": "rita@example.com", "issuer": provider.issuer, "groups": ["kumeo-reviewers"]}
    assert record["comment"] == "verified by phone"

    # Replaying a dead letter and editing files need an admin.
    dead = (await client.get("/api/agents/OrderReview/validate/messages?direction=dlq",
                             headers=bearer(viewer))).json()["messages"]
    assert dead and dead[0]["error"].startswith("DataProcessor 'validate': missing required field")
    response = await client.post("/api/agents/OrderReview/validate/replay", headers=bearer(reviewer),
                                 json={"stream": dead[0]["stream"], "seq": dead[0]["seq"]})
    assert response.status_code == 403
    response = await client.post("/api/edit", headers=bearer(reviewer), json={"text": "", "edits": []})
    assert response.status_code == 403


async def test_an_admin_replays_a_dead_letter_with_the_same_event_id_and_an_audit_record(
        oidc_app: Any, provider: OIDCProvider) -> None:
    client, runner = oidc_app
    admin = provider.token(sub="ada", roles=["admin"])
    dead = (await client.get("/api/agents/OrderReview/validate/messages?direction=dlq",
                             headers=bearer(admin))).json()["messages"]
    letter = dead[0]
    response = await client.post("/api/agents/OrderReview/validate/replay", headers=bearer(admin),
                                 json={"stream": letter["stream"], "seq": letter["seq"]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["event_id"] == letter["event_id"] and result["attempt"] == 2
    [published] = result["published"]
    assert published["subject"] == "orders.submitted"
    msg = await runner.js.get_msg(published["stream"], published["seq"])
    assert json.loads(msg.data) == letter["data"]["input"]
    assert msg.headers["Kumeo-Event-Id"] == letter["event_id"]
    assert msg.headers["Kumeo-Attempt"] == "2"
    assert msg.headers["Kumeo-Replay-Of"] == f"{letter['stream']}/{letter['seq']}"
    assert msg.headers["Nats-Msg-Id"] != letter["headers"]["Nats-Msg-Id"]
    record = json.loads((await runner.js.get_msg("KUMEO_AUDIT", result["audit"]["seq"])).data)
    assert record["action"] == "dead_letter.replay" and record["user"]["subject"] == "ada"
    assert record["dead_letter"] == {"stream": letter["stream"], "seq": letter["seq"], "error": letter["error"]}
    audit = (await client.get("/api/audit", headers=bearer(admin))).json()["records"]
    assert audit[0]["id"] == result["audit"]["id"]


async def test_the_local_token_is_for_loopback_clients_that_hold_it(nats_url: str) -> None:
    auth = LocalTokenAuth(token="s3cret")
    app = create_app(DashboardConfig(path=str(DEMO / "orders.kumeo"), nats_url=nats_url, auth=auth))
    client = await _client(app)
    try:
        assert (await client.get("/api/auth")).json() == {"mode": "local"}
        assert (await client.get("/api/me")).status_code == 401
        assert (await client.get("/api/me", headers=bearer("wrong"))).status_code == 401
        me = (await client.get("/api/me", headers=bearer("s3cret"))).json()
        assert me["role"] == "admin"
        remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5000)),
                                   base_url="http://dashboard")
        response = await remote.get("/api/me", headers=bearer("s3cret"))
        assert response.status_code == 403 and "this machine only" in response.json()["error"]
        await remote.aclose()
        # The Host pin against DNS rebinding (set by `kumeo dashboard` once it knows its port).
        app.state.config.allowed_hosts = ("127.0.0.1:8765",)
        assert (await client.get("/api/auth")).status_code == 421
    finally:
        await client.aclose()
        await app.state.live.stop()


async def test_the_audit_stream_is_created_or_widened_never_narrowed(nats_url: str) -> None:
    import nats
    from nats.js.api import StreamConfig

    from kumeo_iac.dashboard import AUDIT_STREAM, ensure_audit_stream

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name=AUDIT_STREAM, subjects=["kumeo.audit.deploy", "other.things"]))
        await js.publish("kumeo.audit.deploy", b'{"deploy": 1}')
        await ensure_audit_stream(js)
        await ensure_audit_stream(js)  # idempotent
        info = await js.stream_info(AUDIT_STREAM)
        assert sorted(info.config.subjects) == ["kumeo.audit.>", "other.things"]
        assert info.state.messages == 1  # nothing lost
        await js.delete_stream(AUDIT_STREAM)
        await ensure_audit_stream(js)
        assert (await js.stream_info(AUDIT_STREAM)).config.subjects == ["kumeo.audit.>"]
    finally:
        await nc.close()


def test_role_mapping() -> None:
    mapping = parse_role_map(["ops=reviewer", "platform-admins=admin"])
    assert mapping["ops"] is Role.REVIEWER and mapping["viewer"] is Role.VIEWER
    auth = OIDCAuth("https://id.example.com", AUDIENCE, roles_claim="realm_access.roles", role_map=mapping)
    assert auth.role_of({"realm_access": {"roles": ["x", "ops"]}})[0] is Role.REVIEWER
    assert auth.role_of({"realm_access": {"roles": ["ops", "platform-admins"]}})[0] is Role.ADMIN
    assert auth.role_of({"groups": ["admin"]})[0] is None
    with pytest.raises(ValueError):
        parse_role_map(["ops=superuser"])
