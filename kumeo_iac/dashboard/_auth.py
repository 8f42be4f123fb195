"""Who is calling the dashboard API and what they may do: a local token for `kumeo run`, or OIDC bearer tokens.

Roles are ordered: a **viewer** reads (graph, stats, events, reviews, files); a **reviewer** also approves and
rejects reviews; an **admin** also replays dead letters and saves files. Every API request carries
``Authorization: Bearer <token>``; the static front end is public (it holds no data).

- :class:`LocalTokenAuth` — one random token, printed when the dashboard starts, accepted only from loopback
  clients; its holder is an admin (it is the person who ran the command).
- :class:`OIDCAuth` — JWT access tokens from any OpenID Connect provider, verified against the provider's JWKS
  (found through its discovery document, or a configured JWKS URL): signature, ``iss``, ``aud``, ``exp``/``nbf``.
  Roles come from a configurable claim (``roles``, ``groups``, or a dotted path such as ``realm_access.roles``);
  claim values map to roles by name (``viewer``/``reviewer``/``admin``) or through ``role_map``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import getpass
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["AuthError", "Authenticator", "Identity", "LocalTokenAuth", "OIDCAuth", "Role", "authorize", "is_loopback",
           "parse_role_map"]

log = logging.getLogger("kumeo.dashboard")

#: Signature algorithms accepted from an OIDC provider (never ``none`` or HMAC: the key is public).
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Role(enum.IntEnum):
    """What a user may do; each role includes the ones below it."""

    VIEWER = 1
    REVIEWER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class AuthError(Exception):
    """A request that is not authenticated (401) or not allowed (403); ``message`` is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Identity:
    """The caller: who they are (``subject``, from the token) and their highest role."""

    subject: str
    role: Role
    name: str | None = None
    email: str | None = None
    issuer: str | None = None
    groups: tuple[str, ...] = ()

    def allows(self, role: Role) -> bool:
        return self.role >= role

    def to_json(self) -> dict[str, Any]:
        """What the audit records and ``GET /api/me`` say about the caller."""
        out: dict[str, Any] = {"subject": self.subject, "role": self.role.label}
        for key in ("name", "email", "issuer"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.groups:
            out["groups"] = list(self.groups)
        return out

    @property
    def display(self) -> str:
        return self.email or self.name or self.subject


class Authenticator(Protocol):
    mode: str

    async def authenticate(self, authorization: str | None, client_host: str | None) -> Identity: ...

    def public_config(self) -> dict[str, Any]: ...


async def authorize(auth: Authenticator, authorization: str | None, client_host: str | None,
                    role: Role) -> Identity:
    """The caller of a request that needs ``role``: authenticated by ``auth``, else AuthError(401 or 403).

    The one check every Kumeo API runs (the dashboard's routes, the HumanReview worker's review API), so a token
    means the same everywhere.
    """
    identity = await auth.authenticate(authorization, client_host)
    if not identity.allows(role):
        raise AuthError(403, f"this needs the {role.label} role; you are a {identity.role.label}")
    return identity


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(401, "sign in first: this API needs an 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "the Authorization header must be 'Bearer <token>'")
    return token.strip()


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (``127.0.0.1``, ``::1``) or ``localhost``."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LocalTokenAuth:
    """One random token for one local session; loopback clients only; its holder is an admin."""

    mode = "local"

    def __init__(self, token: str | None = None, user: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        try:
            self.user = user or getpass.getuser()
        except Exception:  # noqa: BLE001 - no login name (containers): still a usable label
            self.user = user or "local"

    async def authenticate(self, authorization: str | None, client_host: str | None) -> Identity:
        if not is_loopback(client_host):
            raise AuthError(403, "the local token is accepted from this machine only; use --auth oidc to serve "
                                 "other machines")
        token = _bearer(authorization)
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            raise AuthError(401, "wrong token: use the one `kumeo dashboard` printed when it started")
        return Identity(subject=f"local:{self.user}", role=Role.ADMIN, name=self.user)

    def public_config(self) -> dict[str, Any]:
        return {"mode": self.mode}


def parse_role_map(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, Role]:
    """``["kumeo-admins=admin", "ops=reviewer"]`` → claim value → Role; the role names map to themselves."""
    out: dict[str, Role] = {r.label: r for r in Role}
    pairs = items.items() if isinstance(items, Mapping) else (i.partition("=")[::2] for i in (items or ()))
    for value, role in pairs:
        value, role = str(value).strip(), str(role).strip().lower()
        if not value or role not in {r.label for r in Role}:
            raise ValueError(f"role mapping {value}={role}: write CLAIM_VALUE=viewer|reviewer|admin")
        out[value] = Role[role.upper()]
    return out


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    if path in claims:  # a claim whose name contains dots (namespaced claims: "https://example.com/roles")
        return claims[path]
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class OIDCAuth:
    """Bearer JWTs from an OpenID Connect provider, verified against its JWKS; roles from a claim."""

    mode = "oidc"

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        client_id: str | None = None,
        roles_claim: str = "roles",
        role_map: Mapping[str, Role] | None = None,
        default_role: Role | None = None,
        algorithms: Sequence[str] = ASYMMETRIC_ALGORITHMS,
        leeway_seconds: float = 30.0,
        scopes: str = "openid profile email",
        http_timeout: float = 5.0,
        jwks_ttl_seconds: float = 600.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.client_id = client_id or audience
        self.roles_claim = roles_claim
        self.role_map = dict(role_map) if role_map is not None else parse_role_map(None)
        self.default_role = default_role
        self.algorithms = [a for a in algorithms if a in ASYMMETRIC_ALGORITHMS]
        self.leeway = leeway_seconds
        self.scopes = scopes
        self.http_timeout = http_timeout
        self.jwks_ttl = jwks_ttl_seconds
        self.discovery: dict[str, Any] = {}
        self._keys: dict[str, Any] = {}
        self._keys_at = 0.0
        self._last_refresh_try = 0.0
        self._lock = asyncio.Lock()

    # -- keys ------------------------------------------------------------------------------------------------

    async def _get_json(self, url: str) -> Any:
        import httpx

        async with httpx.AsyncClient(timeout=self.http_timeout, follow_redirects=True) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()

    async def discover(self) -> dict[str, Any]:
        """The provider's discovery document (``/.well-known/openid-configuration``), fetched once."""
        if not self.discovery:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            if not isinstance(document, dict):
                raise AuthError(503, f"the OIDC discovery document at {url} is not a JSON object")
            if document.get("issuer") and document["issuer"].rstrip("/") != self.issuer.rstrip("/"):
                raise AuthError(503, f"the OIDC discovery document names issuer {document['issuer']!r}, "
                                     f"not {self.issuer!r}")
            self.discovery = document
        return self.discovery

    async def _refresh_keys(self) -> None:
        import jwt

        url = self.jwks_url
        if not url:
            url = (await self.discover()).get("jwks_uri")
            if not url:
                raise AuthError(503, "the OIDC discovery document has no jwks_uri; pass --oidc-jwks-url")
        document = await self._get_json(url)
        keys: dict[str, Any] = {}
        for jwk in (document or {}).get("keys", []):
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(jwk)
            except Exception as exc:  # noqa: BLE001 - one unusable key (unknown kty) must not hide the others
                log.debug("skipping JWK %s: %r", jwk.get("kid"), exc)
                continue
            keys[jwk.get("kid") or ""] = key
        self._keys = keys
        self._keys_at = time.monotonic()

    async def _key_for(self, kid: str | None) -> Any:
        async with self._lock:
            stale = time.monotonic() - self._keys_at > self.jwks_ttl
            # A kid we do not know may be a key the provider rotated in: refetch, but at most every 30 s.
            unknown = (kid or "") not in self._keys and time.monotonic() - self._last_refresh_try > 30.0
            if not self._keys or stale or unknown:
                self._last_refresh_try = time.monotonic()
                try:
                    await self._refresh_keys()
                except AuthError:
                    raise
                except Exception as exc:  # noqa: BLE001 - provider unreachable
                    if not self._keys:
                        raise AuthError(503, f"cannot fetch the OIDC signing keys: {type(exc).__name__}") from None
                    log.warning("OIDC key refresh failed, keeping the cached keys: %r", exc)
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid or "")
        if key is None:
            raise AuthError(401, "the token is signed by a key the provider does not publish")
        return key

    # -- tokens ----------------------------------------------------------------------------------------------

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; AuthError(401) naming what is wrong otherwise."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(401, "the token is not a JWT") from None
        if header.get("alg") not in self.algorithms:
            raise AuthError(401, f"tokens signed with {header.get('alg')!r} are not accepted")
        key = await self._key_for(header.get("kid"))
        try:
            return jwt.decode(token, key=key.key, algorithms=self.algorithms, audience=self.audience,
                              issuer=self.issuer, leeway=self.leeway,
                              options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "the token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, "the token is not meant for this dashboard (wrong audience)") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "the token comes from another issuer") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(401, "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(401, f"the token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid token: {exc}") from None

    def role_of(self, claims: Mapping[str, Any]) -> tuple[Role | None, tuple[str, ...]]:
        value = _claim(claims, self.roles_claim)
        if isinstance(value, str):
            values = tuple(v for v in value.replace(",", " ").split() if v)
        elif isinstance(value, (list, tuple)):
            values = tuple(str(v) for v in value)
        else:
            values = ()
        roles = [self.role_map[v] for v in values if v in self.role_map]
        return (max(roles) if roles else self.default_role), values

    async def authenticate(self, authorization: str | None, client_host: str | None) -> Identity:
        claims = await self.verify(_bearer(authorization))
        role, values = self.role_of(claims)
        if role is None:
            raise AuthError(403, f"your account has no Kumeo role: the '{self.roles_claim}' claim must hold "
                                 f"one of {', '.join(sorted(self.role_map))}")
        return Identity(subject=str(claims["sub"]), role=role, name=claims.get("name") or
                        claims.get("preferred_username"), email=claims.get("email"), issuer=str(claims.get("iss")),
                        groups=values)

    def public_config(self) -> dict[str, Any]:
        """What the front end needs to sign in (authorization code flow with PKCE)."""
        return {
            "mode": self.mode,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "scopes": self.scopes,
            "authorization_endpoint": self.discovery.get("authorization_endpoint"),
            "token_endpoint": self.discovery.get("token_endpoint"),
        }
