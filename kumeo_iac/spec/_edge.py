"""The rules of ``deployment: { profile: "edge", leaf: { … } }``, read by validation and by compile.

An edge workflow runs every agent in one pod beside its own nats-server, a leaf node of the central NATS (the hub):
see ``kumeo_iac.compile._edge``. One model of the rules: validation reports each problem at its key, compile
raises the first one.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from kumeo_iac.spec._platform import kubernetes_quantity
from kumeo_iac.spec._suggest import did_you_mean

if TYPE_CHECKING:
    from kumeo_iac.spec._deployment import Deployment, Leaf

__all__ = ["EDGE", "PROFILES", "EdgeProblem", "edge_problems", "hub_urls", "is_edge"]

EDGE: Final = "edge"
#: The deployment profiles: ``cluster`` (the default: one Deployment per agent on the central NATS) and ``edge``.
PROFILES: Final = ("cluster", EDGE)
#: URL schemes a leaf node's remote accepts (nats-server's leafnode remotes).
LEAF_SCHEMES: Final = ("nats-leaf", "nats", "tls", "ws", "wss")
#: A JetStream domain: one subject token, no wildcards (it becomes part of ``$JS.<domain>.API``).
_DOMAIN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_SECRET: Final = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(/[-._a-zA-Z0-9]{1,253})?\Z")


@dataclasses.dataclass(frozen=True)
class EdgeProblem:
    """One thing wrong with an edge deployment: the key it is about (``profile``, ``leaf.hub``…) and what."""

    argument: str
    message: str


def is_edge(deployment: Deployment | None) -> bool:
    return deployment is not None and deployment.profile == EDGE


def hub_urls(hub: Any) -> list[str]:
    """``leaf.hub`` as a list of URLs (one string, or a list of them)."""
    if isinstance(hub, str):
        return [hub]
    if isinstance(hub, (list, tuple)):
        return [str(u) for u in hub]
    return []


def edge_problems(deployment: Deployment | None) -> list[EdgeProblem]:
    """Everything wrong with a deployment's ``profile`` and ``leaf`` (empty for a cluster deployment without leaf)."""
    if deployment is None:
        return []
    problems: list[EdgeProblem] = []
    profile, leaf = deployment.profile, deployment.leaf
    if profile is not None and profile not in PROFILES:
        problems.append(EdgeProblem("profile", f"must be \"cluster\" or \"edge\" (got {_show(profile)})"))
        return problems
    if profile != EDGE:
        if leaf is not None:
            problems.append(EdgeProblem("leaf", "is only read with `profile: \"edge\"`; add it or remove `leaf`"))
        return problems
    if leaf is not None:
        problems += _unknown_keys(leaf)
    if leaf is None or leaf.hub is None:
        problems.append(EdgeProblem(
            "leaf" if leaf is None else "leaf.hub",
            "profile \"edge\" needs `leaf: { hub: \"nats-leaf://hub.example.com:7422\", credentials_secret: \"…\" }`"
            ": the central NATS server's leafnode URL, and the Secret holding the leaf's credentials"))
        return problems
    urls = hub_urls(leaf.hub)
    if not urls:
        problems.append(EdgeProblem("leaf.hub", f"must be a URL or a list of URLs (got {_show(leaf.hub)})"))
    for url in urls:
        problem = _url_problem(url)
        if problem:
            problems.append(EdgeProblem("leaf.hub", problem))
    if leaf.credentials_secret is None:
        problems.append(EdgeProblem(
            "leaf.credentials_secret", "is missing: name the Secret holding the leaf's NATS credentials file "
                                       "(`credentials_secret: \"site-leaf\"`, key `creds`)"))
    else:
        problems += _secret_problems("leaf.credentials_secret", leaf.credentials_secret)
    if leaf.ca_secret is not None:
        problems += _secret_problems("leaf.ca_secret", leaf.ca_secret)
    if leaf.domain is not None and (not isinstance(leaf.domain, str) or not _DOMAIN.match(leaf.domain)):
        problems.append(EdgeProblem(
            "leaf.domain", f"{_show(leaf.domain)} is not a JetStream domain: letters, digits, '_' and '-' only"))
    if leaf.storage is not None and kubernetes_quantity(leaf.storage) is None:
        problems.append(EdgeProblem("leaf.storage", f"{_show(leaf.storage)} is not a Kubernetes quantity; write "
                                                    "e.g. \"1Gi\""))
    scaling = deployment.scaling
    if scaling is not None and ((scaling.min_replicas or 1) > 1 or (scaling.max_replicas or 1) > 1):
        problems.append(EdgeProblem(
            "scaling", "cannot scale an edge workflow: its agents share one pod (one process, one leaf server); "
                       "remove `scaling`, or deploy with the cluster profile"))
    return problems


def _unknown_keys(leaf: Leaf) -> list[EdgeProblem]:
    """A key of ``leaf`` that is none of its settings (a typo would otherwise be dropped without a word)."""
    known = [name for name in leaf.meaningful_fields() if name != "extra"]
    return [EdgeProblem(f"leaf.{key}", f"is not a leaf setting (known: {', '.join(known)}){did_you_mean(key, known)}")
            for key in leaf.extra]


def _secret_problems(argument: str, value: Any) -> list[EdgeProblem]:
    """``value`` as a Secret reference (``"name"`` or ``"name/key"``): no problem, or the one at ``argument``."""
    if isinstance(value, str) and _SECRET.match(value):
        return []
    return [EdgeProblem(argument, f"{_show(value)} is not a Secret name (lower-case letters, digits, '-' and '.'), "
                                  "optionally followed by /KEY")]


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        return f"{_show(url)} is not a URL ({exc})"
    if parts.scheme not in LEAF_SCHEMES or not host:
        return (f"{_show(url)} is not a leafnode URL; write e.g. \"nats-leaf://hub.example.com:7422\" "
                f"(schemes: {', '.join(LEAF_SCHEMES)})")
    if "$" in url or "{" in url:
        return f"{_show(url)} holds a placeholder; write the hub's URL itself"
    if parts.username or parts.password:
        return f"{_show(url)} holds credentials, which would land in a ConfigMap; put them in the credentials Secret"
    return None


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
