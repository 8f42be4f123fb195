"""A HumanReview agent's ``config:`` read once at start: UI fields, notifications, timeout and what it does.

::

    config: {
      ui: { title: "Large claim", fields: [ { field: "claim_id", label: "Claim", type: "text" }, "amount" ],
            base_url: "https://reviews.example.com" },   // optional: links in notifications
      notifications: { webhook: "${env.REVIEW_WEBHOOK}", email: ["adjusters@example.com"] },
      timeout: "48h",                 // none: a review waits until someone decides
      on_timeout: "escalate",         // approve | reject (default) | escalate
      escalation_path: "https://hooks.example.com/escalations",   // a URL (POSTed to) or names/addresses
      escalation_timeout: "24h",      // how long an escalated review waits (default: timeout)
      sweep_interval: "5s"            // how often deadlines and unreleased decisions are checked
    }
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError

__all__ = ["ReviewSettings", "expand_env", "parse_duration"]

ON_TIMEOUT: Final = ("approve", "reject", "escalate")
INTERFACES: Final = ("web", "http", "api")
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ENV: Final = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any, what: str) -> float:
    """``"48h"``, ``"30m"``, ``"500ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise KumeoRuntimeError(f"{what} must be a duration, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise KumeoRuntimeError(f'{what} {value!r} is not a duration (write e.g. "30s", "2h", "2d")')
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise KumeoRuntimeError(f"{what} must be positive, got {value!r}")
    return seconds


def expand_env(text: str, what: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``${env.NAME}`` by the environment variable; a variable that is not set is an error."""
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KumeoRuntimeError(f"{what} uses ${{env.{name}}} but the environment variable {name} is not set")
        return env[name]

    return _ENV.sub(value, text)


@dataclasses.dataclass(frozen=True)
class ReviewSettings:
    """The parsed settings of one HumanReview agent."""

    title: str | None = None
    display: tuple[dict[str, Any], ...] = ()
    webhook: str | None = None
    email: tuple[str, ...] = ()
    timeout_seconds: float | None = None
    on_timeout: str = "reject"
    escalation_path: tuple[str, ...] = ()
    escalation_seconds: float | None = None
    sweep_seconds: float = 5.0
    #: Where reviewers reach the API from outside (``ui.base_url``), so notifications carry a full link.
    base_url: str | None = None

    @property
    def editable(self) -> frozenset[str]:
        """The fields reviewers may change: those the UI shows."""
        return frozenset(d["field"] for d in self.display)

    @property
    def escalation_urls(self) -> tuple[str, ...]:
        return tuple(p for p in self.escalation_path if p.startswith(("http://", "https://")))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str, *, interface: Any = None,
                    environ: Mapping[str, str] | None = None) -> ReviewSettings:
        """Read ``config``; every mistake names ``where`` (the agent) and the setting."""
        if interface is not None and str(interface).lower() not in INTERFACES:
            raise KumeoRuntimeError(f"{where}: interface {interface!r} is not supported by this runtime; "
                                    "use 'web' (the review HTTP API on the worker's port)")
        ui = config.get("ui") or {}
        if not isinstance(ui, Mapping):
            raise KumeoRuntimeError(f"{where}: config.ui must be an object")
        display = tuple(_display_field(f, f"{where}: config.ui.fields[{i}]") for i, f in
                        enumerate(_as_list(ui.get("fields"), f"{where}: config.ui.fields")))

        notifications = config.get("notifications") or {}
        if not isinstance(notifications, Mapping):
            raise KumeoRuntimeError(f"{where}: config.notifications must be an object")
        webhook = notifications.get("webhook")
        if webhook is not None:
            if not isinstance(webhook, str):
                raise KumeoRuntimeError(f"{where}: config.notifications.webhook must be a URL string")
            webhook = expand_env(webhook, f"{where}: config.notifications.webhook", environ)
            if not webhook.startswith(("http://", "https://")):
                raise KumeoRuntimeError(f"{where}: config.notifications.webhook {webhook!r} is not an http(s) URL")
        email = tuple(expand_env(str(e), f"{where}: config.notifications.email", environ)
                      for e in _as_list(notifications.get("email"), f"{where}: config.notifications.email"))

        timeout = config.get("timeout")
        timeout_seconds = parse_duration(timeout, f"{where}: config.timeout") if timeout is not None else None
        on_timeout = str(config.get("on_timeout") or "reject").lower()
        if on_timeout not in ON_TIMEOUT:
            raise KumeoRuntimeError(f"{where}: config.on_timeout {config.get('on_timeout')!r} must be one of "
                                    f"{', '.join(ON_TIMEOUT)}")
        escalation_path = tuple(expand_env(str(p), f"{where}: config.escalation_path", environ)
                                for p in _as_list(config.get("escalation_path"), f"{where}: config.escalation_path"))
        escalation = config.get("escalation_timeout")
        escalation_seconds = (parse_duration(escalation, f"{where}: config.escalation_timeout")
                              if escalation is not None else timeout_seconds)
        sweep = config.get("sweep_interval")
        if sweep is not None:
            sweep_seconds = parse_duration(sweep, f"{where}: config.sweep_interval")
        else:
            # Deadlines are honoured to within a tenth of the timeout, checked at most every 5 s.
            sweep_seconds = min(max((timeout_seconds or 50.0) / 10, 0.2), 5.0)
        return cls(title=str(ui["title"]) if ui.get("title") is not None else None, display=display,
                   webhook=webhook, email=email, timeout_seconds=timeout_seconds, on_timeout=on_timeout,
                   escalation_path=escalation_path, escalation_seconds=escalation_seconds,
                   sweep_seconds=sweep_seconds,
                   base_url=expand_env(str(ui["base_url"]), f"{where}: config.ui.base_url", environ)
                   if ui.get("base_url") else None)


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise KumeoRuntimeError(f"{what} must be a list")


def _display_field(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"field": value, "label": value, "type": "text"}
    if isinstance(value, Mapping) and isinstance(value.get("field"), str):
        return {"field": value["field"], "label": str(value.get("label") or value["field"]),
                "type": str(value.get("type") or "text")}
    raise KumeoRuntimeError(f"{what} must be a field name or {{field, label, type}}")
