"""Hostile events meet real agents: patterns that would backtrack, patterns from event data, infinite outputs.

Worker processes (``python -m kumeo_iac.runtime``) on a real nats-server, counted by ``Kumeo-Event-Id`` on the
streams: every good event exactly once where it belongs, every bad one once on the dead-letter subject with its
reason, and none of them holds the events behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fault_support import (
    ROOT,
    Cluster,
    chain,
    create_streams,
    dead_letters,
    event_ids,
    messages,
    new_slug,
    publish,
    settled,
    source_subject,
    streams_of,
    target_subject,
    wait_for,
)

from kumeo_iac.compile import compile_program
from kumeo_iac.compile._plan import Plan
from kumeo_iac.jetstream import (
    consumer_config_from_inputs,
    ensure_consumer,
    ensure_stream,
    stream_config_from_inputs,
)
from kumeo_iac.validate import load

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

BACKTRACKS = "a" * 27 + "!"  # (a+)+$ takes ~10 s on this with a backtracking engine, and doubles per extra 'a'
ROUTER = """
workflow Rx{n} {{
  source: NATS("rx{n}.in")
  target: [NATS("rx{n}.hit"), NATS("rx{n}.miss")]
  agents: [
    Router(
      id: "route",
      input: source,
      rules: {{
        "matches(s, '(a+)+$')": "target.rx{n}.hit",
        "matches(s, p)": "target.rx{n}.hit",
        default: "target.rx{n}.miss"
      }}
    )
  ]
}}
"""


def _worker(plan_file: Path, agent: str, url: str, log_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with open(log_file, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", agent, "--nats", url,
             "--health-port", "-1", "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)


async def test_no_pattern_holds_a_router_and_a_pattern_from_the_event_that_needs_backtracking_is_a_dead_letter(
        js: Any, nats_url: str, tmp_path: Path) -> None:
    n = uuid.uuid4().hex[:8]
    path = tmp_path / "rx.kumeo"
    path.write_text(ROUTER.format(n=n))
    wf = compile_program(load(path)).workflows[0]
    for stream in wf.streams:
        await ensure_stream(js, stream_config_from_inputs(dict(stream.config)))
    for consumer in wf.consumers:  # as the deployer creates them before the workers bind
        await ensure_consumer(js, consumer.stream, consumer_config_from_inputs(dict(consumer.config)))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(Plan([wf]).to_json(), encoding="utf-8")
    worker = _worker(plan_file, "route", nats_url, tmp_path / "route.log")

    hits = [(f"hit-{i}", {"s": "aaaa", "p": "^zzz"}) for i in range(10)]
    misses = [(f"miss-{i}", {"s": "bbbb", "p": "^zzz"}) for i in range(10)]
    slow = [(f"backtrack-{i}", {"s": "a" * i + BACKTRACKS, "p": "(x+x+)+y"}) for i in range(5)]  # both patterns
    long_input = [("long", {"s": "a" * 9_000 + "!", "p": "^zzz"})]  # under the 10,000-character input cap
    hostile = {"backref": {"s": "ab", "p": "(a)\\1"}, "lookahead": {"s": "ab", "p": "a(?=b)"},
               "too-long": {"s": "a" * 20_000, "p": "^zzz"}}
    events = hits[:5] + slow + misses[:5] + list(hostile.items()) + long_input + hits[5:] + misses[5:]
    source, targets, internal = wf.sources[0], wf.streams[2].name, wf.streams[0].name
    hit_subject, miss_subject = wf.targets[0].subject, wf.targets[1].subject
    dlq = f"kumeo.{wf.slug}.dlq.route"
    try:
        async def bound() -> bool:
            assert worker.poll() is None, (tmp_path / "route.log").read_text()
            info = await js.consumer_info(source.stream, "route")
            return bool(info.num_waiting)

        assert await wait_for(bound, 30), (tmp_path / "route.log").read_text()
        started = time.monotonic()
        await publish(js, source.subject, events)

        drained = await wait_for(lambda: settled(js, source.stream, "route"), 60, interval=0.05)
        assert drained, (tmp_path / "route.log").read_text()
        elapsed = time.monotonic() - started
        on_hit = await event_ids(js, targets, hit_subject)
        on_miss = await event_ids(js, targets, miss_subject)
        dead = {m.headers["Kumeo-Event-Id"]: m.headers["Kumeo-Error"] for m in await messages(js, internal, dlq)}
        dead_counts = await event_ids(js, internal, dlq)
    finally:
        worker.terminate()
        worker.wait(timeout=15)

    # Five inputs that take a backtracking engine 10 s and more each, and all 31 events settled in seconds.
    assert elapsed < 10, f"{len(events)} events took {elapsed:.1f} s"
    assert on_hit == {i: 1 for i, _ in hits}
    assert on_miss == {i: 1 for i, _ in misses + slow + long_input}
    assert dead_counts == dict.fromkeys(hostile, 1)
    assert "backreference" in dead["backref"].lower() or "\\1" in dead["backref"], dead["backref"]
    assert "lookahead" in dead["lookahead"].lower() or "(?=" in dead["lookahead"], dead["lookahead"]
    assert "10000" in dead["too-long"].replace(",", ""), dead["too-long"]


async def test_an_output_that_is_not_finite_is_a_dead_letter_saying_so_and_the_rest_flows(js, nats_url, tmp_path):
    slug = new_slug()
    plan = chain(slug, ["score"], nats_url, max_deliver=3)
    await create_streams(js, plan)
    cluster = Cluster(plan, nats_url, tmp_path)
    worker = cluster.start("score", "Amplify")
    good = [(f"good-{i}", {"x": 0.5}) for i in range(10)]
    bad = [("inf", {"x": 10}), ("neg-inf", {"x": -10})]
    names = streams_of(slug)
    try:
        await cluster.wait_ready(js)
        await publish(js, source_subject(slug), good[:5] + bad + good[5:])
        assert await wait_for(lambda: settled(js, names["sources"], "score"), 30), cluster.logs()
        on_target = await event_ids(js, names["targets"], target_subject(slug))
        dead = await dead_letters(js, slug, "score")
        assert worker.alive(), cluster.logs()
    finally:
        cluster.close()
    assert on_target == {i: 1 for i, _ in good}
    assert set(dead) == {"inf", "neg-inf"}
    assert dead["inf"].headers["Kumeo-Error"].endswith("non-finite number Infinity at $.score is not JSON")
    assert dead["neg-inf"].headers["Kumeo-Error"].endswith("non-finite number -Infinity at $.score is not JSON")
    for msg in dead.values():
        body = json.loads(msg.data)  # the dead letter itself is strict JSON, and keeps the input for a replay
        assert body["input"]["x"] in (10, -10)
