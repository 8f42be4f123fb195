"""``python -m kumeo_iac.runtime.io``: run one workflow's gateway (HTTP/Timer/File sources, HTTP/File targets).

::

    python -m kumeo_iac.runtime.io --plan PLAN.json [--workflow NAME] [--nats URL] [--health-port 8080]
                                   [--base-dir DIR] [--http-host 0.0.0.0]

The same :class:`~kumeo_iac.runtime.io.Gateway` `kumeo run` starts in-process, as the pod ``<slug>-gateway`` the
compiled Plan deploys. ``NATS_URL``, ``KUMEO_WORKFLOW``, ``KUMEO_PLAN`` (or the pod's own ``KUMEO_PLAN_JSON``),
``KUMEO_HEALTH_PORT`` and ``KUMEO_BASE_DIR`` provide defaults; NATS credentials and TLS come from the same variables
as the agent worker's (``NATS_USER``/``NATS_PASSWORD``, ``NATS_TOKEN``, ``NATS_CREDS``, ``NATS_INBOX_PREFIX``,
``NATS_TLS_*``).
``/healthz`` and ``/readyz`` (ready once every adapter started and while NATS is connected) and ``/metrics`` are
served on the health port. A Kafka or MQTT endpoint is refused at start: one line on stderr, exit 1. SIGTERM (or
SIGINT) stops the sources, lets the targets finish the batch they hold, drains the connection and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from kumeo_iac.runtime._process import RuntimeProcess, pick_workflow

log = logging.getLogger("kumeo.io")

DESCRIPTION = "python -m kumeo_iac.runtime.io: run one workflow's gateway (HTTP/Timer/File sources, HTTP/File targets)."


def _metrics(gateway: Any, connected: bool) -> str:
    wf = gateway.workflow.name.replace("\\", "\\\\").replace('"', '\\"')
    lines = ["# TYPE kumeo_gateway_up gauge", f'kumeo_gateway_up{{workflow="{wf}"}} {int(connected)}',
             "# TYPE kumeo_gateway_events_total counter"]
    for adapter in gateway.adapters:
        count = sum(int(getattr(adapter, attr, 0) or 0)
                    for attr in ("accepted", "fired", "published", "delivered"))
        label = adapter.endpoint.name.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'kumeo_gateway_events_total{{workflow="{wf}",role="{adapter.role}",'
                     f'endpoint="{label}",kind="{adapter.endpoint.kind}"}} {count}')
    return "\n".join(lines) + "\n"


async def _serve(args: argparse.Namespace, stopping: asyncio.Event) -> int:
    from kumeo_iac.jetstream import connect, connect_options_from_env
    from kumeo_iac.runtime._health import HealthServer
    from kumeo_iac.runtime._plan_source import read_plan
    from kumeo_iac.runtime.io._gateway import Gateway

    plan, where = read_plan(args.plan)
    workflow = pick_workflow(plan, where, args.workflow)
    # Refuses Kafka/MQTT endpoints (EndpointRefused, a KumeoError) before anything connects.
    gateway = Gateway(workflow, args.base_dir, http_host=args.http_host)
    url = args.nats or workflow.nats_url
    connect_options = connect_options_from_env(os.environ)

    nc = await connect(url, timeout_s=10.0, name=f"kumeo-gateway-{workflow.slug}", allow_reconnect=True,
                       max_reconnect_attempts=-1, reconnect_time_wait=0.5, **connect_options)
    started = False
    health = None
    if args.health_port >= 0:
        health = HealthServer(lambda: started and nc.is_connected, lambda: _metrics(gateway, nc.is_connected),
                              port=args.health_port)
        await health.start()
        log.info("workflow %s: gateway health on port %d", workflow.name, health.port)

    try:
        await gateway.start(nc)
        started = True
        for adapter in gateway.sources:
            url = getattr(adapter, "url", None)  # only the adapters that listen have one
            if url:
                log.info("workflow %s: %s listening on %s", workflow.name, adapter.label, url)
        await stopping.wait()
        log.info("workflow %s: gateway stopping", workflow.name)
        started = False
    finally:
        await gateway.stop()
        if health is not None:
            await health.stop()
        if not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), 10.0)
            except Exception:  # noqa: BLE001 - closing anyway
                await nc.close()
    return 0


PROCESS = RuntimeProcess("gateway", "python -m kumeo_iac.runtime.io", DESCRIPTION, _serve,
                         base_dir_help="directory File sources and targets are relative to")
PROCESS.add_argument("--http-host", default=os.environ.get("KUMEO_HTTP_HOST", "0.0.0.0"),
                     help="address HTTP sources listen on (default: every interface)")


def main(argv: list[str] | None = None) -> int:
    return PROCESS.main(argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
