"""Who may call the HumanReview worker's review API: the dashboard's verifier configured from the environment,
roles (viewer reads, reviewer acts), no anonymous decisions, the recorded reviewer, and where the API listens."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("starlette")

from kumeo_iac.dashboard import AuthError, Identity, LocalTokenAuth, OIDCAuth, Role
from kumeo_iac.dashboard._auth import authorize
from kumeo_iac.runtime.review import (
    MemoryKeyValue,
    ReviewAccess,
    ReviewAPI,
    ReviewQueue,
    ReviewSettings,
    ReviewStore,
    listen_address,
)


class Tokens:
    """An Authenticator whose tokens are role names: ``Bearer reviewer:ana`` is ana, a reviewer."""

    mode = "test"

    async def authenticate(self, authorization: str | None, client_host: str | None) -> Identity:
        if not authorization:
            raise AuthError(401, "sign in first")
        role, _, who = authorization.removeprefix("Bearer ").partition(":")
        if role not in ("viewer", "reviewer", "admin"):
            raise AuthError(401, "invalid token")
        return Identity(subject=f"sub-{who}", role=Role[role.upper()], email=f"{who}@example.com")

    def public_config(self) -> dict[str, Any]:
        return {"mode": self.mode}


def _api(access: ReviewAccess) -> tuple[ReviewAPI, list[dict[str, Any]]]:
    released: list[dict[str, Any]] = []

    async def release(review):
        released.append(review.released_event())

    settings = ReviewSettings.from_config({"ui": {"fields": ["amount"]}}, "adjuster")
    queue = ReviewQueue(ReviewStore(MemoryKeyValue(), "adjuster"), settings, workflow="Claims", release=release)
    return ReviewAPI(queue, access), released


async def _call(api: ReviewAPI, method: str, target: str, body: Any = None, *, token: str | None = None,
                peer: str = "10.1.2.3") -> tuple[int, dict[str, Any]]:
    headers = {":peer": peer}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    status, text, _ = await api.handle(method, target, headers, json.dumps(body).encode() if body else b"")
    return status, json.loads(text)


async def test_without_a_verifier_nobody_decides_and_only_this_machine_reads():
    api, released = _api(ReviewAccess())
    await api.queue.park("e1", {"amount": 5}, None)
    for action in ("approve", "reject", "comment"):
        for peer in ("127.0.0.1", "10.1.2.3"):
            status, body = await _call(api, "POST", f"/reviews/e1/{action}", {"reviewer": "anyone@anywhere"},
                                       token="whatever", peer=peer)
            assert status == 403 and "no authentication configured" in body["error"]
    assert not (await api.queue.store.get("e1")).rounds and not released
    assert (await _call(api, "GET", "/reviews", peer="127.0.0.1"))[0] == 200
    status, body = await _call(api, "GET", "/reviews/e1", peer="10.1.2.3")
    assert status == 403 and "payload" not in body


async def test_roles_and_the_recorded_reviewer_is_the_tokens_identity():
    api, released = _api(ReviewAccess(auth=Tokens()))
    await api.queue.park("e1", {"amount": 5}, None)
    assert (await _call(api, "GET", "/reviews"))[0] == 401                      # no token, even a read
    assert (await _call(api, "GET", "/reviews", token="viewer:vi"))[0] == 200
    status, body = await _call(api, "POST", "/reviews/e1/approve", {"reviewer": "vi"})
    assert status == 401 and "sign in" in body["error"]
    status, body = await _call(api, "POST", "/reviews/e1/approve", {"reviewer": "vi"}, token="viewer:vi")
    assert status == 403 and "reviewer role" in body["error"]
    assert (await api.queue.store.get("e1")).is_open and not released

    status, body = await _call(api, "POST", "/reviews/e1/approve",
                               {"reviewer": "anyone@anywhere", "comment": "ok"}, token="reviewer:ana")
    assert status == 200 and body["status"] == "approved"
    assert released[0]["review"]["reviewer"] == "ana@example.com"
    assert [r["reviewer"] for r in released[0]["review"]["comments"]] == ["ana@example.com"]


async def test_a_verifier_that_cannot_answer_is_a_refusal_not_a_yes():
    class Down(Tokens):
        async def authenticate(self, authorization, client_host):
            raise RuntimeError("provider down")

    api, released = _api(ReviewAccess(auth=Down()))
    await api.queue.park("e1", {"amount": 5}, None)
    assert (await _call(api, "POST", "/reviews/e1/approve", {}, token="reviewer:ana"))[0] == 503
    assert not released


async def test_the_local_token_is_the_dashboards_loopback_only_and_checked():
    api, released = _api(ReviewAccess.from_env({"KUMEO_REVIEW_TOKEN": "s3cret"}))
    assert isinstance(api.access.auth, LocalTokenAuth)
    await api.queue.park("e1", {"amount": 5}, None)
    assert (await _call(api, "POST", "/reviews/e1/approve", {}, token="s3cret", peer="10.1.2.3"))[0] == 403
    assert (await _call(api, "POST", "/reviews/e1/approve", {}, token="nope", peer="127.0.0.1"))[0] == 401
    status, _ = await _call(api, "POST", "/reviews/e1/approve", {"reviewer": "x"}, token="s3cret",
                            peer="127.0.0.1")
    assert status == 200 and released[0]["review"]["reviewer"] == api.access.auth.user


def test_the_environment_configures_the_same_verifier_as_the_dashboard():
    assert ReviewAccess.from_env({}).auth is None
    assert isinstance(ReviewAccess.from_env({"KUMEO_DASHBOARD_TOKEN": "t"}).auth, LocalTokenAuth)
    access = ReviewAccess.from_env({"KUMEO_OIDC_ISSUER": "https://idp.example.com", "KUMEO_OIDC_AUDIENCE": "kumeo",
                                    "KUMEO_OIDC_ROLES": "claims-team=reviewer, ops=admin",
                                    "KUMEO_OIDC_ROLES_CLAIM": "groups", "KUMEO_OIDC_DEFAULT_ROLE": "viewer",
                                    "KUMEO_OIDC_JWKS_URL": "https://idp.example.com/keys"})
    auth = access.auth
    assert isinstance(auth, OIDCAuth) and access.mode == "oidc"
    assert (auth.issuer, auth.audience, auth.jwks_url, auth.roles_claim) == (
        "https://idp.example.com", "kumeo", "https://idp.example.com/keys", "groups")
    assert auth.role_map["claims-team"] is Role.REVIEWER and auth.role_map["ops"] is Role.ADMIN
    assert auth.default_role is Role.VIEWER
    # Mistakes leave no verifier (so every decision is refused) and say what is wrong.
    for env, words in [({"KUMEO_OIDC_ISSUER": "https://idp"}, "KUMEO_OIDC_AUDIENCE"),
                       ({"KUMEO_REVIEW_AUTH": "local"}, "KUMEO_REVIEW_TOKEN"),
                       ({"KUMEO_REVIEW_AUTH": "basic"}, "use oidc or local"),
                       ({"KUMEO_OIDC_ISSUER": "https://idp", "KUMEO_OIDC_AUDIENCE": "a",
                         "KUMEO_OIDC_ROLES": "x=boss"}, "viewer|reviewer|admin")]:
        access = ReviewAccess.from_env(env)
        assert access.auth is None and words in access.problem, (env, access.problem)


async def test_authorize_is_the_dashboards_role_check():
    assert (await authorize(Tokens(), "Bearer admin:a", None, Role.REVIEWER)).role is Role.ADMIN
    with pytest.raises(AuthError) as info:
        await authorize(Tokens(), "Bearer viewer:v", None, Role.REVIEWER)
    assert info.value.status == 403


def test_the_api_listens_on_loopback_unless_told_otherwise():
    assert listen_address({}) == ("127.0.0.1", 0)
    assert listen_address({"KUMEO_REVIEW_HOST": "0.0.0.0", "KUMEO_REVIEW_PORT": "8090"}) == ("0.0.0.0", 8090)
    assert listen_address({"KUMEO_REVIEW_PORT": "-1"}) is None
    with pytest.raises(ValueError, match="KUMEO_REVIEW_PORT"):
        listen_address({"KUMEO_REVIEW_PORT": "http"})


@pytest.mark.nats
async def test_every_action_is_audited_and_an_action_that_cannot_be_audited_is_not_taken(nats_url):
    import nats

    from kumeo_iac.runtime.review import REVIEW_SUBJECT, ReviewAudit

    nc = await nats.connect(nats_url)
    try:
        api, released = _api(ReviewAccess(auth=Tokens()))
        api.audit = ReviewAudit(lambda: nc.jetstream())
        await api.queue.park("e2", {"amount": 5}, None)
        await api.queue.park("e3", {"amount": 7}, None)
        status, body = await _call(api, "POST", "/reviews/e2/reject", {"reviewer": "x", "comment": "no"},
                                   token="reviewer:ana")
        assert status == 200 and body["audit"]["seq"] > 0
        msg = await nc.jetstream().get_msg("KUMEO_AUDIT", body["audit"]["seq"])
        record = json.loads(msg.data)
        assert msg.subject == REVIEW_SUBJECT and record["id"] == body["audit"]["id"]
        assert record["action"] == "review.reject" and record["user"] == {
            "subject": "sub-ana", "role": "reviewer", "email": "ana@example.com"}
        assert (record["workflow"], record["agent"], record["review_id"], record["comment"]) == (
            "Claims", "adjuster", "e2", "no")

        await nc.close()  # NATS gone: the audit stream cannot be written, so nothing is decided
        status, body = await _call(api, "POST", "/reviews/e3/approve", {"comment": "ok"}, token="reviewer:ana")
        assert status == 503 and "nothing was done" in body["error"] and "KUMEO_AUDIT" in body["error"]
        assert (await api.queue.store.get("e3")).is_open and [r["review"]["decision"] for r in released] == [
            "rejected"]
    finally:
        await nc.close()
