"""The dashboard's ASGI application (Starlette): the JSON API under ``/api`` and the single-page front end.

Every ``/api`` route but ``GET /api/auth`` needs a bearer token and a role (see ``_auth.py``):

=============================================================  ========  ==========================================
``GET  /api/auth``                                             public    how to sign in (local token, or OIDC)
``GET  /api/me``                                               viewer    who you are
``GET  /api/files`` · ``GET /api/file?file=``                  viewer    the `.kumeo` files, one file's text
``POST /api/check`` ``{text, file?}``                          viewer    diagnostics, as `kumeo check`
``POST /api/model`` ``{text, file?}``                          viewer    the visual editor's model of the text
``GET  /api/kinds``                                            viewer    agent kinds and their arguments
``GET  /api/workflow?file=``                                   viewer    the compiled graph, or why it does not compile
``GET  /api/stats?file=``                                      viewer    live numbers per agent/source/target, reviews
``GET  /api/agents/{workflow}/{agent}/messages?direction=``    viewer    newest events in / out / dead letters
``GET  /api/reviews?file=&status=``                            viewer    the human-review queue
``POST /api/reviews/{workflow}/{agent}/{id}/{action}``         reviewer  approve / reject / comment (audited)
``POST /api/agents/{workflow}/{agent}/replay`` ``{stream,seq}``  admin   replay a dead letter (audited)
``POST /api/edit`` ``{text, edits}``                           admin     visual-editor edits → new text
``PUT  /api/file`` ``{file, text}``                            admin     save a file (audited)
``GET  /api/audit``                                            admin     the dashboard's audit records
=============================================================  ========  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from kumeo_iac.dashboard._auth import (
    Authenticator,
    AuthError,
    Identity,
    LocalTokenAuth,
    Role,
)
from kumeo_iac.dashboard._live import Live, LiveError, topology
from kumeo_iac.dashboard._workspace import (
    EditError,
    Workspace,
    apply_edits,
    check_text,
    diagnostic_json,
    editor_model,
    kinds_catalog,
)
from kumeo_iac.errors import KumeoError

__all__ = ["DashboardConfig", "create_app"]

log = logging.getLogger("kumeo.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
_MAX_BODY = 2 << 20
#: Seconds of work one ``POST /api/check`` may take. Enforced by construction: the check runs inside
#: ``kumeo_iac.expr.time_budget``, so once it is spent the next expression stops the check (each expression is
#: at most 10,000 characters, a few tens of ms to parse); the wait below is only a backstop for the reply.
CHECK_BUDGET_SECONDS = 5.0


@dataclasses.dataclass
class DashboardConfig:
    """Everything the dashboard app needs; :func:`create_app` builds the app from it."""

    path: str | None
    nats_url: str
    auth: Authenticator
    metrics_urls: Mapping[str, str] = dataclasses.field(default_factory=dict)
    discover_metrics: bool = False
    connect_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    static_dir: Path = STATIC_DIR
    #: Hosts the browser may use in the ``Host`` header (empty: any); the local mode pins loopback names.
    allowed_hosts: tuple[str, ...] = ()
    #: A LocalRunner the dashboard started (``--run``); its workers' metrics are read in-process.
    runner: Any = None


@dataclasses.dataclass(frozen=True)
class Compiled:
    """One file compiled: its Plan, or why there is none (a message, and the diagnostics when it is a check)."""

    plan: Any
    error: str | None = None
    diagnostics: tuple[dict[str, Any], ...] = ()


class _Plans:
    """Compiled Plans per file, recompiled when the file changes on disk."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._cache: dict[Path, tuple[tuple[int, int], Compiled]] = {}

    def get(self, name: str | None) -> Compiled:
        from kumeo_iac import load
        from kumeo_iac.compile import compile_program

        file = self.workspace.resolve(name)
        try:
            stat = file.stat()
        except FileNotFoundError:
            return Compiled(None, f"{self.workspace.display(file)}: no such file")
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(file)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            compiled = Compiled(compile_program(load(file), base_dir=file.parent))
        except KumeoError as exc:
            problems = getattr(exc, "diagnostics", None) or []
            errors = [d for d in problems if d.is_error]
            message = "; ".join(d.format() for d in errors)[:2000] if errors else str(exc)
            # Errors first: they are why there is no graph; the warnings follow, as `kumeo check` prints them.
            ordered = [*errors, *(d for d in problems if not d.is_error)]
            compiled = Compiled(None, message, tuple(diagnostic_json(d) for d in ordered))
        self._cache[file] = (key, compiled)
        return compiled


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


Handler = Callable[[Request, Identity], Awaitable[Response]]


def create_app(config: DashboardConfig) -> Starlette:
    """The dashboard as an ASGI app (serve it with uvicorn; tests drive it with httpx)."""
    workspace = Workspace(config.path)
    plans = _Plans(workspace)
    live = Live(config.nats_url, connect_options=config.connect_options, metrics_urls=config.metrics_urls,
                discover_metrics=config.discover_metrics, runner=config.runner)
    auth = config.auth

    def guarded(role: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                identity = await auth.authenticate(request.headers.get("authorization"),
                                                   request.client.host if request.client else None)
                if not identity.allows(role):
                    raise AuthError(403, f"this needs the {role.label} role; you are a {identity.role.label}")
                return await handler(request, identity)
            except AuthError as exc:
                headers = {"WWW-Authenticate": 'Bearer realm="kumeo"'} if exc.status == 401 else None
                return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
            except LiveError as exc:
                return _error(exc.status, exc.message)
            except (FileNotFoundError, PermissionError) as exc:
                return _error(404 if isinstance(exc, FileNotFoundError) else 403, str(exc))
            except _BadRequest as exc:
                return _error(400, str(exc))
            except TimeoutError as exc:
                return _error(503, f"NATS did not answer in time ({type(exc).__name__}); try again")
            except Exception as exc:
                log.exception("%s %s failed", request.method, request.url.path)
                return _error(500, f"internal error: {type(exc).__name__}: {exc}")
        return endpoint

    # -- helpers -----------------------------------------------------------------------------------------------

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > _MAX_BODY:
            raise _BadRequest("the request body is larger than 2 MiB")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise _BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _BadRequest("the body must be a JSON object")
        return data

    def text_of(data: dict[str, Any]) -> str:
        text = data.get("text")
        if not isinstance(text, str):
            raise _BadRequest("'text' (the .kumeo source) is required")
        return text

    def file_of(name: Any) -> tuple[Path | None, str, Path | None]:
        """(file, the name diagnostics use, base dir for relative files) of an optional file name."""
        if not name:
            try:
                file = workspace.resolve(None)
            except FileNotFoundError:
                return None, "untitled.kumeo", workspace.base
        else:
            file = workspace.resolve(str(name))
        return file, workspace.display(file), file.parent

    def plan_for(request: Request) -> Any:
        compiled = plans.get(request.query_params.get("file"))
        if compiled.plan is None:
            raise LiveError(409, f"the workflow does not compile, so it cannot be shown running: {compiled.error}")
        return compiled.plan

    def workflow_and_agent(plan: Any, workflow: str, agent_id: str) -> tuple[Any, Any]:
        try:
            wf = plan.workflow(workflow)
        except KeyError:
            raise LiveError(404, f"no workflow {workflow!r}") from None
        try:
            return wf, wf.agent(agent_id)
        except KeyError:
            raise LiveError(404, f"workflow {wf.name} has no agent {agent_id!r}") from None

    # -- routes ------------------------------------------------------------------------------------------------

    async def auth_config(request: Request) -> Response:
        data = auth.public_config()
        if data.get("mode") == "oidc" and not data.get("authorization_endpoint"):
            with contextlib.suppress(Exception):
                await auth.discover()  # type: ignore[attr-defined]
                data = auth.public_config()
        return JSONResponse(data)

    async def me(request: Request, identity: Identity) -> Response:
        return JSONResponse({**identity.to_json(), "can": {
            "review": identity.allows(Role.REVIEWER), "replay": identity.allows(Role.ADMIN),
            "edit": identity.allows(Role.ADMIN)}})

    async def files(request: Request, identity: Identity) -> Response:
        return JSONResponse({"root": str(workspace.base), "files": workspace.files(), "nats": config.nats_url,
                             "connected": live.connected})

    async def read_file(request: Request, identity: Identity) -> Response:
        file, name, base = file_of(request.query_params.get("file"))
        text = file.read_text(encoding="utf-8") if file is not None and file.exists() else ""
        diagnostics = await asyncio.to_thread(check_text, text, name, base)
        return JSONResponse({"file": name, "text": text, "diagnostics": [diagnostic_json(d) for d in diagnostics]})

    async def check(request: Request, identity: Identity) -> Response:
        from kumeo_iac.expr import BudgetExceeded, time_budget

        data = await body(request)
        _, name, base = file_of(data.get("file"))
        budget = CHECK_BUDGET_SECONDS

        def budgeted(text: str) -> list[Any]:
            with time_budget(budget):
                return check_text(text, name, base)

        try:
            diagnostics = await asyncio.wait_for(asyncio.to_thread(budgeted, text_of(data)), budget + 1.0)
        except (BudgetExceeded, TimeoutError):
            return _error(422, f"the check took longer than its budget of {budget:g} s and was stopped; the text "
                               "has too many or too long expressions (each is limited to 10,000 characters)")
        return JSONResponse({"diagnostics": [diagnostic_json(d) for d in diagnostics],
                             "errors": sum(1 for d in diagnostics if d.is_error)})

    async def model(request: Request, identity: Identity) -> Response:
        data = await body(request)
        _, name, base = file_of(data.get("file"))
        return JSONResponse(await asyncio.to_thread(editor_model, text_of(data), name, base))

    async def edit(request: Request, identity: Identity) -> Response:
        data = await body(request)
        _, name, base = file_of(data.get("file"))
        edits = data.get("edits")
        if not isinstance(edits, list):
            raise _BadRequest("'edits' must be a list of {op, …}")
        try:
            new_text = await asyncio.to_thread(apply_edits, text_of(data), name, edits)
        except EditError as exc:
            return _error(422, str(exc))
        result = await asyncio.to_thread(editor_model, new_text, name, base)
        return JSONResponse({"text": new_text, **result})

    async def save(request: Request, identity: Identity) -> Response:
        data = await body(request)
        text = text_of(data)
        file, name, base = file_of(data.get("file"))
        if file is None:
            raise _BadRequest("no file to save to")
        diagnostics = await asyncio.to_thread(check_text, text, name, base)
        errors = [d for d in diagnostics if d.is_error]
        if errors and not data.get("force"):
            return _error(422, f"not saved: {len(errors)} error(s); fix them, or save with force",
                          diagnostics=[diagnostic_json(d) for d in diagnostics])
        await asyncio.to_thread(workspace.save, name, text)
        audit = None
        if live.connected and live.audit is not None:
            with contextlib.suppress(Exception):
                record = await live.audit.record("file.save", identity.to_json(), file=name, bytes=len(text.encode()),
                                                 errors=len(errors))
                audit = {"seq": record["seq"], "id": record["id"]}
        return JSONResponse({"saved": name, "audit": audit,
                             "diagnostics": [diagnostic_json(d) for d in diagnostics]})

    async def kinds(request: Request, identity: Identity) -> Response:
        return JSONResponse({"kinds": kinds_catalog()})

    async def workflow(request: Request, identity: Identity) -> Response:
        compiled = plans.get(request.query_params.get("file"))
        if compiled.plan is None:
            return JSONResponse({"workflows": [], "error": compiled.error, "diagnostics": list(compiled.diagnostics)})
        return JSONResponse({"workflows": [topology(wf) for wf in compiled.plan.workflows], "error": None,
                             "diagnostics": []})

    async def stats(request: Request, identity: Identity) -> Response:
        return JSONResponse(await live.stats(plan_for(request)))

    async def messages(request: Request, identity: Identity) -> Response:
        plan = plan_for(request)
        wf, agent = workflow_and_agent(plan, request.path_params["workflow"], request.path_params["agent"])
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise _BadRequest("limit must be a number") from None
        direction = request.query_params.get("direction", "in")
        return JSONResponse({"workflow": wf.name, "agent": agent.id, "direction": direction,
                             "messages": await live.messages(wf, agent, direction, limit)})

    async def replay(request: Request, identity: Identity) -> Response:
        plan = plan_for(request)
        wf, agent = workflow_and_agent(plan, request.path_params["workflow"], request.path_params["agent"])
        data = await body(request)
        try:
            stream, seq = str(data["stream"]), int(data["seq"])
        except (KeyError, TypeError, ValueError):
            raise _BadRequest("give the dead letter as {stream, seq}") from None
        return JSONResponse(await live.replay(wf, agent, stream, seq, identity))

    async def reviews(request: Request, identity: Identity) -> Response:
        plan = plan_for(request)
        status = request.query_params.get("status", "open")
        out = []
        for wf in plan.workflows:
            if any(a.review_bucket for a in wf.agents):
                for review in await live.reviews(wf, status):
                    out.append({**review, "workflow": wf.name})
        return JSONResponse({"reviews": out})

    async def decide(request: Request, identity: Identity) -> Response:
        plan = plan_for(request)
        wf, agent = workflow_and_agent(plan, request.path_params["workflow"], request.path_params["agent"])
        data = await body(request)
        revision = data.get("revision")
        fields = data.get("fields")
        if fields is not None and not isinstance(fields, dict):
            raise _BadRequest("'fields' must be an object {field: value}")
        result = await live.decide(wf, agent, request.path_params["review"], request.path_params["action"],
                                   identity, comment=data.get("comment") or None, fields=fields,
                                   revision=int(revision) if revision is not None else None)
        return JSONResponse(result)

    async def audit(request: Request, identity: Identity) -> Response:
        if not live.connected or live.audit is None:
            raise LiveError(503, f"not connected to NATS at {config.nats_url}")
        return JSONResponse({"records": await live.audit.recent(int(request.query_params.get("limit", "50")))})

    async def index(request: Request) -> Response:
        page = config.static_dir / "index.html"
        if page.exists():
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(_UNBUILT, status_code=200)

    routes: list[BaseRoute] = [
        Route("/api/auth", auth_config, methods=["GET"]),
        Route("/api/me", guarded(Role.VIEWER, me), methods=["GET"]),
        Route("/api/files", guarded(Role.VIEWER, files), methods=["GET"]),
        Route("/api/file", guarded(Role.VIEWER, read_file), methods=["GET"]),
        Route("/api/file", guarded(Role.ADMIN, save), methods=["PUT"]),
        Route("/api/check", guarded(Role.VIEWER, check), methods=["POST"]),
        Route("/api/model", guarded(Role.VIEWER, model), methods=["POST"]),
        Route("/api/edit", guarded(Role.ADMIN, edit), methods=["POST"]),
        Route("/api/kinds", guarded(Role.VIEWER, kinds), methods=["GET"]),
        Route("/api/workflow", guarded(Role.VIEWER, workflow), methods=["GET"]),
        Route("/api/stats", guarded(Role.VIEWER, stats), methods=["GET"]),
        Route("/api/agents/{workflow}/{agent}/messages", guarded(Role.VIEWER, messages), methods=["GET"]),
        Route("/api/agents/{workflow}/{agent}/replay", guarded(Role.ADMIN, replay), methods=["POST"]),
        Route("/api/reviews", guarded(Role.VIEWER, reviews), methods=["GET"]),
        Route("/api/reviews/{workflow}/{agent}/{review}/{action}", guarded(Role.REVIEWER, decide),
              methods=["POST"]),
        Route("/api/audit", guarded(Role.ADMIN, audit), methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]
    if (config.static_dir / "assets").is_dir():
        routes.append(Mount("/assets", app=StaticFiles(directory=config.static_dir / "assets"), name="assets"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await live.start()
        try:
            yield
        finally:
            await live.stop()

    oidc_origins = _origins(auth)

    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = (request.headers.get("host") or "").lower()
        allowed = tuple(h.lower() for h in config.allowed_hosts)
        if allowed and host not in allowed:
            # DNS rebinding: a page on another site resolving its name to 127.0.0.1 must not reach the API.
            return _error(421, f"this dashboard answers to {', '.join(allowed)} only")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"connect-src 'self'{oidc_origins}; frame-ancestors 'none'; base-uri 'none'")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BaseHTTPMiddleware, dispatch=headers)])
    app.state.live = live
    app.state.workspace = workspace
    app.state.config = config
    return app


class _BadRequest(Exception):
    pass


def _origins(auth: Authenticator) -> str:
    if isinstance(auth, LocalTokenAuth):
        return ""
    from urllib.parse import urlsplit

    issuer = getattr(auth, "issuer", "") or ""
    parts = urlsplit(issuer)
    return f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


_UNBUILT = """<!doctype html><meta charset="utf-8"><title>Kumeo dashboard</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Kumeo dashboard</h1><p>The API is running, but the web front end has not been built into
<code>kumeo_iac/dashboard/static/</code>. Build it with <code>make ui</code>
(<code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>).</p></body>"""
