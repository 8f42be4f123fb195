"""The edge profile's leaf link against a hub that requires credentials: the leaf nats-server runs the config the
compiler renders for a site (its one leafnode remote authenticates with the credentials file the pod mounts from
the site's Secret), and the hub is a real nats-server in operator (JWT) mode: an operator, an account with
JetStream, a user whose ``.creds`` file the leaf is given (resolver MEMORY, the accounts preloaded). The nkeys and
JWTs are made here (nats_jwt_support).

With the user's credentials the leaf's link comes up, bound to the user's account, and results published at the
leaf reach the hub stream of the Plan (sourcing the leaf's streams through ``$JS.<domain>.API``) exactly once. With
wrong credentials (a user of an account the hub does not know, the right JWT with another user's seed, a corrupted
JWT) the hub refuses the link, the leaf says so in its log, and nothing reaches the hub; once the file holds the
right credentials (as a rotated Secret would), the leaf connects without a restart and the waiting results arrive,
each once."""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats_jwt_support import ACCOUNT, USER, NKey, Trust, creds_text, hub_config, user_jwt
from test_edge_leaf import DOMAIN, compiled, container, stream_count, until

from kumeo_iac.compile import WorkflowPlan
from kumeo_iac.errors import KumeoError
from kumeo_iac.jetstream import connect, ensure_stream, stream_config_from_inputs
from kumeo_iac.local import NatsServer, free_port

pytestmark = [pytest.mark.nats, pytest.mark.timeout(300)]

N = 30
#: What the leaf logs each time the hub refuses its credentials.
REFUSED = "Leafnode Error 'Authorization Violation'"
#: What this test rewrites in the compiled leaf config (its own ports and name, the store NatsServer passes with
#: -sd, the credentials file's path); everything else runs as compiled.
REWRITTEN = {"port", "http_port", "server_name", "jetstream.store_dir", "leafnodes.remotes.0.credentials"}


@dataclass
class Site:
    """A hub in operator mode, the Plan of a site linked to it, and the leaf once started."""

    plan: WorkflowPlan
    trust: Trust
    hub: NatsServer
    hub_monitor: str
    tmp_path: Path
    leaf: NatsServer | None = None

    @property
    def creds_file(self) -> Path:
        return self.tmp_path / "leaf.creds"

    def start_leaf(self, creds: str) -> NatsServer:
        """Start the leaf on the compiled config with ``creds`` as its credentials file."""
        assert self.plan.edge is not None
        compiled_config = json.loads(self.plan.edge.server_config)
        config = copy.deepcopy(compiled_config)
        (remote,) = config["leafnodes"]["remotes"]
        assert remote["credentials"] == mounted_credentials(self.plan), "the config names the file the pod mounts"
        self.creds_file.write_text(creds)
        remote["credentials"] = str(self.creds_file)
        self.leaf = leaf_server(self.tmp_path, compiled_config, config, REWRITTEN)
        self.leaf.start()
        return self.leaf

    def leafz(self) -> dict[str, Any]:
        """The hub's ``/leafz``: the leaf connections it accepted, each with the account it bound."""
        with urllib.request.urlopen(f"{self.hub_monitor}/leafz", timeout=5) as response:
            return dict(json.load(response))

    def refusals(self) -> int:
        """How often the leaf has logged the hub refusing its credentials."""
        assert self.leaf is not None
        return self.leaf.log_path.read_text(errors="replace").count(REFUSED)


def leaf_server(tmp_path: Path, compiled_config: dict[str, Any], config: dict[str, Any],
                rewritten: set[str]) -> NatsServer:
    """A leaf nats-server (not started) on ``config``: the compiled one with only the ``rewritten`` keys changed,
    given its own ports, name and store here."""
    assert config["jetstream"].pop("store_dir") == "/var/lib/kumeo/leaf"  # NatsServer passes its own (-sd)
    leaf_port = free_port()
    config.update(port=leaf_port, http_port=free_port(), server_name="site1-leaf")
    assert differences(compiled_config, config) == rewritten
    conf = tmp_path / "leaf.conf"
    conf.write_text(json.dumps(config))
    return NatsServer(config_file=conf, port=leaf_port, store_dir=tmp_path / "leaf", server_name="site1-leaf",
                      ready_timeout_s=30)


def differences(a: Any, b: Any, path: str = "") -> set[str]:
    """The dotted paths at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {d for k in a.keys() | b.keys() for d in differences(a.get(k), b.get(k), f"{path}{k}.")}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}{i}.")}
    return set() if a == b else {path.rstrip(".")}


def mounted_credentials(plan: WorkflowPlan) -> str:
    """The path at which the rendered pod's ``nats`` container finds the credentials file of the site's Secret."""
    (workload,) = [o for o in plan.kubernetes if o["kind"] == "StatefulSet"]
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "leaf-credentials"]
    (item,) = volume["secret"]["items"]
    (mount,) = [m for m in container(plan, "nats")["volumeMounts"] if m["name"] == "leaf-credentials"]
    return f"{mount['mountPath']}/{item['path']}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    leafnode_port, monitor_port = free_port(), free_port()
    plan = compiled(leafnode_port)
    assert plan.edge is not None and plan.edge.domain == DOMAIN
    trust = Trust.create()
    conf = tmp_path / "hub.conf"
    conf.write_text(hub_config(trust, operator_file=tmp_path / "operator.jwt", leafnode_port=leafnode_port,
                               monitor_port=monitor_port))
    hub = NatsServer(config_file=conf, store_dir=tmp_path / "hub", server_name="hub", ready_timeout_s=30)
    hub.start()
    s = Site(plan, trust, hub, f"http://127.0.0.1:{monitor_port}", tmp_path)
    try:
        yield s
    finally:
        if s.leaf is not None:
            s.leaf.cleanup()
        hub.cleanup()


@dataclass
class Links:
    """Connections to the leaf (no auth: the site's own clients, on the pod's loopback) and to the hub (as the
    account's user), and the streams this test reads."""

    leaf_js: Any
    hub_js: Any
    hub_stream: str
    targets: str
    dead_letters: str


async def open_links(site: Site, stack: list[Any]) -> Links:
    """Connections to both servers, and the workflow's streams on the leaf (what the edge process creates there)."""
    assert site.leaf is not None and site.plan.edge is not None
    leaf_nc = await connect(site.leaf.url, timeout_s=30, name="test-leaf", max_reconnect_attempts=-1)
    stack.append(leaf_nc)
    hub_nc = await connect(site.hub.url, timeout_s=30, name="test-hub", max_reconnect_attempts=-1,
                           **site.trust.client_auth())
    stack.append(hub_nc)
    leaf_js = leaf_nc.jetstream()
    for stream in site.plan.streams:
        await ensure_stream(leaf_js, stream_config_from_inputs(dict(stream.config)))
    (hub_stream,) = site.plan.edge.hub_streams
    (targets,) = [s.name for s in site.plan.streams if s.role == "targets"]
    (dlq_filter,) = [s["filter_subject"] for s in hub_stream.config["sources"] if s.get("filter_subject")]
    return Links(leaf_js, hub_nc.jetstream(), hub_stream.name, targets, dlq_filter.replace(">", "clean"))


async def create_hub_stream(site: Site, links: Links) -> None:
    """The Plan's hub stream on the hub (what the deployer creates there): it sources the leaf's streams."""
    assert site.plan.edge is not None
    (hub_stream,) = site.plan.edge.hub_streams
    await ensure_stream(links.hub_js, stream_config_from_inputs(dict(hub_stream.config)))


async def publish_at_leaf(links: Links, plan: WorkflowPlan) -> None:
    """``N`` results on the workflow's target subject and one dead letter, as the edge process would publish them."""
    (target,) = plan.targets
    for i in range(N):
        ack = await links.leaf_js.publish(target.subject, json.dumps({"id": i}).encode(),
                                          headers={"Nats-Msg-Id": f"r{i}"}, timeout=10)
        assert not ack.duplicate
    await links.leaf_js.publish(links.dead_letters, json.dumps({"id": "dead"}).encode(), timeout=10)
    assert await stream_count(links.leaf_js, links.targets) == N


async def hub_ids(links: Links, count: int) -> Counter[str]:
    """The ``id`` of every message of the hub stream (read with an ephemeral ordered consumer)."""
    sub = await links.hub_js.subscribe(">", stream=links.hub_stream, ordered_consumer=True)
    ids: Counter[str] = Counter()
    try:
        for _ in range(count):
            msg = await sub.next_msg(timeout=10)
            ids[str(json.loads(msg.data)["id"])] += 1
    finally:
        await sub.unsubscribe()
    return ids


async def arrives_exactly_once(links: Links) -> None:
    """Every result and the dead letter reach the hub stream, and nothing more arrives after them."""
    expected = N + 1

    async def all_there() -> bool:
        count = await stream_count(links.hub_js, links.hub_stream)
        assert count <= expected, f"more messages at the hub than were published: {count} > {expected}"
        return count == expected

    await until(f"{expected} messages at the hub", all_there)
    await asyncio.sleep(2.0)  # nothing more arrives (no source redelivering)
    assert await stream_count(links.hub_js, links.hub_stream) == expected
    ids = await hub_ids(links, expected)
    assert set(ids) == {str(i) for i in range(N)} | {"dead"}
    assert max(ids.values()) == 1


async def leaf_bound(site: Site) -> bool:
    """The hub holds one leaf connection, bound to the account of the site's user."""
    leafs = (await asyncio.to_thread(site.leafz))["leafs"]
    return len(leafs) == 1 and leafs[0]["account"] == site.trust.account.public


async def refused(site: Site, at_least: int) -> bool:
    return site.refusals() >= at_least


async def closing(stack: list[Any]) -> None:
    for nc in reversed(stack):
        await nc.close()


async def results_reach_the_hub_once(site: Site) -> None:
    """Over a link that is up: the Plan's hub stream is created on the hub, results are published at the leaf, and
    each reaches the hub once."""
    stack: list[Any] = []
    try:
        links = await open_links(site, stack)
        await create_hub_stream(site, links)
        await publish_at_leaf(links, site.plan)
        await arrives_exactly_once(links)
    finally:
        await closing(stack)


async def test_with_the_users_credentials_the_leaf_links_and_its_results_reach_the_hub_once(site: Site) -> None:
    site.start_leaf(site.trust.creds())
    with pytest.raises(KumeoError):  # the hub really takes no one without credentials
        await connect(site.hub.url, timeout_s=5, name="anonymous")
    await until("the hub accepted the leaf, bound to the user's account", lambda: leaf_bound(site))
    await results_reach_the_hub_once(site)
    assert site.refusals() == 0


def rogue_account_user(trust: Trust) -> str:
    """A well-formed user of an account the hub does not know."""
    rogue, user = NKey.create(ACCOUNT), NKey.create(USER)
    return creds_text(user_jwt(rogue, user), user.seed)


def another_users_seed(trust: Trust) -> str:
    """The site user's JWT with the seed of another user (it cannot sign the hub's nonce as the JWT's subject)."""
    return creds_text(trust.user_jwt, NKey.create(USER).seed)


def corrupted_jwt(trust: Trust) -> str:
    """The site user's JWT with its signature damaged."""
    head, claims, signature = trust.user_jwt.split(".")
    damaged = signature[:8] + ("A" if signature[8] != "A" else "B") + signature[9:]
    return creds_text(f"{head}.{claims}.{damaged}", trust.user.seed)


@pytest.mark.parametrize(("wrong", "leaf_says"), [
    (rogue_account_user, None),
    (another_users_seed, None),
    (corrupted_jwt, "has malformed user jwt"),
], ids=["unknown-account", "another-users-seed", "corrupted-jwt"])
async def test_with_wrong_credentials_the_hub_refuses_the_leaf_and_nothing_reaches_it(
        site: Site, wrong: Callable[[Trust], str], leaf_says: str | None) -> None:
    leaf = site.start_leaf(wrong(site.trust))
    stack: list[Any] = []
    try:
        await until("the leaf logged the hub refusing its credentials", lambda: refused(site, 1))
        links = await open_links(site, stack)
        await create_hub_stream(site, links)
        await publish_at_leaf(links, site.plan)
        # Bounded by events, not a sleep: two more attempts, made while the results wait at the leaf, refused.
        so_far = site.refusals()
        await until("two more refused attempts", lambda: refused(site, so_far + 2))
        assert (await asyncio.to_thread(site.leafz))["leafs"] == []
        assert await stream_count(links.hub_js, links.hub_stream) == 0
        assert await stream_count(links.leaf_js, links.targets) == N
        if leaf_says is not None:
            assert leaf_says in leaf.read_log()
    finally:
        await closing(stack)


async def test_a_refused_leaf_links_without_a_restart_once_its_credentials_file_is_right(site: Site) -> None:
    """As when the site's Secret is rotated: the leaf reads the file again at each attempt. The hub stream is
    created once the link is up, because a source that failed while the site was unreachable backs off (10 s per
    failure, up to 2 minutes, nats-server's stream.go) and would make this test wait for the server's timer."""
    site.start_leaf(another_users_seed(site.trust))
    stack: list[Any] = []
    try:
        await until("the leaf logged the hub refusing its credentials", lambda: refused(site, 1))
        links = await open_links(site, stack)
        await publish_at_leaf(links, site.plan)
        site.creds_file.write_text(site.trust.creds())
        await until("the hub accepted the leaf with the right credentials", lambda: leaf_bound(site))
        await create_hub_stream(site, links)
        await arrives_exactly_once(links)
    finally:
        await closing(stack)
