"""Custom agents through a real Worker on nats-server: Python entry points (sync and async) and a WebAssembly
module, chained as in examples/custom_code; a module over its limits dead-letters the event with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from worker_support import (
    agent_plan,
    new_slug,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.runtime import envelope

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_code"


async def test_python_sync_then_wasm_like_the_example_workflow(harness):
    slug = new_slug()
    enrich = agent_plan(slug, "enrich", {"": source_subject(slug)})
    enrich.settings["entrypoint"] = "handlers:enrich"
    annotate = agent_plan(slug, "annotate", {"": f"kumeo.{slug}.enrich.out"})
    annotate.settings.update({"wasm": {"file": "annotate.wasm"},
                              "config": {"time_limit": "500ms", "memory_limit": "16Mi"}})
    plan = await harness.deploy(slug, [enrich, annotate])
    for agent in ("enrich", "annotate"):
        await harness.run_worker(plan, agent, None, base_dir=EXAMPLE)

    await publish_events(harness.js, source_subject(slug), [{"order_id": "o-1", "amount": 12.5},
                                                            {"order_id": "o-2", "amount": 2500}, {"order_id": "bad"}])
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.annotate.out"
    assert await wait_count(harness.js, internal, out, 2) == 2
    results = sorted((json.loads(m.data) for m in await read_subject(harness.js, internal, out)),
                     key=lambda d: d["event"]["order_id"])
    assert results[1] == {"checked_by": "wasm",
                          "event": {"order_id": "o-2", "amount": 2500, "amount_cents": 250000, "size": "large"}}
    # The entry point rejected the order without an amount: dead-lettered at once, with its reason.
    dlq = f"kumeo.{slug}.dlq.enrich"
    assert await wait_count(harness.js, internal, dlq, 1) == 1
    (dead,) = await read_subject(harness.js, internal, dlq)
    assert "needs an 'amount'" in dead.headers[envelope.ERROR] and json.loads(dead.data)["attempt"] == 1


async def test_an_async_entry_point_with_the_event_emits_several_messages(harness):
    slug, plan = await harness.one_agent("split", settings={"entrypoint": "handlers:split_lines"})
    await harness.run_worker(plan, "split", None, base_dir=EXAMPLE)
    await harness.js.publish(source_subject(slug), json.dumps({"lines": [{"sku": "a"}, {"sku": "b"}]}).encode(),
                             headers={envelope.EVENT_ID: "order-9"})
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.split.out"
    assert await wait_count(harness.js, internal, out, 2) == 2
    msgs = await read_subject(harness.js, internal, out)
    assert [json.loads(m.data) for m in msgs] == [{"order": "order-9", "line": 0, "sku": "a"},
                                                  {"order": "order-9", "line": 1, "sku": "b"}]
    assert [m.headers[envelope.MSG_ID] for m in msgs] == ["order-9:split", "order-9:split:1"]


@pytest.mark.parametrize(("module", "config", "reason"), [
    ('''(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) i32.const 1024)
        (func (export "handle") (param i32 i32) (result i64) (loop $l (br $l)) i64.const 0))''',
     {"time_limit": "200ms"}, "exceeded its time limit (0.2 s)"),
    ('''(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) i32.const 1024)
        (func (export "handle") (param i32 i32) (result i64)
          (loop $l (if (i32.eq (memory.grow (i32.const 4)) (i32.const -1)) (then unreachable)) (br $l))
          i64.const 0))''',
     {"memory_limit": "2Mi"}, "exceeded its memory limit (2 MiB)"),
])
async def test_a_wasm_module_over_its_limits_is_dead_lettered_without_retries(harness, tmp_path, module, config,
                                                                              reason):
    (tmp_path / "bad.wat").write_text(module)
    slug, plan = await harness.one_agent("bad", settings={"wasm": {"file": "bad.wat"}, "config": config},
                                         max_deliver=3)
    worker = await harness.run_worker(plan, "bad", None, base_dir=tmp_path)
    await publish_events(harness.js, source_subject(slug), [{"n": 1}])
    internal, _ = stream_names(slug)
    dlq = f"kumeo.{slug}.dlq.bad"
    assert await wait_count(harness.js, internal, dlq, 1) == 1
    (dead,) = await read_subject(harness.js, internal, dlq)
    assert reason in dead.headers[envelope.ERROR]
    assert json.loads(dead.data)["attempt"] == 1  # permanent: no retry of a module that would do it again
    assert worker.metrics.events_dead_lettered == 1
