"""`kumeo dashboard`: the Kumeo web UI, served locally by uvicorn.

The live workflow graph (per-agent throughput, lag, errors, latency), an agent inspector (recent events in and out,
dead letters and their replay), the human-review queue, and a code and a visual editor for `.kumeo` files that stay
in sync through the Spec. The backend is a Starlette app (:func:`create_app`); the front end is a Svelte app built
from ``ui/`` into ``static/``. Access is by a local token (loopback only) or OIDC bearer tokens with the roles
viewer, reviewer and admin; review decisions, replays and saves are audited in the ``KUMEO_AUDIT`` stream.
"""

from kumeo_iac.dashboard._app import DashboardConfig, create_app
from kumeo_iac.dashboard._audit import AUDIT_STREAM, UI_SUBJECT, AuditLog, ensure_audit_stream
from kumeo_iac.dashboard._auth import (
    AuthError,
    Identity,
    LocalTokenAuth,
    OIDCAuth,
    Role,
    authorize,
    is_loopback,
    parse_role_map,
)

__all__ = [
    "AUDIT_STREAM",
    "UI_SUBJECT",
    "AuditLog",
    "AuthError",
    "DashboardConfig",
    "Identity",
    "LocalTokenAuth",
    "OIDCAuth",
    "Role",
    "authorize",
    "create_app",
    "ensure_audit_stream",
    "is_loopback",
    "parse_role_map",
]
