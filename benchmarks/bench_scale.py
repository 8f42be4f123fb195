"""A 200-agent workflow running locally (`kumeo run`'s LocalRunner): start time, events/s and memory.

    .venv/bin/python benchmarks/bench_scale.py [--agents 200] [--events 400] [--repeat 2]

The workflow is a chain of ``--agents`` DataProcessors (each checks a required field and passes the event on) from
a NATS source to a NATS target, compiled by ``compile_program`` and run by :class:`LocalRunner` with every agent as
an in-process Worker (one NATS connection each, one event loop) on an embedded nats-server. Every event crosses all
agents, so the figures are events/s end to end and agent steps/s (events × agents), plus the RSS of this process
(the runner and its 200 workers) and of nats-server, idle after start and at the end of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import Result, load_average, plot, rss_mib
from kumeo_iac.compile import compile_program
from kumeo_iac.local import LocalRunner
from kumeo_iac.spec import NATS, DataProcessor, Program, Ref, WorkflowSpec


def chain(agents: int) -> Program:
    steps = []
    previous: Ref = Ref(path=("source",))
    for i in range(agents):
        agent = DataProcessor(id=f"step_{i:03d}", input=previous, config={"required_fields": ["id"]})
        steps.append(agent)
        previous = agent.output
    return Program(workflows=[WorkflowSpec(name="Scale", source=NATS("scale.in"), target=NATS("scale.out"),
                                           agents=steps)])


async def run_once(agents: int, events: int, tag: str) -> dict[str, float]:
    plan = compile_program(chain(agents))
    rss_before = rss_mib()
    began = time.perf_counter()
    runner = LocalRunner(plan)
    await runner.start()
    try:
        started = time.perf_counter() - began
        server_pid = runner.server.pid
        await asyncio.sleep(1.0)
        idle_self, idle_server = rss_mib(), rss_mib(server_pid)
        _, source = runner.source_for()
        t0 = time.perf_counter()
        await runner.publish(source.subject, ((f"{tag}-{i}", {"id": i, "amount": 12.5, "note": "x" * 64})
                                              for i in range(events)))
        peak_self, peak_server = rss_mib(), rss_mib(server_pid)
        result = await runner.drain(timeout=240)
        elapsed = time.perf_counter() - t0
        end_self, end_server = rss_mib(), rss_mib(server_pid)
        if not result.drained or result.unreached or runner.results != events:
            raise SystemExit(f"FAIL: the {agents}-agent workflow did not deliver every event "
                             f"(results {runner.results}/{events}, holding {result.holding[:3]})")
    finally:
        await runner.stop()
    return {"start_s": started, "events_per_s": events / elapsed, "steps_per_s": events * agents / elapsed,
            "elapsed_s": elapsed, "rss_runner_before_mib": rss_before, "rss_runner_idle_mib": idle_self,
            "rss_server_idle_mib": idle_server, "rss_runner_end_mib": max(end_self, peak_self),
            "rss_server_end_mib": max(end_server, peak_server)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    result = Result("scale")
    runs = [await run_once(args.agents, args.events, f"r{i}") for i in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    last = runs[-1]
    print(f"{args.agents}-agent chain on one embedded nats-server, LocalRunner with in-process workers, "
          f"{args.events} events, median of {args.repeat} runs, load average {load_average()}:")
    print(f"  start (server, streams, {args.agents} consumers and workers): {med['start_s']:.2f} s")
    print(f"  throughput: {med['events_per_s']:,.1f} events/s end to end = {med['steps_per_s']:,.0f} agent steps/s")
    print(f"  RSS idle: runner {med['rss_runner_idle_mib']:.0f} MiB "
          f"({med['rss_runner_idle_mib'] / args.agents:.2f} MiB/agent incl. the interpreter), "
          f"nats-server {med['rss_server_idle_mib']:.0f} MiB")
    print(f"  RSS under load (max seen): runner {last['rss_runner_end_mib']:.0f} MiB, "
          f"nats-server {last['rss_server_end_mib']:.0f} MiB")
    result["agents"] = args.agents
    result["events"] = args.events
    result["median"] = {k: round(v, 3) for k, v in med.items()}
    result["runs"] = [{k: round(v, 3) for k, v in r.items()} for r in runs]
    result.write()

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        labels = ["runner idle", "runner loaded", "nats-server idle", "nats-server loaded"]
        values = [med["rss_runner_idle_mib"], last["rss_runner_end_mib"], med["rss_server_idle_mib"],
                  last["rss_server_end_mib"]]
        ax.bar(labels, values, color=["#4c72b0", "#4c72b0", "#dd8452", "#dd8452"])
        ax.set_ylabel("RSS, MiB")
        ax.set_title(f"{args.agents}-agent workflow: memory ({med['events_per_s']:,.0f} events/s, "
                     f"{med['steps_per_s']:,.0f} steps/s)")

    plot("scale_memory", draw)


if __name__ == "__main__":
    asyncio.run(main())
