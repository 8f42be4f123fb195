"""How long compile takes on generated workflows: 10, 100, 500 and 1000 agents (goal: 500 agents in < 1 s).

Run: .venv/bin/python benchmarks/bench_compile.py
Each workflow is a chain of DataProcessor/MLModel/LLM agents with a join every 10th agent and a Router at the end,
so every rule (subjects, consumers, KV buckets, Kubernetes objects) is exercised. The figure is the best of 3 runs.
"""

from __future__ import annotations

import time

from kumeo_iac.compile import compile_program
from kumeo_iac.spec import LLM, NATS, DataProcessor, MLModel, Program, Router, WorkflowSpec


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


def best_of(n: int, runs: int = 3) -> tuple[float, int]:
    best, objects = float("inf"), 0
    for _ in range(runs):
        program = generated(n)  # building the Spec is not part of the measure
        start = time.perf_counter()
        plan = compile_program(program)
        best = min(best, time.perf_counter() - start)
        objects = len(plan.workflows[0].kubernetes)
    return best, objects


def main() -> None:
    print(f"{'agents':>7} {'seconds':>9} {'ms/agent':>9} {'k8s objects':>12}")
    for n in (10, 100, 500, 1000):
        seconds, objects = best_of(n)
        print(f"{n:>7} {seconds:>9.3f} {1000 * seconds / n:>9.2f} {objects:>12}")
    seconds, _ = best_of(500)
    print(f"500 agents: {seconds:.3f} s ({'meets' if seconds < 1 else 'MISSES'} the < 1 s goal)")


if __name__ == "__main__":
    main()
