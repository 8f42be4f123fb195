"""Naming rules: slugs, DNS-1123 object names, NATS subjects, stream/consumer/bucket names.

One module decides every name so the Plan, the runtime and the docs agree:

* workflow slug: DNS-1123 label of the name (``FraudDetection`` → ``fraud-detection``); it is also the subject token
  (NATS subjects allow ``-``), the default namespace and the prefix of every Kubernetes object name;
* subjects: ``kumeo.<slug>.<agent>.out``, ``kumeo.<slug>.dlq.<agent>``, ``kumeo.<slug>.<router>.route.<agent>``,
  ``kumeo.<slug>.<agent>.fallback``, ``kumeo.<slug>.source.<n>``, ``kumeo.<slug>.target.<n>``;
* streams: ``KUMEO_<SLUG>`` (``-`` → ``_``), ``KUMEO_<SLUG>_SOURCES``, ``KUMEO_<SLUG>_TARGETS``;
* KV buckets: ``kumeo_<slug_snake>_<purpose>``;
* Kubernetes: ``<slug>-<agent-dns>`` (63 characters at most; longer names keep a stable hash suffix).
"""

from __future__ import annotations

import hashlib
import re

# Re-exported: the compiler and validate read the subject rules from here with the other naming rules.
from kumeo_iac.jetstream import covers as covers
from kumeo_iac.jetstream import minimal_subjects as minimal_subjects
from kumeo_iac.jetstream import overlap as overlap
from kumeo_iac.jetstream import valid_subject as valid_subject

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\Z")


def words(name: str) -> list[str]:
    """Split CamelCase, snake_case and kebab-case names into lower-case words."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def slugify(name: str) -> str:
    """The DNS-1123 label form of a name (``FraudDetection`` → ``fraud-detection``)."""
    slug = "-".join(words(name)) or "x"
    if not slug[0].isalpha():
        slug = "k-" + slug
    return shorten(slug)


def snake(name: str) -> str:
    """The snake_case form of a name (``RiskScoring`` → ``risk_scoring``)."""
    return "_".join(words(name)) or "x"


def shorten(name: str, limit: int = 63) -> str:
    """Cut a DNS name to ``limit`` characters, keeping it unique with a hash of the full name."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def dns_name(*parts: str, limit: int = 63) -> str:
    """An object name made of parts (each slugified), valid as a DNS-1035/1123 label."""
    return shorten("-".join(slugify(p) if not _DNS_LABEL.match(p) else p for p in parts), limit)


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS_LABEL.match(name))


def is_token(text: str) -> bool:
    """Whether text is usable as one NATS subject token and as a consumer name."""
    return bool(_TOKEN.match(text))


def token(text: str) -> str:
    """Make text usable as a subject token (ids of endpoints may be written freely)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "x"


def stream_name(slug: str, role: str | None = None) -> str:
    base = "KUMEO_" + slug.upper().replace("-", "_")
    return base if role is None else f"{base}_{role.upper()}"


def bucket_name(slug: str, purpose: str) -> str:
    return f"kumeo_{slug.replace('-', '_')}_{purpose.replace('-', '_')}"


class Subjects:
    """The internal subjects of one workflow."""

    def __init__(self, slug: str) -> None:
        self.prefix = f"kumeo.{slug}"

    @property
    def all(self) -> str:
        return f"{self.prefix}.>"

    def output(self, agent: str) -> str:
        return f"{self.prefix}.{agent}.out"

    def dead_letter(self, agent: str) -> str:
        return f"{self.prefix}.dlq.{agent}"

    def route(self, router: str, agent: str) -> str:
        return f"{self.prefix}.{router}.route.{agent}"

    def fallback(self, agent: str) -> str:
        return f"{self.prefix}.{agent}.fallback"

    def source(self, name: str) -> str:
        return f"{self.prefix}.source.{name}"

    def target(self, name: str) -> str:
        return f"{self.prefix}.target.{name}"


# -- subject patterns ---------------------------------------------------------------------------------------------


# valid_subject, covers, overlap and minimal_subjects live in kumeo_iac.jetstream (imported above), the one
# subject matcher the compiler, the worker and the dashboard share.


def gateway_target_durable(endpoint_name: str) -> str:
    """The durable consumer the workflow's gateway delivers one HTTP/File target with (one name, used by compile
    for the gateway's NATS permissions and by the runtime's target adapters)."""
    return f"gateway-target-{endpoint_name}"
