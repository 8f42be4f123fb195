"""``python -m kumeo_iac.runtime``: run one agent of a Plan until SIGTERM, the entrypoint of every agent image.

::

    python -m kumeo_iac.runtime --plan PLAN.json --agent ID [--workflow NAME] [--nats URL]
                                [--health-port 8080] [--base-dir DIR]

``NATS_URL``, ``KUMEO_AGENT``, ``KUMEO_WORKFLOW``, ``KUMEO_PLAN`` and ``KUMEO_HEALTH_PORT`` provide defaults; in the
cluster a Deployment passes the agent's own part of the Plan in ``KUMEO_PLAN_JSON`` instead of a file. The agent's
NATS identity comes from ``NATS_USER``/``NATS_PASSWORD`` (or ``NATS_TOKEN``, ``NATS_CREDS``), ``NATS_INBOX_PREFIX``
and, for TLS, ``NATS_TLS_CA``/``NATS_TLS_CERT``/``NATS_TLS_KEY`` (see docs/security.md). SIGTERM (or SIGINT) stops
fetching, lets in-flight events finish and be acked, drains the connection and exits 0; a worker that cannot start
exits 1 with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
from pathlib import Path

from kumeo_iac.errors import KumeoError
from kumeo_iac.runtime._process import RuntimeProcess, pick_workflow

DESCRIPTION = "python -m kumeo_iac.runtime: run one agent of a Plan until SIGTERM, the entrypoint of every agent image."


def _load_agent_class(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise KumeoError(f"--agent-class {target!r}: expected 'module:Class'")
    agent_class: type = getattr(importlib.import_module(module_name), class_name)
    return agent_class


async def _serve(args: argparse.Namespace, stopping: asyncio.Event) -> int:
    from kumeo_iac.jetstream import connect_options_from_env
    from kumeo_iac.runtime._plan_source import read_plan
    from kumeo_iac.runtime._worker import Worker

    if not args.agent:
        raise KumeoError("no agent given: pass --agent ID or set KUMEO_AGENT")
    plan, where = read_plan(args.plan)
    workflow = pick_workflow(plan, where, args.workflow, agent=args.agent)
    try:
        agent_plan = workflow.agent(args.agent)
    except KeyError:
        ids = ", ".join(a.id for a in workflow.agents)
        raise KumeoError(f"workflow {workflow.name} has no agent {args.agent!r} (agents: {ids})") from None

    base_dir = Path(args.base_dir)
    agent = None
    if args.agent_class:
        agent = _load_agent_class(args.agent_class)(agent_plan, workflow, base_dir)
    worker = Worker(
        workflow,
        args.agent,
        args.nats,
        base_dir,
        agent,
        batch_size=args.batch_size,
        health_port=None if args.health_port < 0 else args.health_port,
        connect_options=connect_options_from_env(os.environ),
    )

    await worker.start()
    run = asyncio.create_task(worker.run())
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({run, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    await worker.stop()
    stop_wait.cancel()
    await run  # re-raises if the run loop itself failed
    return 0


PROCESS = RuntimeProcess("runtime", "python -m kumeo_iac.runtime", DESCRIPTION, _serve,
                         base_dir_help="directory the agent's files (models, rules) are relative to")
PROCESS.add_argument("--agent", default=os.environ.get("KUMEO_AGENT"), help="the id of the agent to run")
PROCESS.add_argument("--batch-size", type=int, default=int(os.environ.get("KUMEO_BATCH_SIZE", "64")))
PROCESS.add_argument("--agent-class", default=os.environ.get("KUMEO_AGENT_CLASS"),
                     help="run this RuntimeAgent ('module:Class') instead of the kind's own implementation")


def main(argv: list[str] | None = None) -> int:
    return PROCESS.main(argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
