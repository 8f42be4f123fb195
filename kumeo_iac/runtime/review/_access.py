"""Who may use the HumanReview worker's review API, and where it listens: the dashboard's verifier, from the
environment.

The worker checks callers exactly as the dashboard does (``kumeo_iac.dashboard._auth``: the same
:class:`~kumeo_iac.dashboard.OIDCAuth` and :class:`~kumeo_iac.dashboard.LocalTokenAuth`, the same roles and the same
``authorize`` check). Reading needs **viewer**; comment, approve and reject need **reviewer**; the reviewer recorded
is the authenticated identity. Configuration, read once when the agent starts:

=============================  =====================================================================================
``KUMEO_REVIEW_HOST``          the address the review API listens on; default ``127.0.0.1`` (this machine / pod)
``KUMEO_REVIEW_PORT``          its port; default ``0`` (any free port, logged); ``-1``: do not serve it
``KUMEO_REVIEW_AUTH``          ``oidc`` or ``local``; default: ``oidc`` if ``KUMEO_OIDC_ISSUER`` is set, else
                               ``local`` if a token is set, else none (every state-changing request is refused)
``KUMEO_REVIEW_TOKEN``         the local token (else ``KUMEO_DASHBOARD_TOKEN``); accepted from loopback clients only
``KUMEO_OIDC_ISSUER``          as ``kumeo dashboard --oidc-issuer``
``KUMEO_OIDC_AUDIENCE``        as ``--oidc-audience``
``KUMEO_OIDC_JWKS_URL``        as ``--oidc-jwks-url`` (default: from the issuer's discovery document)
``KUMEO_OIDC_ROLES_CLAIM``     as ``--oidc-roles-claim`` (default ``roles``)
``KUMEO_OIDC_ROLES``           as ``--oidc-role``, comma-separated: ``kumeo-admins=admin,claims-team=reviewer``
``KUMEO_OIDC_DEFAULT_ROLE``    as ``--oidc-default-role``
=============================  =====================================================================================

Without a verifier, reads are answered to loopback clients only and every state-changing request is 403: there is
no anonymous approval. The verifier lives in the ``ui`` extra (PyJWT for OIDC): a worker image without it refuses the
same way, with a message that says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from kumeo_iac.runtime._health import PEER

__all__ = ["AccessDenied", "ReviewAccess", "listen_address"]

log = logging.getLogger("kumeo.runtime.review")

DEFAULT_HOST = "127.0.0.1"


class AccessDenied(Exception):
    """A request the review API refuses: ``status`` is 401 (who are you?), 403 (not allowed) or 503."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def listen_address(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """``(host, port)`` from ``KUMEO_REVIEW_HOST``/``KUMEO_REVIEW_PORT``; None when the port is negative."""
    env = os.environ if environ is None else environ
    host = (env.get("KUMEO_REVIEW_HOST") or "").strip() or DEFAULT_HOST
    raw = (env.get("KUMEO_REVIEW_PORT") or "").strip() or "0"
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"KUMEO_REVIEW_PORT={raw!r} is not a port number") from None
    if port > 65535:
        raise ValueError(f"KUMEO_REVIEW_PORT={raw!r} is not a port number")
    return None if port < 0 else (host, port)


@dataclasses.dataclass(frozen=True)
class ReviewAccess:
    """The verifier of the review API (``auth``), or why there is none (``problem``, shown in every refusal)."""

    auth: Any = None
    problem: str = ("the review API has no authentication configured (set KUMEO_OIDC_ISSUER and "
                    "KUMEO_OIDC_AUDIENCE, or KUMEO_REVIEW_TOKEN); reviews are decided in the dashboard")

    @property
    def mode(self) -> str:
        return str(getattr(self.auth, "mode", "none"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReviewAccess:
        """The verifier the environment configures; a mistake is kept as ``problem`` (the worker still runs)."""
        env = os.environ if environ is None else environ
        mode = (env.get("KUMEO_REVIEW_AUTH") or "").strip().lower()
        token = env.get("KUMEO_REVIEW_TOKEN") or env.get("KUMEO_DASHBOARD_TOKEN") or ""
        if not mode:
            mode = "oidc" if env.get("KUMEO_OIDC_ISSUER") else "local" if token else "none"
        if mode == "none":
            return cls()
        if mode not in ("oidc", "local"):
            return cls(problem=f"KUMEO_REVIEW_AUTH={mode!r}: use oidc or local")
        try:
            from kumeo_iac.dashboard import LocalTokenAuth, OIDCAuth, Role, parse_role_map
        except ImportError as exc:
            return cls(problem=f"the review API's authentication needs the dashboard's verifier, which is not "
                               f"installed here ({exc.name} is missing): pip install 'kumeo-iac[ui]'")
        if mode == "local":
            if not token:
                return cls(problem="KUMEO_REVIEW_AUTH=local needs KUMEO_REVIEW_TOKEN (or KUMEO_DASHBOARD_TOKEN)")
            return cls(auth=LocalTokenAuth(token=token))
        issuer, audience = env.get("KUMEO_OIDC_ISSUER"), env.get("KUMEO_OIDC_AUDIENCE")
        missing = [n for n, v in (("KUMEO_OIDC_ISSUER", issuer), ("KUMEO_OIDC_AUDIENCE", audience)) if not v]
        if missing:
            return cls(problem=f"OIDC authentication needs {' and '.join(missing)}")
        try:
            import jwt  # noqa: F401 - OIDCAuth imports it per request; fail here, once, with a clear message
        except ImportError:
            return cls(problem="OIDC authentication needs PyJWT[crypto]: pip install 'kumeo-iac[ui]'")
        default = (env.get("KUMEO_OIDC_DEFAULT_ROLE") or "").strip().lower()
        try:
            role_map = parse_role_map([p for p in (env.get("KUMEO_OIDC_ROLES") or "").split(",") if p.strip()])
            if default and default not in {r.label for r in Role}:
                raise ValueError(f"KUMEO_OIDC_DEFAULT_ROLE={default!r}: use viewer, reviewer or admin")
        except ValueError as exc:
            return cls(problem=str(exc))
        return cls(auth=OIDCAuth(
            str(issuer), str(audience), jwks_url=env.get("KUMEO_OIDC_JWKS_URL") or None,
            roles_claim=env.get("KUMEO_OIDC_ROLES_CLAIM") or "roles", role_map=role_map,
            default_role=Role[default.upper()] if default else None))

    async def check(self, headers: Mapping[str, str], role: str) -> Any:
        """The caller's :class:`~kumeo_iac.dashboard.Identity` if they hold ``role`` (``viewer``/``reviewer``).

        Without a verifier the answer is None for a read from a loopback client, and AccessDenied otherwise.
        """
        peer = headers.get(PEER) or None
        if self.auth is None:
            if role == "viewer" and _loopback(peer):
                return None
            raise AccessDenied(403, f"refused: {self.problem}")
        from kumeo_iac.dashboard import AuthError, Role, authorize

        try:
            return await authorize(self.auth, headers.get("authorization"), peer, Role[role.upper()])
        except AuthError as exc:
            raise AccessDenied(exc.status, exc.message) from None


def _loopback(host: str | None) -> bool:
    import ipaddress

    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"
