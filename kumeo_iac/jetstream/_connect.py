"""Connecting to NATS: retries with backoff, clear errors, the TLS context and the options a process's environment
gives (one place for the providers, the agent worker, the gateway, ``kumeo run`` and the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from kumeo_iac.errors import KumeoDeployError, KumeoError
from kumeo_iac.jetstream._log import log as _log

__all__ = [
    "TLS_ENV_NAMES",
    "TLS_SETTING_NAMES",
    "close_quietly",
    "connect",
    "connect_options_from_env",
    "describe_error",
    "tls_context",
    "with_jetstream",
]

# Errors after which trying again cannot help.
_FATAL_CONNECT_ERRORS = (
    nats.errors.AuthorizationError,
    nats.errors.InvalidUserCredentialsError,
    nats.errors.SecureConnRequiredError,
    nats.errors.SecureConnWantedError,
)

def _publish_async_errors_reach_the_future() -> None:
    """Work around nats.py#985: an error PubAck (``503 maximum messages exceeded`` from a full stream with
    ``discard: new``, a wrong expected stream…) must fail the ``publish_async`` future.

    nats-py 2.16's ``_handle_async_reply`` calls ``APIError.from_error``, which *raises* instead of returning, so
    the error escapes into the subscription task ("nats: encountered error") and the future is never resolved:
    every publisher waits its whole timeout and sees a timeout instead of the server's refusal. Applied only while
    ``from_error`` still raises (the fix upstream, PR #994, makes this a no-op).
    """
    from nats.js import api
    from nats.js import client as js_client
    from nats.js import errors as js_errors

    if getattr(JetStreamContext, "_kumeo_async_reply_fixed", False):
        return
    try:
        js_errors.APIError.from_error({"code": 503, "err_code": 10077, "description": "probe"})
    except js_errors.APIError:
        pass
    else:
        return

    import json

    async def _handle_async_reply(self: Any, msg: Any) -> None:
        future = self._publish_async_futures.get(msg.subject[len(self._async_reply_prefix):])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(api.Header.STATUS) == js_client.NO_RESPONDERS_STATUS:
            future.set_exception(js_errors.NoStreamResponseError)
            return
        try:
            resp = json.loads(msg.data)
            if "error" in resp:
                try:
                    error: BaseException = js_errors.APIError.from_error(resp["error"])
                except js_errors.APIError as raised:
                    error = raised
                future.set_exception(error)
                return
            future.set_result(api.PubAck.from_response(resp))
        except (asyncio.CancelledError, asyncio.InvalidStateError):
            pass
        except Exception as exc:  # noqa: BLE001 - a malformed answer fails the publish, never hangs it
            future.set_exception(exc)

    JetStreamContext._handle_async_reply = _handle_async_reply  # type: ignore[method-assign]
    JetStreamContext._kumeo_async_reply_fixed = True  # type: ignore[attr-defined]


_publish_async_errors_reach_the_future()


async def connect(
    url: str,
    *,
    timeout_s: float = 10.0,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    creds_file: str | None = None,
    name: str = "kumeo",
    **options: Any,
) -> NATS:
    """Connect to NATS at ``url``, retrying with backoff until it answers or ``timeout_s`` has passed.

    Raises :class:`KumeoDeployError` naming the URL and the last error when the server never answers, and at
    once when it refuses the credentials (retrying cannot fix those). Extra ``options`` go to ``nats.connect``;
    by default the client gives up reconnecting quickly, which suits a deploy; long-lived workers pass their own
    ``max_reconnect_attempts`` and ``reconnect_time_wait``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    user_error_cb = options.pop("error_cb", None)
    options.setdefault("max_reconnect_attempts", 1)
    options.setdefault("reconnect_time_wait", 0.05)
    credentials: dict[str, Any] = {}
    if user is not None:
        credentials["user"] = user
    if password is not None:
        credentials["password"] = password
    if token is not None:
        credentials["token"] = token
    if creds_file is not None:
        credentials["user_credentials"] = creds_file

    attempts = 0
    delay = 0.05
    last_error: BaseException | None = None
    while True:
        attempts += 1
        remaining = deadline - loop.time()
        seen: list[BaseException] = []

        hopeless = asyncio.Event()

        async def error_cb(
            exc: Exception, seen: list[BaseException] = seen, hopeless: asyncio.Event = hopeless
        ) -> None:
            seen.append(exc)
            _log.debug("nats client error (%s): %r", url, exc)
            if isinstance(exc, ssl.SSLCertVerificationError):
                hopeless.set()  # nats-py keeps waiting after the handshake fails; an untrusted certificate stays so
            if user_error_cb is not None:
                await user_error_cb(exc)

        nc = NATS()
        try:
            await _connect_unless_hopeless(
                nc.connect(
                    url,
                    name=name,
                    # nats-py waits float seconds although its annotation says int
                    connect_timeout=max(0.05, min(2.0, remaining)),  # type: ignore[arg-type]
                    error_cb=error_cb,
                    **credentials,
                    **options,
                ),
                hopeless,
                timeout=max(0.05, remaining),
            )
            return nc
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await close_quietly(nc)
            bad_tls = next((e for e in [*seen, exc] if isinstance(e, ssl.SSLCertVerificationError)), None)
            if bad_tls is not None:
                raise KumeoDeployError(
                    f"TLS with NATS at {url} failed: {describe_error(bad_tls)}; check the CA that signed the server's "
                    "certificate (tls_ca_file), the client certificate and key if the server asks for one, and "
                    "that the host in the URL is one the certificate names"
                ) from bad_tls
            fatal = next((e for e in [*seen, exc] if _is_fatal_connect_error(e)), None)
            if fatal is not None:
                raise KumeoDeployError(
                    f"NATS at {url} refused the connection: {describe_error(fatal)}; check the credentials "
                    "(user/password, token or creds file) given for this server"
                ) from fatal
            # NoServersError and our own timeout say little; the client saw the real cause (refused, reset, …).
            vague = isinstance(exc, (nats.errors.NoServersError, TimeoutError))
            last_error = seen[-1] if seen and vague else exc
        except ValueError as exc:  # a malformed URL; retrying will not fix it
            await close_quietly(nc)
            raise KumeoDeployError(f"cannot connect to NATS at {url!r}: {exc}") from exc
        if loop.time() + delay >= deadline:
            raise KumeoDeployError(
                f"could not connect to NATS at {url} within {timeout_s:g} s ({attempts} attempts); "
                f"last error: {describe_error(last_error)}. Is nats-server running and reachable there?"
            ) from last_error
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _connect_unless_hopeless(connecting: Awaitable[None], hopeless: asyncio.Event, *, timeout: float) -> None:
    """Await ``connecting`` for at most ``timeout`` seconds, giving up at once (TimeoutError) when ``hopeless`` is
    set: the caller then reads the reason from the errors the client reported."""
    attempt = asyncio.ensure_future(connecting)
    stop = asyncio.ensure_future(hopeless.wait())
    try:
        done, _ = await asyncio.wait({attempt, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # our caller was cancelled: the attempt goes with it
        attempt.cancel()
        raise
    finally:
        stop.cancel()
    if attempt in done:
        attempt.result()
        return
    attempt.cancel()
    try:
        await attempt
    except (asyncio.CancelledError, Exception) as exc:  # noqa: BLE001 - abandoned: its error is already reported
        _log.debug("abandoned connection attempt ended with %r", exc)
    raise TimeoutError


def _is_fatal_connect_error(exc: BaseException) -> bool:
    if isinstance(exc, _FATAL_CONNECT_ERRORS):
        return True
    # nats-py reports the server's -ERR 'Authorization Violation' as a plain nats.errors.Error.
    text = str(exc).lower()
    return isinstance(exc, nats.errors.Error) and ("authorization violation" in text or "authentication" in text)


async def close_quietly(nc: NATS) -> None:
    """Close ``nc``, ignoring the errors a half-open client raises."""
    with contextlib.suppress(Exception):  # a half-open client may fail to close; it holds nothing we need
        await nc.close()


def describe_error(exc: BaseException | None) -> str:
    """An exception as ``Type: text`` for an error message (nats-py's errors often have an empty ``str``)."""
    if exc is None:
        return "none"
    text = str(exc) or getattr(exc, "description", None) or ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- TLS and the environment ------------------------------------------------------------------------------------

#: The setting names a TLS error message uses for the CA, the client certificate and its key.
TLS_SETTING_NAMES = ("tls_ca_file", "tls_cert_file", "tls_key_file")
#: The environment variables a runtime process (agent worker, gateway) reads its TLS files from.
TLS_ENV_NAMES = ("NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY")


def tls_context(
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    *,
    names: tuple[str, str, str] = TLS_SETTING_NAMES,
    server: str | None = None,
    error: type[KumeoError] = KumeoDeployError,
) -> ssl.SSLContext | None:
    """The client TLS context for a CA file and an optional client certificate and key, or None when neither a CA
    nor a certificate is given.

    ``names`` are what the user set these files as (settings or environment variables), so an error names them;
    ``server`` (without credentials) says which server they were for. Raises ``error`` when a certificate comes
    without its key or a file cannot be loaded.
    """
    if not ca_file and not cert_file:
        return None
    ca_name, cert_name, key_name = names
    if cert_file and not key_file:
        raise error(f"{cert_name} is set but {key_name} is not; give the client certificate's key too")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        at = f" at {server}" if server else ""
        raise error(
            f"cannot load the NATS TLS files{at} ({ca_name}={ca_file!r}, {cert_name}={cert_file!r}, "
            f"{key_name}={key_file!r}): {exc}"
        ) from exc
    return context


def connect_options_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """A runtime process's NATS credentials, inbox prefix and TLS context, from its environment (empty values are
    ignored): ``NATS_USER``/``NATS_PASSWORD``, ``NATS_TOKEN``, ``NATS_CREDS``, ``NATS_INBOX_PREFIX``,
    ``NATS_TLS_CA``/``NATS_TLS_CERT``/``NATS_TLS_KEY`` and ``NATS_TLS_HOSTNAME``; the result goes to :func:`connect`.
    """
    options: dict[str, Any] = {}
    for var, option in (("NATS_USER", "user"), ("NATS_PASSWORD", "password"), ("NATS_TOKEN", "token"),
                        ("NATS_CREDS", "creds_file"), ("NATS_INBOX_PREFIX", "inbox_prefix")):
        if env.get(var):
            options[option] = env[var]
    ca, cert, key = (env.get(var) for var in TLS_ENV_NAMES)
    context = tls_context(ca, cert, key, names=TLS_ENV_NAMES, error=KumeoError)
    if context is not None:
        options["tls"] = context
        if env.get("NATS_TLS_HOSTNAME"):
            options["tls_hostname"] = env["NATS_TLS_HOSTNAME"]
    return options


# -- running from synchronous code ------------------------------------------------------------------------------

_R = TypeVar("_R")


async def with_jetstream(
    url: str,
    action: Callable[[JetStreamContext], Awaitable[_R]],
    *,
    timeout_s: float = 10.0,
    **connect_options: Any,
) -> _R:
    """Connect, run ``action`` with a JetStream context, and close the connection whatever happens."""
    nc = await connect(url, timeout_s=timeout_s, **connect_options)
    try:
        return await action(nc.jetstream(timeout=max(2.0, min(timeout_s, 10.0))))
    finally:
        await close_quietly(nc)
