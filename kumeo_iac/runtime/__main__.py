"""``python -m kumeo_iac.runtime``: run one agent of a Plan until SIGTERM, the entrypoint of every agent image.

::

    python -m kumeo_iac.runtime --plan PLAN.json --agent ID [--workflow NAME] [--nats URL]
                                [--health-port 8080] [--base-dir DIR]

``NATS_URL``, ``KUMEO_AGENT``, ``KUMEO_WORKFLOW``, ``KUMEO_PLAN`` and ``KUMEO_HEALTH_PORT`` provide defaults; in the
cluster a Deployment passes the agent's own part of the Plan in ``KUMEO_PLAN_JSON`` instead of a file. The agent's NATS identity comes from
``NATS_USER``/``NATS_PASSWORD`` (or ``NATS_TOKEN``, ``NATS_CREDS``), ``NATS_INBOX_PREFIX`` and, for TLS,
``NATS_TLS_CA``/``NATS_TLS_CERT``/``NATS_TLS_KEY`` (see docs/security.md). SIGTERM (or SIGINT) stops fetching, lets
in-flight events finish and be acked, drains the connection and exits 0; a worker that cannot start exits 1
with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

from kumeo_iac.errors import KumeoError


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m kumeo_iac.runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=env("KUMEO_PLAN"),
                        help="the Plan as JSON (kumeo render writes it); default: KUMEO_PLAN_JSON, the pod's own part")
    parser.add_argument("--agent", default=env("KUMEO_AGENT"), help="the id of the agent to run")
    parser.add_argument("--workflow", default=env("KUMEO_WORKFLOW"),
                        help="the workflow's name or slug (needed only when the Plan has several)")
    parser.add_argument("--nats", default=env("NATS_URL"), help="NATS URL (default: the Plan's)")
    parser.add_argument("--health-port", type=int, default=int(env("KUMEO_HEALTH_PORT", "8080")),
                        help="port of /healthz, /readyz and /metrics (0: any free port, -1: none)")
    parser.add_argument("--base-dir", default=env("KUMEO_BASE_DIR", "."),
                        help="directory the agent's files (models, rules) are relative to")
    parser.add_argument("--batch-size", type=int, default=int(env("KUMEO_BATCH_SIZE", "64")))
    parser.add_argument("--agent-class", default=env("KUMEO_AGENT_CLASS"),
                        help="run this RuntimeAgent ('module:Class') instead of the kind's own implementation")
    parser.add_argument("--log-level", default=env("KUMEO_LOG_LEVEL", "INFO"))
    return parser


def _load_agent_class(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise KumeoError(f"--agent-class {target!r}: expected 'module:Class'")
    return getattr(importlib.import_module(module_name), class_name)


async def _main(args: argparse.Namespace) -> int:
    from kumeo_iac.jetstream import connect_options_from_env
    from kumeo_iac.runtime._plan_source import read_plan
    from kumeo_iac.runtime._worker import Worker

    if not args.agent:
        raise KumeoError("no agent given: pass --agent ID or set KUMEO_AGENT")
    plan, where = read_plan(args.plan)
    if args.workflow:
        try:
            workflow = plan.workflow(args.workflow)
        except KeyError:
            names = ", ".join(w.name for w in plan.workflows)
            raise KumeoError(f"{where}: no workflow {args.workflow!r} (workflows: {names})") from None
    else:
        candidates = [w for w in plan.workflows if any(a.id == args.agent for a in w.agents)]
        if not candidates and len(plan.workflows) == 1:
            candidates = plan.workflows  # the agent lookup below names the workflow and its agents
        if not candidates:
            names = ", ".join(w.name for w in plan.workflows) or "none"
            raise KumeoError(f"{where}: no workflow has an agent {args.agent!r} (workflows: {names})")
        if len(candidates) > 1:
            names = ", ".join(w.name for w in candidates)
            raise KumeoError(f"{where}: agent {args.agent!r} is in several workflows ({names}); "
                             "pass --workflow")
        workflow = candidates[0]
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

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    await worker.start()
    run = asyncio.create_task(worker.run())
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({run, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    await worker.stop()
    stop_wait.cancel()
    await run  # re-raises if the run loop itself failed
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_main(args))
    except KumeoError as exc:
        print(f"kumeo runtime: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
