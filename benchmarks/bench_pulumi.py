"""How long the Workflow component takes to declare a large workflow under Pulumi mocks.

A generated 500-agent workflow (a chain of DataProcessors) is validated and compiled, then the Workflow
component registers every JetStream and Kubernetes resource with the mocked engine (no engine, cluster or NATS
server: ``kumeo_iac.testing.PulumiMocks`` stands in). Goal: under 10 s on a 2-core machine.

    .venv/bin/python benchmarks/bench_pulumi.py [--agents 500] [--keda]
"""

from __future__ import annotations

import argparse
import time

import pulumi

from kumeo_iac.compile import compile_program
from kumeo_iac.spec import NATS, DataProcessor, Program, Ref, WorkflowSpec
from kumeo_iac.testing import mocked_engine
from kumeo_iac.validate import validate

GOAL_SECONDS = 10.0


def generated_workflow(agents: int) -> WorkflowSpec:
    chain = []
    previous: Ref = Ref(path=("source",))
    for i in range(agents):
        agent = DataProcessor(id=f"step_{i:04d}", input=previous, config={"required_fields": ["id"]})
        chain.append(agent)
        previous = agent.output
    return WorkflowSpec(name="Big", source=NATS("big.in"), target=NATS("big.out"), agents=chain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--keda", action="store_true", help="KEDA ScaledObjects instead of HPAs")
    parser.add_argument("--no-jetstream", action="store_true", help="leave the JetStream resources out")
    args = parser.parse_args()

    spec = generated_workflow(args.agents)
    t0 = time.perf_counter()
    program = Program(workflows=[spec])
    errors = [d for d in validate(program) if d.is_error]
    assert not errors, errors[:3]
    t_validate = time.perf_counter() - t0
    t0 = time.perf_counter()
    compile_program(program)
    t_compile = time.perf_counter() - t0

    from kumeo_iac.components import Workflow

    with mocked_engine() as mocks:
        config = {"kumeo:keda": "true" if args.keda else "false"}
        try:
            import kumeo_providers

            jetstream = hasattr(kumeo_providers, "Stream") and not args.no_jetstream
        except ImportError:
            jetstream = False
        if not jetstream:
            config["kumeo:manageJetStream"] = "false"
        pulumi.runtime.set_all_config(config)
        t0 = time.perf_counter()
        resources = mocks.run(lambda: Workflow("big", spec))
        t_pulumi = time.perf_counter() - t0

    total = t_validate + t_compile + t_pulumi
    print(f"agents={args.agents} resources={len(resources)} jetstream={'yes' if jetstream else 'no'} "
          f"keda={'yes' if args.keda else 'no'}")
    print(f"validate {t_validate:.2f} s, compile {t_compile:.2f} s, Workflow under mocks (incl. validate+compile) "
          f"{t_pulumi:.2f} s")
    print(f"program under mocks: {t_pulumi:.2f} s (goal < {GOAL_SECONDS:.0f} s): "
          f"{'OK' if t_pulumi < GOAL_SECONDS else 'SLOW'}; {1000 * t_pulumi / max(len(resources), 1):.2f} ms/resource")


if __name__ == "__main__":
    main()
