"""Nobody decides a human review they may not decide: a real HumanReview worker process on a real nats-server.

The worker runs as a pod runs it (``python -m kumeo_iac.runtime``) with its review API's local token. Attempts
without the token, with a wrong one, with a forged ``reviewer`` in the body, or through the probe port change
nothing; the holder of the token approves some events and rejects the others. Counted on the streams by
``Kumeo-Event-Id``: every event released exactly once with the decision taken, and exactly one ``KUMEO_AUDIT``
record per decision, naming the token's identity, never the body's.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import (
    ROOT,
    chain,
    connect,
    create_streams,
    event_ids,
    messages,
    new_slug,
    publish,
    source_subject,
    streams_of,
    wait_for,
)

from kumeo_iac.compile._plan import Plan

pytest.importorskip("starlette")  # the worker's verifier is the dashboard's

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

AGENT = "reviewer"
TOKEN = "review-token-0123456789abcdef"
EVENTS = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _plan(slug: str, url: str) -> Any:
    wf = chain(slug, [AGENT], url)
    (reviewer,) = wf.agents
    settings = {"interface": "web", "review_bucket": f"kumeo_{slug}_reviews",
                "config": {"timeout": "1h", "on_timeout": "reject"}}
    return dataclasses.replace(wf, agents=[dataclasses.replace(reviewer, kind="HumanReview", settings=settings)])


async def test_only_the_token_holder_decides_each_event_is_released_once_and_every_decision_is_audited(
        nats_url: str, tmp_path: Path) -> None:
    nc = await connect(nats_url)
    js = nc.jetstream()
    slug = new_slug()
    plan = _plan(slug, nats_url)
    await create_streams(js, plan)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(Plan([plan]).to_json(), encoding="utf-8")
    review_port, health_port = _free_port(), _free_port()
    env = {**os.environ, "KUMEO_REVIEW_TOKEN": TOKEN, "KUMEO_REVIEW_PORT": str(review_port),
           "PYTHONPATH": str(ROOT)}
    for name in ("KUMEO_REVIEW_HOST", "KUMEO_REVIEW_AUTH", "KUMEO_OIDC_ISSUER", "KUMEO_DASHBOARD_TOKEN"):
        env.pop(name, None)
    log_file = tmp_path / "worker.log"
    with open(log_file, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", AGENT, "--nats",
             nats_url, "--health-port", str(health_port), "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
    api = f"http://127.0.0.1:{review_port}/reviews"
    ids = [f"claim-{i}" for i in range(EVENTS)]
    try:
        holder = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10, headers=holder) as client:
            async def listening() -> bool:
                assert worker.poll() is None, log_file.read_text()
                try:
                    return (await client.get(api)).status_code == 200
                except httpx.TransportError:
                    return False

            assert await wait_for(listening, 30), log_file.read_text()
            await publish(js, source_subject(slug), [(i, {"claim": i, "amount": 9000}) for i in ids])

            async def parked() -> bool:
                return len((await client.get(api)).json()["reviews"]) == EVENTS

            assert await wait_for(parked, 30), log_file.read_text()
            reviews = {r["event_id"]: r["id"] for r in (await client.get(api)).json()["reviews"]}
            assert set(reviews) == set(ids)

            forged = {"reviewer": "mallory@evil.example", "comment": "approved by me"}
            for review_id in reviews.values():
                for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-token"}):
                    refused = await client.post(f"{api}/{review_id}/approve", json=forged, headers=headers)
                    assert refused.status_code == 401, refused.text
                probe = await client.post(f"http://127.0.0.1:{health_port}/reviews/{review_id}/approve",
                                          json=forged)
                assert probe.status_code == 404 and str(review_port) in probe.json()["error"]
            assert (await client.get(api, headers={"Authorization": ""})).status_code == 401  # reads need it too
            assert all(r["status"] == "pending" for r in (await client.get(api)).json()["reviews"])

            decided: dict[str, str] = {}
            for n, (event_id, review_id) in enumerate(sorted(reviews.items())):
                action = "approve" if n % 2 == 0 else "reject"
                answer = await client.post(f"{api}/{review_id}/{action}", json=forged, headers=holder)
                assert answer.status_code == 200, answer.text
                assert answer.json()["audit"]["seq"] > 0
                decided[event_id] = "approved" if action == "approve" else "rejected"
                again = await client.post(f"{api}/{review_id}/approve", json={}, headers=holder)
                assert again.status_code == 409  # decided once: a second decision is refused
    finally:
        worker.terminate()
        worker.wait(timeout=15)

    names = streams_of(slug)
    out = f"kumeo.{slug}.{AGENT}.out"
    assert await wait_for(lambda: _count_is(js, names["internal"], out, EVENTS), 15)
    assert await event_ids(js, names["internal"], out) == dict.fromkeys(ids, 1)  # each released exactly once
    released = {m.headers["Kumeo-Event-Id"]: json.loads(m.data)["review"]
                for m in await messages(js, names["internal"], out)}
    me = f"local:{getpass.getuser()}"
    for event_id, review in released.items():
        assert review["decision"] == decided[event_id]
        assert review["reviewer"] == getpass.getuser() and "mallory" not in json.dumps(review)

    records = [json.loads(m.data) for m in await messages(js, "KUMEO_AUDIT", "kumeo.audit.review")]
    mine = [r for r in records if r["workflow"] == plan.name]
    assert sorted(r["event_id"] for r in mine) == sorted(ids)  # one record per decision, none for a refusal
    for record in mine:
        assert record["action"] == ("review.approve" if decided[record["event_id"]] == "approved"
                                    else "review.reject")
        assert record["user"]["subject"] == me and record["via"] == "review-api"
        assert "mallory" not in json.dumps(record["user"])
    await nc.close()


async def _count_is(js: Any, stream: str, subject: str, n: int) -> bool:
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0)) >= n
