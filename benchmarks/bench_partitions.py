"""Throughput of a partitioned agent (issue 17, item 3): events/s for 1, 2 and 4 partitions, side by side with the
same agent unpartitioned, in one run.

    .venv/bin/python benchmarks/bench_partitions.py [--events 2000] [--work 80000]

Each configuration is the workflow source → ``prep`` (a DataProcessor) → ``work`` (a Custom Python function that
burns a few milliseconds of CPU per event: ``--work`` multiply-adds) → target, compiled by ``compile_program`` and
run by :class:`LocalRunner` with one OS process per agent (``kumeo run --processes``), so lanes run in parallel on
separate cores. ``work`` is unpartitioned (one process, its batches handled concurrently, no order per key), or
has N partitions keyed by ``customer.id`` over 200 keys (N processes, one event in flight per lane, per-key order).
The figure is events/s from the first publish until every result reached the target. On a machine with C cores,
partitions beyond C share cores (and ``prep`` and nats-server need some too). With little work per event a lane's
round trip per event dominates and one unpartitioned process (many events in flight) is faster: partition for
order per key, and for throughput only when the agent's work per event is the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import Result, load_average
from kumeo_iac.compile import compile_program
from kumeo_iac.lang import parse
from kumeo_iac.local import LocalRunner

KEYS = 200

WORKFLOW = """workflow Bench {
  source: NATS("bench.in")
  target: NATS("bench.out")
  agents: [
    DataProcessor(id: "prep", input: source),
    Custom("bench_partition_work:work", id: "work", input: prep.output, output: "target.bench.out"PARTITIONS)
  ]
}
"""

HANDLER = """
def work(payload):
    total = 0
    for i in range(%d):
        total += i * i
    return {**payload, "work": total %% 97}
"""


async def run_once(partitions: int | None, events: int, work: int, folder: Path, tag: str) -> float:
    extra = "" if partitions is None else f', partitions: {partitions}, partition_key: "customer.id"'
    result = parse(WORKFLOW.replace("PARTITIONS", extra), str(folder / "bench.kumeo"))
    if not result.ok:
        raise SystemExit(f"FAIL: {[d.format() for d in result.diagnostics]}")
    plan = compile_program(result.program)
    (folder / "bench_partition_work.py").write_text(HANDLER % work)
    runner = LocalRunner(plan, base_dir=folder, processes=True)
    await runner.start()
    try:
        _, source = runner.source_for()
        t0 = time.perf_counter()
        await runner.publish(source.subject, ((f"{tag}-{i}", {"customer": {"id": f"c{i % KEYS}"}, "n": i})
                                              for i in range(events)))
        drained = await runner.drain(timeout=300)
        elapsed = time.perf_counter() - t0
        if not drained.drained or runner.results != events:
            raise SystemExit(f"FAIL: {tag} delivered {runner.results}/{events} results")
    finally:
        await runner.stop()
    return events / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--work", type=int, default=80000, help="multiply-adds per event in the agent")
    args = parser.parse_args()

    result = Result("partitions")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kumeo-bench-partitions-") as tmp:
        for label, partitions in (("unpartitioned", None), ("1", 1), ("2", 2), ("4", 4)):
            figures[label] = await run_once(partitions, args.events, args.work, Path(tmp), f"p{label}")
    base = figures["unpartitioned"]
    print(f"one agent ({args.work:,} multiply-adds per event) behind a DataProcessor, one process per agent or "
          f"lane, {args.events:,} events over {KEYS} keys, load average {load_average()}:")
    for label, rate in figures.items():
        what = "unpartitioned (one process)" if label == "unpartitioned" else f"{label} partition(s)"
        print(f"  {what:<28} {rate:>9,.0f} events/s  ({rate / base:.2f}× unpartitioned)")
    result["events"] = args.events
    result["work"] = args.work
    result["keys"] = KEYS
    result["events_per_s"] = {k: round(v, 1) for k, v in figures.items()}
    result.write()


if __name__ == "__main__":
    asyncio.run(main())
