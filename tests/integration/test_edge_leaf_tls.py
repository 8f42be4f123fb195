"""The edge profile's leaf link to a hub served over TLS with a certificate from a private CA (as a cert-manager CA
issues it): the hub is a real nats-server in operator (JWT) mode whose leafnode port requires TLS, with a server
certificate for 127.0.0.1 signed by a CA made here (``cryptography``); the leaf runs the config the compiler renders
for a site, with its credentials file and, with ``leaf.ca_secret``, the CA file the pod mounts from that Secret.

With ``ca_secret`` the leaf trusts the hub's CA: the link comes up (the hub's ``/leafz`` lists it, bound to the
site user's account) and results published at the leaf reach the Plan's hub stream (sourcing the leaf's streams
through ``$JS.<domain>.API``) exactly once. Compiled without ``ca_secret`` the leaf trusts only the system's roots:
it refuses the hub's certificate, logs why, and the link never comes up."""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nats_jwt_support import Trust, hub_config
from test_edge_leaf import DOMAIN, WORKFLOW, container, until
from test_edge_leaf_auth import (
    REWRITTEN,
    Site,
    leaf_bound,
    leaf_server,
    mounted_credentials,
    results_reach_the_hub_once,
)

from kumeo_iac.compile import PlatformSettings, WorkflowPlan, compile_program
from kumeo_iac.lang import parse
from kumeo_iac.local import NatsServer, free_port

pytestmark = [pytest.mark.nats, pytest.mark.timeout(300)]

CA_SECRET = "hub-ca"
#: What the leaf's nats-server (Go's crypto/x509) logs when the hub's certificate is not signed by a CA it trusts.
UNTRUSTED = "certificate signed by unknown authority"
#: The leaf config's remote TLS CA file: rewritten to this test's file, like the credentials file's path.
CA_FILE_KEY = "leafnodes.remotes.0.tls.ca_file"


@dataclass(frozen=True)
class Pki:
    """A private CA and a hub server certificate it signed for 127.0.0.1, as PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_pki(directory: Path) -> Pki:
    """A CA (self-signed, may sign certificates) and a server certificate for IP 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumeo-test-private-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumeo-test-hub")]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.crt", directory / "hub.crt", directory / "hub.key")
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.server_key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return pki


def compiled(leafnode_port: int, ca_secret: str | None) -> WorkflowPlan:
    """The site's Plan (test_edge_leaf's workflow), with ``leaf.ca_secret`` when given."""
    text = WORKFLOW.format(port=leafnode_port, domain=DOMAIN)
    if ca_secret is not None:
        written = 'credentials_secret: "site-leaf",'
        assert written in text
        text = text.replace(written, f'{written} ca_secret: "{ca_secret}",')
    result = parse(text, "site.kumeo")
    assert result.ok, [d.format() for d in result.diagnostics]
    return compile_program(result.program, settings=PlatformSettings(for_cluster=True)).workflows[0]


def mounted_ca(plan: WorkflowPlan) -> str:
    """The path at which the rendered pod's ``nats`` container finds the CA file of ``leaf.ca_secret``'s Secret."""
    (workload,) = [o for o in plan.kubernetes if o["kind"] == "StatefulSet"]
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "leaf-ca"]
    assert volume["secret"]["secretName"] == CA_SECRET
    (item,) = volume["secret"]["items"]
    (mount,) = [m for m in container(plan, "nats")["volumeMounts"] if m["name"] == "leaf-ca"]
    return f"{mount['mountPath']}/{item['path']}"


@dataclass
class TlsHub:
    """A hub in operator mode whose leafnode port requires TLS with a certificate of the private CA."""

    trust: Trust
    hub: NatsServer
    hub_monitor: str
    leafnode_port: int
    pki: Pki
    tmp_path: Path
    leafs: list[NatsServer] = field(default_factory=list)

    def site(self, ca_secret: str | None) -> Site:
        """A site compiled with (or without) ``ca_secret``, its leaf started on exactly the compiled config but for
        this test's ports, store, server name and the paths of the credentials and CA files."""
        plan = compiled(self.leafnode_port, ca_secret)
        assert plan.edge is not None and plan.edge.domain == DOMAIN
        compiled_config = json.loads(plan.edge.server_config)
        config = copy.deepcopy(compiled_config)
        (remote,) = config["leafnodes"]["remotes"]
        assert remote["credentials"] == mounted_credentials(plan), "the config names the file the pod mounts"
        creds_file = self.tmp_path / "leaf.creds"
        creds_file.write_text(self.trust.creds())
        remote["credentials"] = str(creds_file)
        rewritten = set(REWRITTEN)
        if ca_secret is None:
            assert "tls" not in remote, "without ca_secret the compiled remote has no TLS settings"
        else:
            assert remote["tls"] == {"ca_file": mounted_ca(plan)}, "the config names the CA file the pod mounts"
            remote["tls"]["ca_file"] = str(self.pki.ca_cert)
            rewritten.add(CA_FILE_KEY)
        leaf = leaf_server(self.tmp_path, compiled_config, config, rewritten)
        self.leafs.append(leaf)
        leaf.start()
        return Site(plan, self.trust, self.hub, self.hub_monitor, self.tmp_path, leaf)


@pytest.fixture
def tls_hub(tmp_path: Path) -> Iterator[TlsHub]:
    leafnode_port, monitor_port = free_port(), free_port()
    pki = make_pki(tmp_path)
    trust = Trust.create()
    config: dict[str, Any] = json.loads(hub_config(trust, operator_file=tmp_path / "operator.jwt",
                                                   leafnode_port=leafnode_port, monitor_port=monitor_port))
    # Generous handshake timeout: another build may load this 2-core machine.
    config["leafnodes"]["tls"] = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
                                  "timeout": 10}
    conf = tmp_path / "hub.conf"
    conf.write_text(json.dumps(config, indent=2))
    hub = NatsServer(config_file=conf, store_dir=tmp_path / "hub", server_name="hub", ready_timeout_s=30)
    hub.start()
    found = TlsHub(trust, hub, f"http://127.0.0.1:{monitor_port}", leafnode_port, pki, tmp_path)
    try:
        yield found
    finally:
        for leaf in found.leafs:
            leaf.cleanup()
        hub.cleanup()


async def test_with_the_hubs_ca_the_leaf_links_over_tls_and_its_results_reach_the_hub_once(
        tls_hub: TlsHub) -> None:
    site = tls_hub.site(CA_SECRET)
    await until("the hub accepted the leaf over TLS, bound to the user's account", lambda: leaf_bound(site))
    await results_reach_the_hub_once(site)
    assert site.leaf is not None and UNTRUSTED not in site.leaf.read_log()


async def refused(leaf: NatsServer, what: str, times: int) -> None:
    """Bounded by events, not a sleep: the leaf logs the hub's certificate as untrusted ``times`` more times (each a
    refused attempt)."""
    so_far = leaf.read_log().count(UNTRUSTED)

    async def more() -> bool:
        return leaf.read_log().count(UNTRUSTED) >= so_far + times

    await until(what, more)


async def test_without_the_hubs_ca_the_leaf_refuses_the_hubs_certificate_and_never_links(tls_hub: TlsHub) -> None:
    site = tls_hub.site(None)
    assert site.leaf is not None
    await refused(site.leaf, "the leaf logged the hub's certificate as untrusted", 1)
    await refused(site.leaf, "two more refused attempts", 2)
    assert site.leafz()["leafs"] == []


async def test_the_leaf_reads_the_ca_file_when_it_starts_so_a_replaced_ca_needs_a_restart(tls_hub: TlsHub) -> None:
    """A leaf started with another CA's certificate in the mounted file refuses the hub; the right CA written to
    the file (as an updated Secret) is not read by the running leaf (nats-server builds its TLS config when it
    loads its config), and is once the leaf restarts (as a restarted pod)."""
    right_ca = tls_hub.pki.ca_cert.read_bytes()
    tls_hub.pki.ca_cert.write_bytes(make_pki(tls_hub.tmp_path / "other").ca_cert.read_bytes())
    site = tls_hub.site(CA_SECRET)
    leaf = site.leaf
    assert leaf is not None
    await refused(leaf, "the leaf logged the hub's certificate as untrusted", 1)
    tls_hub.pki.ca_cert.write_bytes(right_ca)
    await refused(leaf, "two more refused attempts with the right CA in the file", 2)
    assert site.leafz()["leafs"] == []
    leaf.restart()
    await until("the restarted leaf linked over TLS", lambda: leaf_bound(site))
