"""NATS decentralized auth for tests, with nothing but ``cryptography``: nkeys (operator, account, user), the JWTs
that bind them (``ed25519-nkey`` signed), a user's ``.creds`` file, and the config of a hub nats-server in operator
mode (resolver MEMORY, the system account and the account preloaded, JetStream, a leafnode port).

An nkey is the base32 (no padding) of a prefix byte, the 32-byte Ed25519 public key and a CRC16-XMODEM of both
(little-endian); its seed is the base32 of two bytes carrying the seed prefix and the key's type, the 32-byte
private seed and the CRC. A JWT is ``header.claims.signature`` in base64url without padding, the claims issued
(``iss``) and signed by the nkey one level up: the operator signs the account, the account signs the user.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OPERATOR: Final = 14 << 3  # "O..."
ACCOUNT: Final = 0  # "A..."
USER: Final = 20 << 3  # "U..."
_SEED: Final = 18 << 3  # "S..."
_JWT_HEADER: Final = {"typ": "JWT", "alg": "ed25519-nkey"}
#: No limit, in a JWT's limits.
UNLIMITED: Final = -1


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum ending every nkey."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw + crc16_xmodem(raw).to_bytes(2, "little")).decode().rstrip("=")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class NKey:
    """An Ed25519 key pair of one nkey type (:data:`OPERATOR`, :data:`ACCOUNT` or :data:`USER`)."""

    prefix: int
    key: Ed25519PrivateKey

    @classmethod
    def create(cls, prefix: int) -> NKey:
        return cls(prefix, Ed25519PrivateKey.generate())

    @property
    def public(self) -> str:
        """The public nkey, e.g. ``UD...`` for a user."""
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _base32(bytes([self.prefix]) + raw)

    @property
    def seed(self) -> str:
        """The seed, e.g. ``SU...`` for a user (what a creds file carries after the JWT)."""
        private = self.key.private_bytes_raw()
        head = bytes([_SEED | (self.prefix >> 5), (self.prefix & 31) << 3])
        return _base32(head + private)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def issue_jwt(issuer: NKey, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A JWT for ``subject`` issued and signed by ``issuer``; ``nats`` is its type-specific part. Its ``jti`` is,
    as the NATS tools make it, the base32 of the SHA-512/256 of the claims without it."""
    claims: dict[str, Any] = {"jti": "", "iat": int(time.time()), "iss": issuer.public, "name": name,
                              "sub": subject, "nats": {**nats, "version": 2}}
    digest = hashlib.new("sha512_256", json.dumps(claims, separators=(",", ":")).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    signed = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (_JWT_HEADER, claims))
    return f"{signed}.{_b64url(issuer.sign(signed.encode()))}"


def operator_jwt(operator: NKey, system: NKey, name: str = "kumeo-test-operator") -> str:
    """The operator's self-signed JWT (the hub's trusted operator), naming its ``system`` account (JetStream needs
    one in operator mode)."""
    return issue_jwt(operator, operator.public, name, {"type": "operator", "system_account": system.public})


def system_account_jwt(operator: NKey, system: NKey) -> str:
    """The system account (``$SYS``), signed by ``operator``, with the default limits (no JetStream)."""
    limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
              "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED}
    return issue_jwt(operator, system.public, "SYS", {"type": "account", "limits": limits})


def account_jwt(operator: NKey, account: NKey, name: str = "SITES") -> str:
    """An account signed by ``operator``, without limits, JetStream included (limits of 0 would switch it off)."""
    jetstream = {"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED, "consumer": UNLIMITED,
                 "max_ack_pending": UNLIMITED, "mem_max_stream_bytes": 0, "disk_max_stream_bytes": 0,
                 "max_bytes_required": False}
    limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
              "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED, **jetstream}
    return issue_jwt(operator, account.public, name, {"type": "account", "limits": limits})


def user_jwt(account: NKey, user: NKey, name: str = "site1-leaf") -> str:
    """A user of ``account``, signed by it, allowed everything."""
    return issue_jwt(account, user.public, name, {"type": "user", "pub": {}, "sub": {}, "subs": UNLIMITED,
                                                  "data": UNLIMITED, "payload": UNLIMITED})


def creds_text(jwt: str, seed: str) -> str:
    """A ``.creds`` file as ``nsc`` writes it: the user's JWT, then its nkey seed."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


@dataclasses.dataclass(frozen=True)
class Trust:
    """An operator, its system account, one account (JetStream on) and one of its users, with their JWTs."""

    operator: NKey
    system: NKey
    account: NKey
    user: NKey
    operator_jwt: str
    system_jwt: str
    account_jwt: str
    user_jwt: str

    @classmethod
    def create(cls) -> Trust:
        operator, system = NKey.create(OPERATOR), NKey.create(ACCOUNT)
        account, user = NKey.create(ACCOUNT), NKey.create(USER)
        return cls(operator, system, account, user, operator_jwt(operator, system),
                   system_account_jwt(operator, system), account_jwt(operator, account), user_jwt(account, user))

    def creds(self) -> str:
        """The user's ``.creds`` file."""
        return creds_text(self.user_jwt, self.user.seed)

    def client_auth(self) -> dict[str, Any]:
        """nats-py ``connect`` options authenticating as the user (its JWT, and the server's nonce signed with its
        key), in place of ``user_credentials``, which needs the ``nkeys`` package."""
        jwt = self.user_jwt.encode()
        return {"user_jwt_cb": lambda: jwt,
                "signature_cb": lambda nonce: base64.b64encode(self.user.sign(nonce.encode()))}


def hub_config(trust: Trust, *, operator_file: Path, leafnode_port: int, monitor_port: int,
               domain: str = "hub") -> str:
    """The hub nats-server's config (JSON): the operator trusted (its JWT written to ``operator_file``), resolver
    MEMORY with the system account and the account preloaded, JetStream in ``domain``, a loopback leafnode port
    and a monitoring port."""
    operator_file.write_text(trust.operator_jwt + "\n")
    config = {
        "operator": str(operator_file),
        "system_account": trust.system.public,
        "resolver": "MEMORY",
        "resolver_preload": {trust.system.public: trust.system_jwt, trust.account.public: trust.account_jwt},
        "jetstream": {"domain": domain},
        "http_port": monitor_port,
        "leafnodes": {"host": "127.0.0.1", "port": leafnode_port},
    }
    return json.dumps(config, indent=2) + "\n"
