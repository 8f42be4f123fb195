"""What every runtime process shares: its command line, its Plan and workflow, its NATS options, and how it runs.

``python -m kumeo_iac.runtime`` (one agent) and ``python -m kumeo_iac.runtime.io`` (one workflow's gateway) are the
two entrypoints of the images; both are a :class:`RuntimeProcess`: the same options and environment defaults, the
same Plan lookup, the same logging, and the same lifecycle: start, serve until SIGTERM or SIGINT, stop, exit 0; a
process that cannot start exits 1 with one line on stderr saying why, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoError

if TYPE_CHECKING:
    from kumeo_iac.compile import Plan, WorkflowPlan

__all__ = ["RuntimeProcess", "pick_workflow", "wait_for_stop_signal"]

#: What a process does once its arguments are parsed: runs until ``stopping`` is set, returns the exit status.
Body = Callable[[argparse.Namespace, asyncio.Event], Awaitable[int]]


class RuntimeProcess:
    """One runtime entrypoint: ``name`` prefixes its errors (``kumeo NAME: error: …``), ``body`` does its work."""

    def __init__(self, name: str, prog: str, description: str, body: Body, *, base_dir_help: str) -> None:
        self.name = name
        self.body = body
        self.parser = argparse.ArgumentParser(prog=prog, description=description)
        env = os.environ.get
        add = self.parser.add_argument
        add("--plan", default=env("KUMEO_PLAN"),
            help="the Plan as JSON (kumeo render writes it); default: KUMEO_PLAN_JSON, the pod's own part")
        add("--workflow", default=env("KUMEO_WORKFLOW"),
            help="the workflow's name or slug (needed only when the Plan has several)")
        add("--nats", default=env("NATS_URL"), help="NATS URL (default: the Plan's)")
        add("--health-port", type=int, default=int(env("KUMEO_HEALTH_PORT", "8080")),
            help="port of /healthz, /readyz and /metrics (0: any free port, -1: none)")
        add("--base-dir", default=env("KUMEO_BASE_DIR", "."), help=base_dir_help)
        add("--log-level", default=env("KUMEO_LOG_LEVEL", "INFO"))

    def add_argument(self, *flags: str, **options: Any) -> None:
        """An option of this process only (its environment default passed as ``default``)."""
        self.parser.add_argument(*flags, **options)

    def main(self, argv: list[str] | None = None) -> int:
        """Parse ``argv``, set up logging on stderr, run the body until a stop signal; the exit status."""
        args = self.parser.parse_args(argv)
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            return asyncio.run(self._run(args))
        except KumeoError as exc:
            print(f"kumeo {self.name}: error: {exc}", file=sys.stderr)
            return 1

    async def _run(self, args: argparse.Namespace) -> int:
        return await self.body(args, wait_for_stop_signal())


def wait_for_stop_signal() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (Kubernetes stopping the pod, Ctrl-C), in the running event loop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


def pick_workflow(plan: Plan, where: str, name: str | None, *, agent: str | None = None) -> WorkflowPlan:
    """The workflow a process serves: the one ``name``d, else the one holding ``agent``, else the Plan's only one.

    ``where`` says where the Plan came from, for the errors (no such workflow, several candidates).
    """
    workflows = list(plan.workflows)
    if name:
        try:
            return plan.workflow(name)
        except KeyError:
            raise KumeoError(f"{where}: no workflow {name!r} (workflows: {_names(workflows)})") from None
    if agent is not None:
        candidates = [w for w in workflows if any(a.id == agent for a in w.agents)]
        if not candidates and len(workflows) == 1:
            return workflows[0]  # the agent lookup that follows names the workflow and its agents
        if not candidates:
            raise KumeoError(f"{where}: no workflow has an agent {agent!r} (workflows: {_names(workflows)})")
        if len(candidates) > 1:
            raise KumeoError(f"{where}: agent {agent!r} is in several workflows ({_names(candidates)}); "
                             "pass --workflow")
        return candidates[0]
    if len(workflows) != 1:
        raise KumeoError(f"{where}: the Plan has {len(workflows)} workflows ({_names(workflows)}); pass --workflow")
    return workflows[0]


def _names(workflows: list[WorkflowPlan]) -> str:
    return ", ".join(w.name for w in workflows) or "none"
