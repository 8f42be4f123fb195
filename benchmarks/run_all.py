"""Run every ``benchmarks/bench_*.py`` (what ``make bench`` runs), time each and the total, and summarise.

    .venv/bin/python benchmarks/run_all.py [--only runtime,scale]

Each script's output is kept in ``benchmarks/results/<name>.txt``; the figures the scripts write as JSON are
gathered into ``results/summary.json`` and printed as the Markdown table docs/performance.md shows. Exits 1 if a
script failed, or if the total went over the 10-minute budget of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import RESULTS, ROOT, load_average, machine

BUDGET_SECONDS = 600


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table() -> str:
    """The headline figures, from the JSON results of the last runs."""
    rows = ["| figure | kumeo | baseline | ratio | goal | load |", "|---|---|---|---|---|---|"]
    runtime = _load("runtime")
    if runtime:
        f, load = runtime["figures"], runtime["load_after"]
        one, chain = f["one_hop"], f["chain3"]
        rows.append(f"| one hop, events/s (batch {f['batch']}) | {one['worker_events_per_s']:,} | "
                    f"{one['relay_events_per_s']:,} (nats-py relay) | {one['ratio']:.2f} | ≥ 0.8× and ≥ 10k | {load} |")
        rows.append(f"| 3-agent chain, events/s | {chain['worker_events_per_s']:,} | "
                    f"{chain['relay_events_per_s']:,} (3 relays) | {chain['ratio']:.2f} | — | {load} |")
        for rate, lat in f["latency"].items():
            goal = "p99 < 10 ms" if rate == "1000" else "—"
            rows.append(f"| hop latency at {int(rate):,}/s: p50 / p99 / p999 ms | {lat['p50_ms']:.2f} / "
                        f"{lat['p99_ms']:.2f} / {lat['p999_ms']:.2f} | — | — | {goal} | {load} |")
    scale = _load("scale")
    if scale:
        m, load = scale["figures"]["median"], scale["load_after"]
        n = scale["figures"]["agents"]
        rows.append(f"| {n}-agent workflow, events/s end to end (agent steps/s) | {m['events_per_s']:,.0f} "
                    f"({m['steps_per_s']:,.0f}) | — | — | — | {load} |")
        rows.append(f"| {n}-agent workflow, RSS runner / nats-server, MiB (idle → loaded) | "
                    f"{m['rss_runner_idle_mib']:.0f} → {m['rss_runner_end_mib']:.0f} / "
                    f"{m['rss_server_idle_mib']:.0f} → {m['rss_server_end_mib']:.0f} | — | — | — | {load} |")
    compile_ = _load("compile")
    if compile_:
        f, load = compile_["figures"], compile_["load_after"]
        big = f["sizes"]["1000"]
        for stage in ("check", "compile", "render"):
            rows.append(f"| {stage} 1000 agents, s (ms/agent; growth exponent k) | {big[f'{stage}_s']:.2f} "
                        f"({1000 * big[f'{stage}_s'] / 1000:.2f}; k = {f['exponents'][stage]:.2f}) | — | — | "
                        f"{'500 agents < 1 s' if stage == 'compile' else '—'} | {load} |")
    onnx = _load("onnx")
    if onnx:
        f, load = onnx["figures"], onnx["load_after"]
        rows.append(f"| ONNX MLModel hop, events/s, batched vs unbatched | {f['batched_events_per_s']:,} | "
                    f"{f['unbatched_events_per_s']:,} (batch_size 1) | {f['ratio']:.2f} | ≥ 5k | {load} |")
    partitions = _load("partitions")
    if partitions:
        f, load = partitions["figures"], partitions["load_after"]
        rates = f["events_per_s"]
        base = rates["unpartitioned"]
        rows.append(f"| partitioned agent, events/s with 1 / 2 / 4 lanes (CPU-bound agent, a process per lane) | "
                    f"{rates['1']:,.0f} / {rates['2']:,.0f} / {rates['4']:,.0f} | {base:,.0f} (unpartitioned) | "
                    f"{rates['1'] / base:.2f} / {rates['2'] / base:.2f} / {rates['4'] / base:.2f} | — | {load} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names (runtime, scale, …); default: all")
    args = parser.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in only]
    RESULTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    failed: list[str] = []
    began = time.perf_counter()
    load_before = load_average()
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== {script.relative_to(ROOT)}  (load average {load_average()})", flush=True)
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, check=False)
        timings[name] = round(time.perf_counter() - t0, 1)
        (RESULTS / f"{name}.txt").write_text(run.stdout + (run.stderr if run.returncode else ""), encoding="utf-8")
        print(run.stdout, end="")
        if run.returncode:
            failed.append(name)
            print(run.stderr[-3000:], file=sys.stderr)
        print(f"   ({timings[name]:.1f} s)", flush=True)
    total = round(time.perf_counter() - began, 1)
    summary = {"total_seconds": total, "budget_seconds": BUDGET_SECONDS, "seconds": timings, "failed": failed,
               "load_before": load_before, "load_after": load_average(), "machine": machine()}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\ntotal {total:.0f} s for {len(scripts)} benchmarks (budget {BUDGET_SECONDS} s); "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("\n" + table())
    return 1 if failed or (not only and total > BUDGET_SECONDS) else 0


if __name__ == "__main__":
    sys.exit(main())
