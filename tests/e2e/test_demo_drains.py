"""The demo drains promptly, run after run (issue 16: one `make demo` run of ten stalled 56.8 s with "1 in flight").

The cause was the local LLM server's thread count: llama.cpp ran as many threads as the machine has CPUs, and its
threads meet at a barrier after every step of every token, so whenever anything else ran (the agents' event loop in
the same process, nats-server, a busy machine) one thread was descheduled and the others waited for it. A 48-token
reply went from ~3 s to 100 s on a loaded 2-CPU machine, the LLM agent's 30 s timeout expired, and the event waited
for its retry. ``LocalLLM`` now leaves a CPU free (``default_threads``).

Each round here is what `kumeo run examples/fraud_detection/… --llm local` does after its start-up: a fresh embedded
nats-server, every agent in-process, the ten sample transactions published and drained, with the real SmolLM2
served by llama.cpp (a server per run, as each `kumeo run` starts one). The issue asks for 50 runs in a row, and the
suite runs 50 (``KUMEO_DEMO_RUNS`` sets another count; 50 take about 8 minutes on 2 CPUs: each run's four LLM
replies dominate its drain). Only the drain is timed, as `kumeo run` reports it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kumeo_iac.local._llm import LocalLLM, default_threads, use_local_llm

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(1800)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
RUNS = int(os.environ.get("KUMEO_DEMO_RUNS", "50"))
#: What the issue allows one run to take to drain, on a machine that is not busy with other work.
DRAIN_LIMIT_SECONDS = 15.0


def drain_limit() -> float:
    """DRAIN_LIMIT_SECONDS, stretched by how many times over the CPUs are taken (the 1-minute load average per CPU)
    on a machine shared with other work: a reply that needs 1 s of CPU takes 5 s when 5 processes want each CPU.
    The stall this guards against is of another kind: an LLM timeout and a retry, which the redelivery count shows
    whatever the load."""
    cpus = len(os.sched_getaffinity(0))
    return DRAIN_LIMIT_SECONDS * max(1.0, os.getloadavg()[0] / cpus)


async def redeliveries(runner) -> dict[str, int]:
    """Deliveries beyond the first, per agent: a timed-out attempt retried, or an ack wait that ran out."""
    counts = {}
    for wf in runner.workflows:
        for agent in wf.agents:
            for consumer in agent.consumers:
                info = await runner.js.consumer_info(consumer.stream, consumer.durable)
                counts[agent.id] = counts.get(agent.id, 0) + int(info.num_redelivered or 0)
    return {agent: n for agent, n in counts.items() if n}


def demo_plan():
    from kumeo_iac import load
    from kumeo_iac.compile import compile_program

    return compile_program(load(EXAMPLE / "fraud_detection.kumeo"), base_dir=EXAMPLE)


def demo_events() -> list[tuple[str, object]]:
    from kumeo_iac.local import read_events

    events = read_events(str(EXAMPLE / "events" / "transactions.jsonl"))
    return [(f"transactions-{line}", payload) for line, payload in events.events]


def test_the_local_model_leaves_a_cpu_to_the_agents():
    usable = len(os.sched_getaffinity(0))
    assert default_threads() == max(1, min(usable - 1, 4))
    assert LocalLLM().threads == default_threads()


async def test_the_fraud_demo_drains_in_under_15_s_run_after_run():
    from kumeo_iac.local import LocalRunner

    plan = demo_plan()
    events = demo_events()
    took: list[float] = []
    for run in range(RUNS):
        # A server of its own per run, as each `kumeo run` has: llama.cpp's prompt cache would make later runs of
        # one server faster than a real first run.
        async with LocalLLM() as llm:
            local = type(plan)([use_local_llm(wf, llm.base_url, llm.model) for wf in plan.workflows])
            async with LocalRunner(local, base_dir=EXAMPLE) as runner:
                (wf,) = local.workflows
                await runner.publish(wf.sources[0].subject, events)
                began = time.monotonic()
                result = await runner.drain(60.0)
                took.append(time.monotonic() - began)
                assert result.drained, f"run {run + 1}: still holding {result.holding}"
                assert (runner.results, runner.dead_letters) == (9, 1), f"run {run + 1}"
                assert await redeliveries(runner) == {}, f"run {run + 1}: events were delivered again"
                limit = drain_limit()
                assert took[-1] < limit, (f"run {run + 1} took {took[-1]:.1f} s to drain (limit {limit:.1f} s at "
                                          f"load {os.getloadavg()[0]:.1f}): {took}")
    print(f"\n{RUNS} runs drained in {min(took):.1f}–{max(took):.1f} s (mean {sum(took) / len(took):.1f} s); "
          f"load {os.getloadavg()[0]:.1f}")
