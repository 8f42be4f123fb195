"""The edge profile on two real nats-servers (issue 17, item 4): a hub, and a site's leaf node in its own JetStream
domain, configured by the compiled leaf config; the edge process (``python -m kumeo_iac.runtime.edge``, with the
Plan the rendered StatefulSet carries) runs both agents against the leaf. Events published at the leaf are processed
there; with the hub down they are still processed and their results wait at the leaf; when the hub is back, the
hub's stream (the Plan's hub stream, sourcing the leaf's through ``$JS.<domain>.API``) catches up: every result
arrives once, none lost, none doubled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.compile import PlatformSettings, WorkflowPlan, compile_program
from kumeo_iac.jetstream import connect, ensure_stream, stream_config_from_inputs
from kumeo_iac.lang import parse
from kumeo_iac.local import NatsServer, free_port
from kumeo_iac.runtime import envelope

pytestmark = [pytest.mark.nats, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "site1"
N, M = 40, 25
#: Generous: another engineer's build may load this 2-core machine. Polls end as soon as the condition holds.
WAIT = 90.0

WORKFLOW = """\
workflow SiteSensors {{
  source: NATS("sensors.raw")
  target: NATS("sensors.clean")
  agents: [
    DataProcessor(id: "clean", input: source, config: {{ required_fields: ["id"] }}),
    DataProcessor(id: "enrich", input: clean.output)
  ]
  deployment: {{ profile: "edge", leaf: {{ hub: "nats-leaf://127.0.0.1:{port}", credentials_secret: "site-leaf",
                                         domain: "{domain}" }} }}
}}
"""


def compiled(leaf_port: int) -> WorkflowPlan:
    result = parse(WORKFLOW.format(port=leaf_port, domain=DOMAIN), "site.kumeo")
    assert result.ok, [d.format() for d in result.diagnostics]
    return compile_program(result.program, settings=PlatformSettings(for_cluster=True)).workflows[0]


def container(plan: WorkflowPlan, name: str) -> dict[str, Any]:
    (workload,) = [o for o in plan.kubernetes if o["kind"] == "StatefulSet"]
    (found,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return dict(found)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[NatsServer, NatsServer, WorkflowPlan]]:
    leafnode_port = free_port()
    plan = compiled(leafnode_port)
    assert plan.edge is not None
    hub_conf = tmp_path / "hub.conf"
    hub_conf.write_text(json.dumps({"jetstream": {"domain": "hub"},
                                    "leafnodes": {"host": "127.0.0.1", "port": leafnode_port}}))
    hub = NatsServer(config_file=hub_conf, store_dir=tmp_path / "hub", server_name="hub", ready_timeout_s=30)
    # The leaf runs the compiled config, with this test's ports and store, and without the credentials file (this
    # hub's leafnode port takes no credentials; the rendered pod mounts the Secret's file there).
    leaf_port = free_port()
    config = json.loads(plan.edge.server_config)
    assert config["leafnodes"]["remotes"][0].pop("credentials") == "/etc/kumeo/leaf-credentials/leaf.creds"
    assert config["jetstream"]["domain"] == DOMAIN and config["host"] == "127.0.0.1"
    assert config["jetstream"].pop("store_dir") == "/var/lib/kumeo/leaf"  # NatsServer passes its own (-sd)
    local = {**config, "port": leaf_port, "http_port": free_port(), "server_name": "site1-leaf"}
    leaf_conf = tmp_path / "leaf.conf"
    leaf_conf.write_text(json.dumps(local))
    leaf = NatsServer(config_file=leaf_conf, port=leaf_port, store_dir=tmp_path / "leaf", server_name="site1-leaf",
                      ready_timeout_s=30)
    hub.start()
    leaf.start()
    try:
        yield hub, leaf, plan
    finally:
        leaf.cleanup()
        hub.cleanup()


@pytest.fixture
def edge_process(servers: tuple[NatsServer, NatsServer, WorkflowPlan]) -> Iterator[subprocess.Popen[bytes]]:
    _, leaf, plan = servers
    edge = container(plan, "edge")
    env = {**os.environ, **{e["name"]: e["value"] for e in edge["env"] if "value" in e}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    assert edge["command"] == ["python", "-m", "kumeo_iac.runtime.edge"]
    args = [a if a != "nats://127.0.0.1:4222" else leaf.url for a in edge["args"]]
    process = subprocess.Popen([sys.executable, "-m", "kumeo_iac.runtime.edge", *args, "--health-port", "-1"],
                               env=env, stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def stream_count(js: Any, stream: str) -> int:
    try:
        info = await js.stream_info(stream)
    except Exception:  # noqa: BLE001 - not there yet, or its server is away
        return -1
    return int(info.state.messages or 0)


async def event_ids(js: Any, stream: str, count: int) -> Counter[str]:
    """The event id of every message of ``stream`` (read with an ephemeral ordered consumer)."""
    sub = await js.subscribe(">", stream=stream, ordered_consumer=True)
    ids: Counter[str] = Counter()
    try:
        for _ in range(count):
            msg = await sub.next_msg(timeout=10)
            ids[str(envelope.header(msg.headers, envelope.EVENT_ID))] += 1
    finally:
        await sub.unsubscribe()
    return ids


async def publish(js: Any, first: int, count: int) -> None:
    for i in range(first, first + count):
        ack = await js.publish("sensors.raw", json.dumps({"id": i, "value": i * 1.5}).encode(),
                               headers={"Nats-Msg-Id": f"e{i}", envelope.EVENT_ID: f"e{i}"}, timeout=10)
        assert not ack.duplicate


async def test_a_site_keeps_working_while_its_link_is_down_and_forwards_every_result(
        servers: tuple[NatsServer, NatsServer, WorkflowPlan], edge_process: subprocess.Popen[bytes]) -> None:
    hub, leaf, plan = servers
    assert plan.edge is not None
    (hub_stream,) = plan.edge.hub_streams
    (targets,) = [s.name for s in plan.streams if s.role == "targets"]
    leaf_nc = await connect(leaf.url, timeout_s=30, name="test-leaf", max_reconnect_attempts=-1)
    hub_nc = await connect(hub.url, timeout_s=30, name="test-hub", max_reconnect_attempts=-1,
                           reconnect_time_wait=0.25)
    try:
        leaf_js, hub_js = leaf_nc.jetstream(), hub_nc.jetstream()
        # the edge process creates the workflow's streams on the leaf (as `kumeo run` does), then binds
        await until("the edge process created the leaf's streams", lambda: _positive(stream_count(leaf_js, targets)))
        assert await stream_count(hub_js, targets) == -1, "the workflow's streams live on the leaf only"
        # the deployer creates the hub stream on the central NATS
        await ensure_stream(hub_js, stream_config_from_inputs(dict(hub_stream.config)))

        # 1. link up: events published at the leaf are processed there, and their results reach the hub
        await publish(leaf_js, 0, N)
        await until(f"{N} results at the leaf", lambda: _equal(stream_count(leaf_js, targets), N))
        await until(f"{N} results at the hub", lambda: _equal(stream_count(hub_js, hub_stream.name), N))

        # 2. hub down: the site keeps processing; its results wait at the leaf
        await asyncio.to_thread(hub.stop)
        await publish(leaf_js, N, M)
        await until(f"{N + M} results at the leaf, hub down",
                    lambda: _equal(stream_count(leaf_js, targets), N + M))
        assert edge_process.poll() is None, "the edge process must outlive the link"

        # 3. hub back (same port, same store): the hub's stream catches up, every result exactly once
        await asyncio.to_thread(hub.start)
        await until(f"{N + M} results at the hub after the outage",
                    lambda: _equal(stream_count(hub_js, hub_stream.name), N + M), timeout=WAIT * 2)
        await asyncio.sleep(2.0)  # nothing more arrives (no redelivered duplicates)
        assert await stream_count(hub_js, hub_stream.name) == N + M
        ids = await event_ids(hub_js, hub_stream.name, N + M)
        assert set(ids) == {f"e{i}" for i in range(N + M)}, sorted(set(ids) ^ {f"e{i}" for i in range(N + M)})
        assert max(ids.values()) == 1
        sub = await hub_js.subscribe("sensors.clean", stream=hub_stream.name, ordered_consumer=True)
        msg = await sub.next_msg(timeout=10)
        assert json.loads(msg.data)["id"] == 0  # the enriched result itself, as the site published it
        await sub.unsubscribe()
        assert await stream_count(leaf_js, f"KUMEO_{plan.slug.upper().replace('-', '_')}") >= 0
    finally:
        await leaf_nc.close()
        await hub_nc.close()
    assert edge_process.poll() is None


async def _positive(count: Awaitable[int]) -> bool:
    return await count >= 0


async def _equal(count: Awaitable[int], expected: int) -> bool:
    value = await count
    assert value <= expected, f"more messages than events: {value} > {expected}"
    return value == expected
