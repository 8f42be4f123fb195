"""A loopback OIDC provider for the tests of Kumeo's token verifier (the dashboard's, which the review API reuses).

It publishes ``/.well-known/openid-configuration`` and ``/jwks.json`` for one RSA key on a free loopback port and
signs access tokens with that key, so the verifier checks them exactly as it would against a real provider.
Shared by tests/unit and tests/integration; importable from both because tests/conftest.py puts this directory on
``sys.path``. Needs PyJWT and cryptography: import it after ``pytest.importorskip("jwt")``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "k1"


class OIDCProvider:
    """The provider of tokens for ``audience``; :meth:`close` (or leaving its ``with`` block) stops its HTTP server."""

    def __init__(self, audience: str) -> None:
        self.audience = audience
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: dict[str, Any] = {
                        "issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks.json",
                        "authorization_endpoint": f"{provider.issuer}/authorize",
                        "token_endpoint": f"{provider.issuer}/token"}
                elif self.path == "/jwks.json":
                    body = provider.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, sub: str = "alice", *, expires_in: float = 300, key: Any = None, **claims: Any) -> str:
        """An access token for ``sub`` (email ``sub@example.com``) to this provider's audience, valid for
        ``expires_in`` seconds (negative: expired), signed by ``key`` (default: the published one); ``claims`` are
        added and win (``aud=`` another audience, ``roles=``, ``groups=``…)."""
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": sub, "aud": self.audience, "iat": now, "exp": now + int(expires_in),
                   "email": f"{sub}@example.com", **claims}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> OIDCProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
