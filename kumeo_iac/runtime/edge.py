"""``python -m kumeo_iac.runtime.edge``: every agent of one workflow in one process, the edge pod's entrypoint.

::

    python -m kumeo_iac.runtime.edge [--plan PLAN.json] [--workflow NAME] [--nats URL] [--health-port 8080]
                                     [--base-dir DIR] [--connect-timeout 120]

The edge profile (``deployment: { profile: "edge" }``, see ``kumeo_iac.compile._edge``) runs a workflow in one pod
beside its own nats-server, a leaf node of the central NATS. This process is `kumeo run`'s runner
(:class:`kumeo_iac.local.LocalRunner`) on that server: it creates the workflow's streams, consumers and KV buckets
there (again after a reconnection, so a leaf that lost its store gets them back), then runs every agent with the
same workers as a pod per agent would, until SIGTERM. It serves ``/healthz``, ``/readyz`` (every agent bound) and
``/metrics`` (every agent's series) on the health port.

It waits for its nats-server up to ``--connect-timeout`` seconds (both containers of the pod start together); a
process that cannot start exits 1 with one line on stderr, and an agent that fails stops the process (exit 1), so
Kubernetes restarts the container.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from pathlib import Path

from kumeo_iac.errors import KumeoError
from kumeo_iac.runtime._health import HealthServer
from kumeo_iac.runtime._process import RuntimeProcess, pick_workflow

__all__ = ["main", "merged_metrics"]

DESCRIPTION = "python -m kumeo_iac.runtime.edge: run every agent of a workflow in one process (the edge profile)."
log = logging.getLogger("kumeo.edge")


def merged_metrics(texts: list[str]) -> str:
    """Several workers' Prometheus texts as one: each metric family once (its HELP and TYPE lines first), with
    every worker's samples of it (they differ by their ``agent`` label)."""
    families: dict[str, list[str]] = {}
    headers: dict[str, list[str]] = {}
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith(("# HELP ", "# TYPE ")):
                family = line.split(" ", 3)[2]
                seen = headers.setdefault(family, [])
                families.setdefault(family, [])
                if line not in seen:
                    seen.append(line)
            elif line.strip():
                families.setdefault(family, []).append(line)
    out = [line for family, samples in families.items() for line in (*headers.get(family, []), *samples)]
    return "\n".join(out) + "\n" if out else ""


async def _connected(url: str, timeout: float) -> None:
    """Return once the server at ``url`` answers, or raise after ``timeout`` seconds."""
    from kumeo_iac.jetstream import connect

    deadline = time.monotonic() + timeout
    while True:
        try:
            nc = await connect(url, timeout_s=max(0.5, min(2.0, deadline - time.monotonic())),
                               name="kumeo-edge-probe")
            await nc.close()
            return
        except (KumeoError, OSError) as exc:
            if time.monotonic() > deadline:
                raise KumeoError(f"the site's nats-server at {url} did not answer within {timeout:g} s: {exc}") \
                    from None
            await asyncio.sleep(0.5)


async def _serve(args: argparse.Namespace, stopping: asyncio.Event) -> int:
    from kumeo_iac.compile import Plan
    from kumeo_iac.local import LocalRunner
    from kumeo_iac.runtime._plan_source import read_plan

    plan, where = read_plan(args.plan)
    workflow = pick_workflow(plan, where, args.workflow)
    url = args.nats or workflow.nats_url
    await _connected(url, args.connect_timeout)
    runner = LocalRunner(Plan([workflow]), base_dir=Path(args.base_dir), nats_url=url, processes=False,
                         log_level=args.log_level, on_note=log.warning)
    started = False
    health: HealthServer | None = None

    def ready() -> bool:
        return started and all(w.is_ready() for w in runner.workers)

    def metrics() -> str:
        return merged_metrics([w.metrics.render() for w in runner.workers])

    try:
        if args.health_port >= 0:
            health = HealthServer(ready, metrics, port=args.health_port)
            await health.start()
        await runner.start()
        started = True
        log.info("workflow %s: %d agents in one process on %s", workflow.name, len(runner.workers), url)
        failed = asyncio.ensure_future(runner.wait_failure())
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({failed, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if failed.done():
            failed.result()  # raises the agent's failure: exit 1, and Kubernetes restarts the container
        failed.cancel()
        return 0
    finally:
        await runner.stop()
        if health is not None:
            await health.stop()


def _seconds(text: str) -> float:
    return float(text)


PROCESS = RuntimeProcess("edge", "python -m kumeo_iac.runtime.edge", DESCRIPTION, _serve,
                         base_dir_help="directory the agents' files (models, rules) are relative to")
PROCESS.add_argument("--connect-timeout", type=_seconds, default=float(os.environ.get("KUMEO_CONNECT_TIMEOUT", "120")),
                     help="seconds to wait for the site's nats-server at start")


def main(argv: list[str] | None = None) -> int:
    return PROCESS.main(argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
