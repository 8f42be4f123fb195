"""What the Workflow component costs under Pulumi's mocks, against the Pulumi SDK's own cost, in the same run.

A generated 500-agent workflow (a chain of DataProcessors) is declared by the Workflow component (validate,
compile, register every JetStream and Kubernetes resource); beside it, the baseline: the bare Pulumi SDK registering
2,000 plain ConfigMaps. Both run under ``kumeo_iac.testing.mocked_engine`` (no engine, cluster or NATS server), one
after the other, so the ratio holds whatever the machine's load. Goals: at most 3 resources per agent, and the
workflow no slower than the baseline (ratio ≤ 1). Beside wall time it reports CPU time (``time.process_time``: the
mocks' monitor threads included), a ratio that other work on a shared machine disturbs far less.

    .venv/bin/python benchmarks/bench_pulumi.py [--agents 500] [--baseline 2000] [--repeat 3] [--keda]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pulumi

from benchmarks._harness import Result, load_average
from kumeo_iac.spec import NATS, DataProcessor, Ref, WorkflowSpec
from kumeo_iac.testing import mocked_engine

MAX_RESOURCES_PER_AGENT = 3


def generated_workflow(agents: int) -> WorkflowSpec:
    chain = []
    previous: Ref = Ref(path=("source",))
    for i in range(agents):
        agent = DataProcessor(id=f"step_{i:04d}", input=previous, config={"required_fields": ["id"]})
        chain.append(agent)
        previous = agent.output
    return WorkflowSpec(name="Big", source=NATS("big.in"), target=NATS("big.out"), agents=chain)


def config_maps(count: int) -> None:
    """The baseline program: plain ConfigMaps, the cheapest typed resource a program can register."""
    from pulumi_kubernetes.core.v1 import ConfigMap

    for i in range(count):
        ConfigMap(f"plain-{i:05d}", metadata={"name": f"plain-{i:05d}", "namespace": "bench"},
                  data={"key": f"value-{i}"})


def timed(program: Callable[[], Any], config: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and the number of resources of one run of ``program`` under the mocks."""
    with mocked_engine() as mocks:
        pulumi.runtime.set_all_config(config)
        start, start_cpu = time.perf_counter(), time.process_time()
        resources = mocks.run(program)
        return time.perf_counter() - start, time.process_time() - start_cpu, len(resources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=2000, help="ConfigMaps the baseline registers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keda", action="store_true", help="KEDA ScaledObjects instead of HPAs")
    args = parser.parse_args()

    from kumeo_iac.components import Workflow

    spec = generated_workflow(args.agents)
    config = {"kumeo:keda": "true" if args.keda else "false", "kumeo:jetstreamUrl": "nats://127.0.0.1:4222"}
    timed(lambda: config_maps(50), {})  # imports and the first event loop, outside both measures
    workflow_s, baseline_s, workflow_cpu, baseline_cpu, resources = [], [], [], [], 0
    for _ in range(args.repeat):  # interleaved, so a burst of load hits both sides alike
        seconds, cpu, resources = timed(lambda: Workflow("big", spec), config)
        workflow_s.append(seconds)
        workflow_cpu.append(cpu)
        seconds, cpu, _ = timed(lambda: config_maps(args.baseline), {})
        baseline_s.append(seconds)
        baseline_cpu.append(cpu)
    workflow, baseline = statistics.median(workflow_s), statistics.median(baseline_s)
    per_agent = resources / args.agents
    ratio = workflow / baseline
    cpu_ratio = statistics.median(workflow_cpu) / statistics.median(baseline_cpu)
    print(f"median of {args.repeat} interleaved runs, load average {load_average()}:")
    print(f"  Workflow, {args.agents} agents: {resources} resources ({per_agent:.2f} per agent, goal ≤ "
          f"{MAX_RESOURCES_PER_AGENT}) in {workflow:.2f} s ({1000 * workflow / resources:.2f} ms/resource)")
    print(f"  Pulumi SDK, {args.baseline} ConfigMaps: {baseline:.2f} s ({1000 * baseline / args.baseline:.2f} "
          f"ms/resource)")
    print(f"  ratio workflow / baseline: {ratio:.2f} (goal ≤ 1): {'OK' if ratio <= 1 else 'SLOWER'}; in CPU time "
          f"{cpu_ratio:.2f} ({statistics.median(workflow_cpu):.2f} s / {statistics.median(baseline_cpu):.2f} s)")

    result = Result("pulumi")
    result["agents"] = args.agents
    result["resources"] = resources
    result["resources_per_agent"] = round(per_agent, 3)
    result["workflow_s"] = round(workflow, 3)
    result["baseline_config_maps"] = args.baseline
    result["baseline_s"] = round(baseline, 3)
    result["ratio"] = round(ratio, 3)
    result["workflow_cpu_s"] = round(statistics.median(workflow_cpu), 3)
    result["baseline_cpu_s"] = round(statistics.median(baseline_cpu), 3)
    result["cpu_ratio"] = round(cpu_ratio, 3)
    result.write()
    gc.collect()  # the SDK's stray event loops, closed now rather than noisily at interpreter exit
    if per_agent > MAX_RESOURCES_PER_AGENT:
        raise SystemExit(f"{per_agent:.2f} resources per agent, more than {MAX_RESOURCES_PER_AGENT}")


if __name__ == "__main__":
    main()
