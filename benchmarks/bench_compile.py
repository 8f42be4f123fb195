"""How check, compile and render grow with workflow size: 10 → 1000 agents (goal: 500 agents compile in < 1 s).

Run: .venv/bin/python benchmarks/bench_compile.py [--repeat 3]

* **check**: parse + validate generated `.kumeo` text (``bench_check.generate``: every agent kind, a fan-in every
  ten agents, an expression in every agent) — what `kumeo check` does in-process;
* **compile**: Spec → Plan on a chain of DataProcessor/MLModel/LLM agents with a join every 10th agent and a
  Router at the end, so every rule (subjects, consumers, KV buckets, Kubernetes objects) is exercised;
* **render**: the compiled Plan written as Kubernetes YAML + JetStream JSON into a temporary directory.

Each figure is the median of ``--repeat`` runs (render above 100 agents: one run). The growth is summarised by the
per-agent cost at each size and by the exponent k of a least-squares fit ``time ≈ c · agents^k`` (k = 1 is linear).
Results: ``results/compile.json`` and ``results/compile_scaling.png``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import Result, fit_exponent, load_average, plot
from benchmarks.bench_check import generate
from kumeo_iac.compile import compile_program
from kumeo_iac.spec import (
    LLM,
    NATS,
    DataProcessor,
    MLModel,
    Program,
    Router,
    WorkflowSpec,
)

SIZES = (10, 30, 100, 300, 1000)


def generated(n: int) -> Program:
    agents = []
    for i in range(n - 1):
        previous = f"a{i - 1}.output" if i else "source"
        if i % 10 == 9 and i > 1:
            agent = DataProcessor(id=f"a{i}", input={"left": previous, "right": f"a{i - 2}.output"})
        elif i % 7 == 3:
            agent = MLModel("models/m.onnx", id=f"a{i}", input=previous)
        elif i % 50 == 25:
            agent = LLM("ollama/llama3", id=f"a{i}", input=previous, prompt="Summarise {{text}}")
        else:
            agent = DataProcessor(id=f"a{i}", input=previous)
        agents.append(agent)
    agents.append(Router(id="route", input=f"a{n - 2}.output",
                         rules={"score > 0.5": "target.high", "default": "target.low"}))
    return Program(workflows=[WorkflowSpec(name="Bench", sources=[NATS("bench.in")],
                                           targets=[NATS("high"), NATS("low")], agents=agents)])


def _median_time(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(n: int, repeat: int) -> dict[str, float]:
    from kumeo_iac._cli.render import render_plan
    from kumeo_iac.lang import parse
    from kumeo_iac.validate import validate

    text = generate(n)

    def check() -> None:
        program = parse(text, "big.kumeo").program
        list(validate(program))

    def compile_() -> None:
        compile_program(program)

    program = generated(n)  # building the Spec is not part of the measure
    plan = compile_program(program)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "workflow"  # the model file the generated agents read (render reads it into a ConfigMap)
        (base / "models").mkdir(parents=True)
        (base / "models" / "m.onnx").write_bytes(b"\0" * 1024)
        # Rendering 1000 agents takes seconds: one run above 100 agents keeps `make bench` within its budget.
        render = _median_time(lambda: render_plan(plan, Path(tmp) / "out", base), repeat if n <= 100 else 1)
    return {"check_s": _median_time(check, repeat), "compile_s": _median_time(compile_, repeat), "render_s": render,
            "kubernetes_objects": len(plan.workflows[0].kubernetes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    result = Result("compile")
    measure(10, 1)  # parsers, schemas and YAML emitters built once, as a process does on its first file
    rows = {n: measure(n, args.repeat) for n in SIZES}
    print(f"median of {args.repeat} runs, load average {load_average()}:")
    print(f"{'agents':>7} {'check s':>9} {'ms/agent':>9} {'compile s':>10} {'ms/agent':>9} {'render s':>9} "
          f"{'ms/agent':>9} {'k8s objects':>12}")
    for n, r in rows.items():
        print(f"{n:>7} {r['check_s']:>9.3f} {1000 * r['check_s'] / n:>9.2f} {r['compile_s']:>10.3f} "
              f"{1000 * r['compile_s'] / n:>9.2f} {r['render_s']:>9.3f} {1000 * r['render_s'] / n:>9.2f} "
              f"{int(r['kubernetes_objects']):>12}")
    sizes = list(rows)
    exponents = {stage: fit_exponent(sizes, [rows[n][f"{stage}_s"] for n in sizes])
                 for stage in ("check", "compile", "render")}
    print("fitted growth time ≈ c·agents^k: " + ", ".join(f"{s} k = {k:.2f}" for s, k in exponents.items()))
    big = rows[1000]
    print(f"1000 agents: check {big['check_s']:.2f} s + compile {big['compile_s']:.2f} s + render "
          f"{big['render_s']:.2f} s = {sum(big[k] for k in ('check_s', 'compile_s', 'render_s')):.2f} s")
    seconds = measure(500, args.repeat)["compile_s"]
    print(f"500 agents compile: {seconds:.3f} s ({'meets' if seconds < 1 else 'MISSES'} the < 1 s goal)")

    result["sizes"] = {str(n): {k: round(v, 5) for k, v in r.items()} for n, r in rows.items()}
    result["exponents"] = {k: round(v, 3) for k, v in exponents.items()}
    result["compile_500_s"] = round(seconds, 4)
    result.write()

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        for stage in ("check", "compile", "render"):
            ax.plot(sizes, [rows[n][f"{stage}_s"] for n in sizes], marker="o",
                    label=f"{stage} (k = {exponents[stage]:.2f})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("agents")
        ax.set_ylabel("seconds")
        ax.set_title("check / compile / render time vs workflow size (log-log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()

    plot("compile_scaling", draw)


if __name__ == "__main__":
    main()
