"""``kumeo dashboard [PATH]``: the web UI, served by uvicorn on this machine.

With ``--auth local`` (the default) the server listens on loopback only and prints a URL carrying a fresh random
token (``KUMEO_DASHBOARD_TOKEN`` sets it instead); whoever holds it is an admin. ``--auth oidc`` verifies bearer
tokens from an OpenID Connect provider and may listen on any address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

__all__ = ["run_dashboard"]


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _authenticator(args: argparse.Namespace) -> Any:
    from kumeo_iac.dashboard import LocalTokenAuth, OIDCAuth, Role, parse_role_map

    if args.auth == "local":
        return LocalTokenAuth(token=os.environ.get("KUMEO_DASHBOARD_TOKEN") or None)
    missing = [flag for flag, value in (("--oidc-issuer", args.oidc_issuer), ("--oidc-audience", args.oidc_audience))
               if not value]
    if missing:
        raise SystemExit(f"kumeo dashboard: error: --auth oidc needs {' and '.join(missing)}")
    try:
        role_map = parse_role_map(args.oidc_role)
    except ValueError as exc:
        raise SystemExit(f"kumeo dashboard: error: {exc}") from None
    default = Role[args.oidc_default_role.upper()] if args.oidc_default_role else None
    return OIDCAuth(args.oidc_issuer, args.oidc_audience, jwks_url=args.oidc_jwks_url,
                    client_id=args.oidc_client_id, roles_claim=args.oidc_roles_claim, role_map=role_map,
                    default_role=default)


def _metrics_urls(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        agent, sep, url = item.partition("=")
        if not sep or not agent or not url.startswith(("http://", "https://")):
            raise SystemExit(f"kumeo dashboard: error: --metrics {item!r}: write AGENT=http://host:port/metrics")
        out[agent] = url
    return out


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until Ctrl-C or SIGTERM."""
    from kumeo_iac.dashboard import LocalTokenAuth, is_loopback

    try:
        auth = _authenticator(args)
        metrics = _metrics_urls(args.metrics)
    except SystemExit as exc:
        _err(str(exc))
        return 2
    host = args.host
    if isinstance(auth, LocalTokenAuth) and not is_loopback(host):
        _err(f"kumeo dashboard: error: --host {host}: the local token mode serves this machine only; use "
             "--auth oidc to serve others")
        return 2
    if args.path and not os.path.exists(args.path):
        _err(f"kumeo dashboard: error: {args.path}: no such file or directory")
        return 1
    if args.path and args.path.endswith(".py"):
        # The editors print the Spec back as .kumeo text; they cannot rewrite a Python module.
        _err(f"kumeo dashboard: error: {args.path}: the dashboard edits .kumeo files only; check a Python workflow "
             f"with `kumeo check {args.path}` and draw it with `kumeo graph {args.path}`")
        return 2
    return asyncio.run(_serve(args, auth, metrics))


async def _serve(args: argparse.Namespace, auth: Any, metrics: dict[str, str]) -> int:
    import uvicorn

    from kumeo_iac.dashboard import DashboardConfig, LocalTokenAuth, create_app

    local = isinstance(auth, LocalTokenAuth)
    config = DashboardConfig(path=args.path, nats_url=args.nats, auth=auth, metrics_urls=metrics,
                             discover_metrics=args.metrics_discover)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           lifespan="on", access_log=False, server_header=False))
    # uvicorn (0.29+) captures SIGINT/SIGTERM while it serves; the handlers installed below, once it has started,
    # take over from its own, for a clean stop.
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if task.done():
        with contextlib.suppress(BaseException):
            task.result()
        _err(f"kumeo dashboard: error: cannot listen on {args.host}:{args.port} (in use?)")
        return 1
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = "127.0.0.1" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    if local:
        config.allowed_hosts = (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}")
        _err(f"kumeo dashboard: open http://{shown}:{port}/#token={auth.token}")
        _err("kumeo dashboard: the token in this URL gives full access; anyone on this machine who has it can act")
    else:
        _err(f"kumeo dashboard: serving http://{shown}:{port}/ (sign in with {auth.issuer})")
    _err(f"kumeo dashboard: NATS {args.nats}; Ctrl-C stops")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 10.0)
    waiter.cancel()
    return 0
