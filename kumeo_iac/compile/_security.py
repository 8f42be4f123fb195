"""Per-agent NATS identities, their credentials, and the nats-server configuration that enforces them.

Every agent gets its own NATS user, ``<slug>-<agent>``, allowed exactly what its worker does and nothing else:

* **publish** its output, dead-letter, route, target and fallback subjects; the JetStream API calls reading its
  consumers needs (``CONSUMER.INFO`` and ``CONSUMER.MSG.NEXT`` of its own durables, ``STREAM.INFO`` of their
  streams, ``$JS.API.INFO``); acks ``$JS.ACK.<stream>.<durable>.>``; and for each KV bucket its settings name,
  ``$KV.<bucket>.>`` plus the calls nats.py's KV makes (``STREAM.INFO``/``DIRECT.GET``/``STREAM.MSG.GET`` of
  ``KV_<bucket>``, the ordered consumer behind ``keys()`` and its flow control).
* **never** ``CONSUMER.CREATE``/``CONSUMER.DURABLE.CREATE`` (nor update, the same API calls) of its durables: the
  deployer creates them, and the worker only binds. An agent allowed to create its durable could re-create it with
  a wider filter (``kumeo.<workflow>.>``) and read every other agent's output.
* **subscribe** only to its private inbox ``_INBOX_<user>.>``. Inputs are read through the durable pull consumer
  (the server delivers to the inbox), never by subscribing to a subject, so an agent cannot tap another agent's
  input, and no other user can subscribe to its inbox (a shared ``_INBOX.>`` would let any user read every pull
  delivery). The worker connects with ``inbox_prefix=_INBOX_<user>``.

The deployer (``kumeo-deployer``, what the Pulumi providers connect as) may call the JetStream API to manage
streams, consumers and buckets and publish the audit record ``kumeo.audit.deploy``; it may not read messages
(``MSG.NEXT``, ``DIRECT.GET``, ``STREAM.MSG.GET``), delete or purge them, or update/delete the audit stream.

Passwords are derived, not stored: ``derive_password(seed, user)`` is HMAC-SHA256 of the user name keyed with a
stack secret (``kumeo:natsAuthSeed``), so every ``pulumi up`` computes the same passwords without keeping state,
rotating the seed rotates them all, and the seed never leaves Pulumi's encrypted config. Compile is pure and sees
no secret: it names the Secret (``<slug>-nats``, one key per NATS user) the Deployment reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kumeo_iac.compile._names import dns_name, gateway_target_durable
from kumeo_iac.compile._plan import AgentPlan, EndpointPlan, KeyValuePlan, NatsIdentity, Plan
from kumeo_iac.errors import KumeoCompileError

#: The user the Pulumi providers (and ``kumeo up``) connect as.
DEPLOYER_USER = "kumeo-deployer"
#: Where the NATS TLS Secret is mounted in agent pods.
TLS_MOUNT_PATH = "/etc/kumeo/nats-tls"
#: Default keys of the TLS Secret (cert-manager's and ``kubernetes.io/tls``'s names).
TLS_DEFAULT_KEYS = {"ca": "ca.crt", "cert": "tls.crt", "key": "tls.key"}
#: The audit stream's subject (see ``kumeo_providers._audit``).
AUDIT_SUBJECT = "kumeo.audit.deploy"
AUDIT_STREAM = "KUMEO_AUDIT"
#: Where a HumanReview's review API records its decisions (see ``kumeo_iac.runtime.review``).
REVIEW_AUDIT_SUBJECT = "kumeo.audit.review"
JS_API = "$JS.API"
_MIN_SEED_LENGTH = 16

# What the deployer must never do: read or delete messages, or weaken the audit trail.
_DEPLOYER_DENY = (
    f"{JS_API}.CONSUMER.MSG.NEXT.>",
    f"{JS_API}.DIRECT.GET.>",
    f"{JS_API}.STREAM.MSG.GET.>",
    f"{JS_API}.STREAM.MSG.DELETE.>",
    f"{JS_API}.STREAM.PURGE.>",
    f"{JS_API}.STREAM.DELETE.{AUDIT_STREAM}",
    f"{JS_API}.STREAM.UPDATE.{AUDIT_STREAM}",
)


# -- identities ---------------------------------------------------------------------------------------------------


def nats_user(slug: str, agent_id: str) -> str:
    """The NATS user of an agent: ``<workflow-slug>-<agent-id>``."""
    return f"{slug}-{agent_id}"


def inbox_prefix(user: str) -> str:
    """The agent's private reply prefix: one subject token, so ``_INBOX.>`` (other clients' default) never covers it."""
    return f"_INBOX_{user}"


def agent_buckets(agent: AgentPlan, key_values: Iterable[KeyValuePlan]) -> list[str]:
    """The KV buckets an agent's settings name (joins, reviews, LLM cache)."""
    settings = agent.settings if isinstance(agent.settings, dict) else {}
    named = set()
    join = settings.get("join")
    if isinstance(join, dict) and join.get("bucket"):
        named.add(str(join["bucket"]))
    for key in ("review_bucket", "cache_bucket"):
        if settings.get(key):
            named.add(str(settings[key]))
    known = {kv.bucket for kv in key_values}
    return sorted(named & known)


def agent_identity(slug: str, agent: AgentPlan, key_values: Iterable[KeyValuePlan]) -> NatsIdentity:
    """The least-privilege NATS identity of one agent (see the module docstring for what each entry is for)."""
    user = nats_user(slug, agent.id)
    publish = {agent.output_subject, agent.dead_letter_subject, *agent.target_subjects}
    publish |= {r.subject for r in agent.routes}
    if agent.fallback and agent.fallback.get("subject"):
        publish.add(str(agent.fallback["subject"]))
    publish.add(f"{JS_API}.INFO")
    for c in agent.consumers:
        publish |= {
            f"{JS_API}.STREAM.INFO.{c.stream}",
            f"{JS_API}.CONSUMER.INFO.{c.stream}.{c.durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
            # No CONSUMER.CREATE/DURABLE.CREATE: the deployer owns the durable (see the module docstring).
            f"$JS.ACK.{c.stream}.{c.durable}.>",
        }
    if isinstance(agent.settings, dict) and agent.settings.get("review_bucket"):
        # A HumanReview's review API records every decision in the audit stream before acting (the deployer
        # creates that stream on the whole kumeo.audit.> namespace, so the worker only looks it up).
        publish |= {REVIEW_AUDIT_SUBJECT, f"{JS_API}.STREAM.INFO.{AUDIT_STREAM}"}
    for bucket in agent_buckets(agent, key_values):
        stream = f"KV_{bucket}"
        publish |= {
            f"$KV.{bucket}.>",
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            # keys() and watch() run an ordered push consumer on the bucket's stream, with flow control. Creating
            # it stays allowed: whatever its filter, it reads only KV_<bucket>, a stream this agent may read anyway.
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>",
        }
    prefix = inbox_prefix(user)
    return NatsIdentity(user=user, publish=sorted(publish), subscribe=[f"{prefix}.>"], inbox_prefix=prefix)


#: The name of the gateway's NATS user within its workflow (``<slug>-gateway``); no agent may take it.
GATEWAY_USER = "gateway"


def gateway_identity(slug: str, sources: Iterable[EndpointPlan], targets: Iterable[EndpointPlan]) -> NatsIdentity:
    """The least-privilege NATS identity of a workflow's gateway (the pod running HTTP/Timer/File endpoints).

    It may publish events on the subjects of the sources it runs and their dead letters, and read the target
    subjects it delivers through its own durable consumers (which the deployer creates: it may not create or update
    them), dead-lettering what cannot be delivered. Nothing else.
    """
    user = nats_user(slug, GATEWAY_USER)
    publish = {f"{JS_API}.INFO", f"kumeo.{slug}.dlq.source"}
    publish |= {ep.subject for ep in sources if ep.kind != "NATS"}
    for ep in targets:
        if ep.kind not in ("HTTP", "File"):
            continue
        durable = gateway_target_durable(ep.name)
        stream = ep.stream
        publish |= {
            f"kumeo.{slug}.dlq.target.{ep.name}",
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            # No CONSUMER.CREATE/DURABLE.CREATE: the deployer creates the target durables; the adapter binds.
            f"$JS.ACK.{stream}.{durable}.>",
        }
    prefix = inbox_prefix(user)
    return NatsIdentity(user=user, publish=sorted(publish), subscribe=[f"{prefix}.>"], inbox_prefix=prefix)


def deployer_permissions() -> dict[str, Any]:
    """The deployer's permissions: manage JetStream objects and write the audit stream; never read messages."""
    return {
        "publish": {"allow": [f"{JS_API}.>", AUDIT_SUBJECT], "deny": list(_DEPLOYER_DENY)},
        "subscribe": {"allow": ["_INBOX.>"]},
    }


# -- credentials ------------------------------------------------------------------------------------------------


def credentials_secret_name(slug: str) -> str:
    """The Kubernetes Secret holding the NATS passwords of a workflow's agents and gateway, one key per NATS user.

    One Secret per workflow (not per agent) keeps an agent at three resources; each pod still reads only its own
    key (``secretKeyRef``), and a Secret's reader could read any agent's Secret of the namespace anyway."""
    return dns_name(slug, "nats")


def derive_password(seed: str, user: str) -> str:
    """The NATS password of ``user``: HMAC-SHA256(seed, user), URL-safe base64 (43 characters, 256 bits).

    Deterministic, so a deploy needs no state beyond the seed; distinct per user, so one leaked password says
    nothing about another. ``seed`` is the stack secret ``kumeo:natsAuthSeed`` (at least 16 characters; use e.g.
    ``openssl rand -base64 32``).
    """
    if not isinstance(seed, str) or len(seed) < _MIN_SEED_LENGTH:
        raise ValueError(
            f"the NATS auth seed must be a string of at least {_MIN_SEED_LENGTH} characters; set one with "
            "`pulumi config set --secret kumeo:natsAuthSeed \"$(openssl rand -base64 32)\"`"
        )
    digest = hmac.new(seed.encode(), b"kumeo-nats-password\0" + user.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def identities(plan: Plan) -> list[NatsIdentity]:
    """Every identity of the Plan: its agents in workflow and agent order, then each workflow's gateway."""
    out = []
    for wf in plan.workflows:
        for agent in wf.agents:
            out.append(agent.identity or agent_identity(wf.slug, agent, wf.key_values))
        if wf.gateway_identity is not None:
            out.append(wf.gateway_identity)
    return out


def derive_passwords(plan: Plan, seed: str, *, deployer: bool = True) -> dict[str, str]:
    """user → password for every agent of the Plan (and the deployer), derived from ``seed``."""
    users = [i.user for i in identities(plan)] + ([DEPLOYER_USER] if deployer else [])
    return {user: derive_password(seed, user) for user in users}


# -- Kubernetes: what a Deployment reads -----------------------------------------------------------------------


def identity_env(identity: NatsIdentity, secret_name: str) -> list[dict[str, Any]]:
    """The env of an agent container: its user, its password by ``secretKeyRef`` (key: the user), its inbox prefix."""
    return [
        {"name": "NATS_USER", "value": identity.user},
        {"name": "NATS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": identity.user}}},
        {"name": "NATS_INBOX_PREFIX", "value": identity.inbox_prefix},
    ]


def tls_mount(tls: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(env, volumeMount, volume) mounting the NATS TLS Secret ``tls["secret"]`` read-only in an agent pod."""
    secret = tls.get("secret")
    if not isinstance(secret, str) or not secret:
        raise KumeoCompileError('PlatformSettings.nats_tls needs {"secret": "<name of the Secret with ca.crt…>"}')
    keys = {k: tls.get(k, default) for k, default in TLS_DEFAULT_KEYS.items()}
    if not keys["ca"]:
        raise KumeoCompileError("PlatformSettings.nats_tls needs a CA (key 'ca'): workers verify the server with it")
    if bool(keys["cert"]) != bool(keys["key"]):
        raise KumeoCompileError("PlatformSettings.nats_tls: give both 'cert' and 'key' (client certificate) or neither")
    env, items = [], []
    for var, part in (("NATS_TLS_CA", "ca"), ("NATS_TLS_CERT", "cert"), ("NATS_TLS_KEY", "key")):
        if keys[part]:
            env.append({"name": var, "value": f"{TLS_MOUNT_PATH}/{keys[part]}"})
            items.append({"key": keys[part], "path": keys[part]})
    mount = {"name": "nats-tls", "mountPath": TLS_MOUNT_PATH, "readOnly": True}
    volume = {"name": "nats-tls", "secret": {"secretName": secret, "items": items, "defaultMode": 0o440}}
    return env, mount, volume


# -- the nats-server configuration ---------------------------------------------------------------------------


def _q(text: str) -> str:
    """A quoted string of the NATS config format (``$`` inside quotes is literal, not a variable)."""
    return json.dumps(str(text))


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _permission(spec: Mapping[str, Any] | Sequence[str]) -> str:
    if isinstance(spec, Mapping):
        parts = [f"{k}: {_list(spec[k])}" for k in ("allow", "deny") if spec.get(k)]
        return "{ " + ", ".join(parts) + " }"
    return "{ allow: " + _list(list(spec)) + " }"


def _user_block(user: str, credential: tuple[str, str], permissions: Mapping[str, Any], indent: str) -> str:
    kind, value = credential
    lines = [f"{indent}{{"]
    if kind == "nkey":
        lines.append(f"{indent}  nkey: {_q(value)}")
        lines.append(f"{indent}  # user: {user}")
    else:
        lines.append(f"{indent}  user: {_q(user)}")
        lines.append(f"{indent}  password: {_q(value)}")
    lines.append(f"{indent}  permissions: {{")
    for key in ("publish", "subscribe"):
        if key in permissions:
            lines.append(f"{indent}    {key}: {_permission(permissions[key])}")
    if permissions.get("allow_responses"):
        value = permissions["allow_responses"]
        lines.append(f"{indent}    allow_responses: {'true' if value is True else json.dumps(value)}")
    lines.append(f"{indent}  }}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def render_nats_config(
    plan: Plan,
    passwords: Mapping[str, str] | None = None,
    *,
    nkeys: Mapping[str, str] | None = None,
    store_dir: str | None = "/data/jetstream",
    encrypt: bool = True,
    key_variable: str = "JETSTREAM_KEY",
    tls: Mapping[str, Any] | None = None,
    deployer: bool = True,
    extra_users: Sequence[Mapping[str, Any]] = (),
    monitoring_port: int | None = None,
) -> str:
    """The nats-server configuration enforcing the Plan's identities: users, JetStream at rest, TLS.

    ``passwords`` (user → password, plain or a bcrypt hash from ``nats server passwd``) or ``nkeys`` (user → public
    NKey ``U…``) give every agent user — and ``kumeo-deployer`` when ``deployer`` — a credential; a user with
    neither is an error. ``encrypt`` turns on JetStream encryption at rest (``cipher: chachapoly``) with the key
    read from the environment variable ``key_variable`` when the server starts, so the key is never in the file.
    ``tls`` — ``{"cert": path, "key": path, "ca": path, "verify": bool, "timeout": seconds}`` — makes the server
    speak TLS (``verify``: require client certificates signed by ``ca``). ``extra_users`` are added as given
    (``{"user", "password", "permissions"}``): producers of source subjects, consumers of targets, operators.
    ``monitoring_port`` opens the HTTP monitoring endpoint KEDA reads (8222 by convention). ``store_dir`` None
    leaves the JetStream directory to the command line (``-sd``).
    """
    passwords = dict(passwords or {})
    nkeys = dict(nkeys or {})

    def credential(user: str) -> tuple[str, str]:
        if user in nkeys:
            return "nkey", nkeys[user]
        if user in passwords:
            return "password", passwords[user]
        raise KumeoCompileError(
            f"NATS user {user!r} has no password or nkey; pass passwords=derive_passwords(plan, seed) or nkeys="
        )

    users: list[str] = []
    for identity in identities(plan):
        permissions = {"publish": identity.publish, "subscribe": identity.subscribe}
        users.append(_user_block(identity.user, credential(identity.user), permissions, "    "))
    if deployer:
        users.append(_user_block(DEPLOYER_USER, credential(DEPLOYER_USER), deployer_permissions(), "    "))
    for extra in extra_users:
        name = str(extra["user"])
        cred = ("nkey", str(extra["nkey"])) if extra.get("nkey") else ("password", str(extra.get("password", "")))
        users.append(_user_block(name, cred, extra.get("permissions") or {}, "    "))

    out = ["# nats-server configuration generated by Kumeo (kumeo_iac.compile.render_nats_config).",
           "# One user per agent, limited to its own subjects; see docs/security.md.", ""]
    out += ["jetstream {"]
    if store_dir is not None:  # None: the command line gives it (``nats-server -sd DIR``; both at once is an error)
        out.append(f"  store_dir: {_q(store_dir)}")
    if encrypt:
        if not key_variable.isidentifier():
            raise KumeoCompileError(f"key_variable {key_variable!r} must be an environment variable name")
        out += ["  cipher: chachapoly", f"  key: ${key_variable}"]
    out += ["}", ""]
    if monitoring_port is not None:
        out += [f"http_port: {int(monitoring_port)}", ""]
    if tls:
        missing = [k for k in ("cert", "key") if not tls.get(k)]
        if missing:
            raise KumeoCompileError(f"TLS for nats-server needs {' and '.join(missing)} (file paths)")
        out.append("tls {")
        out.append(f"  cert_file: {_q(tls['cert'])}")
        out.append(f"  key_file: {_q(tls['key'])}")
        if tls.get("ca"):
            out.append(f"  ca_file: {_q(tls['ca'])}")
        if tls.get("verify"):
            if not tls.get("ca"):
                raise KumeoCompileError("TLS verify (client certificates) needs the CA that signs them ('ca')")
            out.append("  verify: true")
        out.append(f"  timeout: {float(tls.get('timeout', 2.0)):g}")
        out += ["}", ""]
    out += ["authorization {", "  users: ["]
    out.append("\n".join(users))
    out += ["  ]", "}", ""]
    return "\n".join(out)


__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECT",
    "DEPLOYER_USER",
    "TLS_MOUNT_PATH",
    "agent_buckets",
    "agent_identity",
    "credentials_secret_name",
    "deployer_permissions",
    "derive_password",
    "derive_passwords",
    "identities",
    "identity_env",
    "inbox_prefix",
    "nats_user",
    "render_nats_config",
    "tls_mount",
]
