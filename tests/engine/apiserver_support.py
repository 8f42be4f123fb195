"""A real Kubernetes API server for the engine tests: Debian's ``etcd`` (package etcd-server) and ``kube-apiserver``
(built from the ``k8s.io/kubernetes`` module into ``.toolchain/bin`` by ``make test``, or alone by ``make
kube-apiserver``), both on loopback, and stacks of the fraud-detection example whose Kubernetes provider applies to it
instead of rendering YAML.

Only the API server runs: no controller manager, scheduler or kubelet. So every object is stored and validated by the
server as a cluster would (schemas, defaulting, admission, CRDs), but no ReplicaSet, Pod or endpoint ever appears,
nothing reports a status, and nothing is garbage-collected (a foreground delete never finishes, so the tests do not
destroy their stacks; the servers stop after their test module, their data stays in pytest's temporary directory).

Everything is local: a throwaway CA signs the serving certificate and the admin's client certificate
(``O=system:masters``, which RBAC lets do anything); the kubeconfig the provider reads names both.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from engine_support import REPO, TIMINGS, TOOLCHAIN_BIN, Stack

KUBE_APISERVER = TOOLCHAIN_BIN / "kube-apiserver"
#: Debian's etcd-server installs /usr/bin/etcd; KUMEO_ETCD points at another one.
ETCD = os.environ.get("KUMEO_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
#: The Kubernetes release the wrapper module pins (tools/toolchain/kube-apiserver/go.mod).
WRAPPER_GO_MOD = REPO / "tools" / "toolchain" / "kube-apiserver" / "go.mod"
SERVICE_CIDR = "10.0.0.0/24"
#: How long etcd and the API server may take to become ready (a cold API server bootstraps RBAC, priority levels…).
START_TIMEOUT = 120.0


def pinned_kubernetes_version() -> str:
    for line in WRAPPER_GO_MOD.read_text().splitlines():
        words = line.split()
        if words[:2] == ["require", "k8s.io/kubernetes"]:
            return words[2]
        if words and words[0] == "k8s.io/kubernetes" and len(words) > 1 and words[1].startswith("v"):
            return words[1]
    raise AssertionError(f"no k8s.io/kubernetes require in {WRAPPER_GO_MOD}")


def missing_cluster_binaries() -> list[str]:
    """What is missing to start the cluster, each with how to get it."""
    missing = []
    if not os.access(KUBE_APISERVER, os.X_OK):
        missing.append(f"{KUBE_APISERVER} (run `make kube-apiserver`; `make test` builds it)")
    if not (os.path.isfile(ETCD) and os.access(ETCD, os.X_OK)):
        missing.append(f"etcd at {ETCD} (run `apt-get install etcd-server` as root; `make test` installs it)")
    return missing



def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- certificates and keys ----------------------------------------------------------------------------------------


class Pki:
    """A CA, the API server's serving certificate (127.0.0.1, localhost), an admin client certificate in
    ``system:masters`` and the service-account signing key, as PEM files under ``root``."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        now = datetime.datetime.now(datetime.UTC)

        def write_key(path: Path, key: Any) -> Path:
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)
            return path

        def name(cn: str, org: str | None = None) -> x509.Name:
            attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
            if org:
                attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
            return x509.Name(attrs)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name("kumeo-test-ca")
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(subject: x509.Name, usage: Any, sans: list[x509.GeneralName] | None = None) -> tuple[bytes, Any]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            )
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), key

        serving, serving_key = leaf(name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, [
            x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        ])
        admin, admin_key = leaf(name("kumeo-test-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)

        self.ca_cert = root / "ca.crt"
        self.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.serving_cert = root / "apiserver.crt"
        self.serving_cert.write_bytes(serving)
        self.serving_key = write_key(root / "apiserver.key", serving_key)
        self.admin_cert = root / "admin.crt"
        self.admin_cert.write_bytes(admin)
        self.admin_key = write_key(root / "admin.key", admin_key)
        self.service_account_key = write_key(root / "sa.key", rsa.generate_private_key(65537, 2048))

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return context


# -- the two servers ----------------------------------------------------------------------------------------------


class Process:
    """A server started in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def log_tail(self, limit: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-limit:]

    def check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with status {self.proc.returncode}\n`{' '.join(self.argv)}`\n"
                                 f"--- {self.log} ---\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def wait_until(what: str, ready: Any, process: Process, timeout: float = START_TIMEOUT) -> float:
    """Poll ``ready()`` until it is true; fail with the server's log when it exits or ``timeout`` passes."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        process.check_running()
        try:
            if ready():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{what} not ready within {timeout:.0f}s (last error: {last})\n--- {process.log} ---\n"
                         f"{process.log_tail()}")


class Cluster:
    """etcd and kube-apiserver on loopback, a kubeconfig for them, and an HTTPS client authenticated as admin."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = Pki(root / "pki")
        self.etcd_port, self.peer_port, self.port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = root / "kubeconfig.yaml"
        #: Seconds each server took to become ready.
        self.startup: dict[str, float] = {}
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.etcd = Process("etcd", [
            ETCD, "--name", "kumeo-test", "--data-dir", str(root / "etcd"),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kumeo-test={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn",
        ], root / "etcd.log")
        pki = self.pki
        self.apiserver = Process("kube-apiserver", [
            str(KUBE_APISERVER),
            "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--cert-dir", str(root / "apiserver-certs"),
            "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
            "--client-ca-file", str(pki.ca_cert),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki.service_account_key),
            "--service-account-signing-key-file", str(pki.service_account_key),
            "--service-cluster-ip-range", SERVICE_CIDR,
            # The `kubernetes` Service's endpoints would have to name a non-loopback address; no pod needs it.
            "--endpoint-reconciler-type", "none",
            "--profiling=false",
        ], root / "kube-apiserver.log")
        self._client: httpx.Client | None = None
        self._resources: dict[str, list[dict[str, Any]]] = {}

    # -- life -----------------------------------------------------------------------------------------------------

    def start(self) -> Cluster:
        self.etcd.start()
        self.startup["etcd"] = wait_until(
            "etcd", lambda: httpx.get(f"{self.etcd_url}/health", timeout=2).json().get("health") == "true",
            self.etcd)
        self.apiserver.start()
        self.startup["kube-apiserver"] = wait_until(
            "kube-apiserver", lambda: self.client.get("/readyz", timeout=5).status_code == 200, self.apiserver)
        self.write_kubeconfig()
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        self.apiserver.stop()
        self.etcd.stop()

    def write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            import base64

            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "kumeo-test",
            "clusters": [{"name": "kumeo-test", "cluster": {
                "server": self.url, "certificate-authority-data": b64(self.pki.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": b64(self.pki.admin_cert), "client-key-data": b64(self.pki.admin_key)}}],
            "contexts": [{"name": "kumeo-test", "context": {"cluster": "kumeo-test", "user": "admin"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    # -- the API ----------------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, verify=self.pki.ssl_context(), timeout=30)
        return self._client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.apiserver.check_running()
        return self.client.request(method, path, **kwargs)

    def version(self) -> dict[str, Any]:
        return dict(self.request("GET", "/version").raise_for_status().json())

    def resource_path(self, api_version: str, kind: str, namespace: str | None = None) -> str:
        """``/apis/apps/v1/namespaces/NS/deployments``: the collection of ``kind``, found by discovery."""
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if base not in self._resources:
            response = self.request("GET", base)
            if response.status_code == 404:
                raise AssertionError(f"the API server does not serve {api_version} (is its CRD installed?)")
            self._resources[base] = response.raise_for_status().json()["resources"]
        for resource in self._resources[base]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                if resource["namespaced"] and namespace:
                    return f"{base}/namespaces/{namespace}/{resource['name']}"
                return f"{base}/{resource['name']}"
        raise AssertionError(f"the API server has no {kind} in {api_version}")

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as the server stores it, or None."""
        response = self.request("GET", f"{self.resource_path(api_version, kind, namespace)}/{name}")
        if response.status_code == 404:
            return None
        return dict(response.raise_for_status().json())

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        response = self.request("GET", self.resource_path(api_version, kind, namespace)).raise_for_status()
        return list(response.json()["items"])

    def dry_run_apply(self, obj: Mapping[str, Any], field_manager: str = "kumeo-test") -> httpx.Response:
        """A server-side apply of ``obj`` with ``dryRun=All``, as the Pulumi provider applies (it uses server-side
        apply): the server validates the object as it would store it, nothing is stored."""
        metadata = obj.get("metadata") or {}
        path = f"{self.resource_path(obj['apiVersion'], obj['kind'], metadata.get('namespace'))}/{metadata['name']}"
        return self.request(
            "PATCH", path, params={"dryRun": "All", "fieldManager": field_manager, "force": "true"},
            content=json.dumps(obj), headers={"Content-Type": "application/apply-patch+yaml"},
        )

    def install_crd(self, crd: Mapping[str, Any], timeout: float = 60) -> None:
        """Create a CustomResourceDefinition and wait until it is Established (its kind is served)."""
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        name = crd["metadata"]["name"]
        response = self.request("POST", path, json=dict(crd))
        if response.status_code != 409:  # 409: already there (another test module installed it)
            assert response.status_code == 201, f"creating CRD {name}: {response.status_code} {response.text}"
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            status = self.request("GET", f"{path}/{name}").raise_for_status().json().get("status") or {}
            if any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
                self._resources.pop(f"/apis/{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}", None)
                return
            time.sleep(0.25)
        raise AssertionError(f"CRD {name} not Established within {timeout}s: {status}")



def running_cluster(root: Path) -> Iterator[Cluster]:
    """A started cluster under ``root``, stopped (its data left to the temporary directory) when the generator
    closes. A missing binary fails with the command that provides it: these tests are never skipped."""
    import pytest

    missing = missing_cluster_binaries()
    if missing:
        pytest.fail("cannot start the Kubernetes API server: missing " + "; ".join(missing), pytrace=False)
    cluster = Cluster(root)
    try:
        cluster.start()
        TIMINGS.extend((f"{name} start (until ready)", seconds) for name, seconds in cluster.startup.items())
        yield cluster
    finally:
        cluster.stop()

# -- a stack whose Kubernetes provider talks to the cluster --------------------------------------------------------


CLUSTER_MAIN_PY = '''\
"""Test stack: the fraud-detection workflow applied to a real API server, streams on a real nats-server."""

import pulumi
import pulumi_kubernetes

from kumeo_iac.components import Workflow

KUBECONFIG = {kubeconfig!r}
WORKFLOW_FILE = {workflow_file!r}
#: A create/update timeout for every Kubernetes object (None: the provider's own, 10 minutes for a Deployment).
AWAIT_TIMEOUT = {await_timeout!r}


def kubernetes_timeouts(args):
    if AWAIT_TIMEOUT is None or not args.type_.startswith("kubernetes:"):
        return None
    timeouts = pulumi.CustomTimeouts(create=AWAIT_TIMEOUT, update=AWAIT_TIMEOUT)
    return pulumi.ResourceTransformResult(args.props, pulumi.ResourceOptions.merge(
        args.opts, pulumi.ResourceOptions(custom_timeouts=timeouts)))


cluster = pulumi_kubernetes.Provider("cluster", kubeconfig=KUBECONFIG)
workflow = Workflow.from_file("fraud", WORKFLOW_FILE, opts=pulumi.ResourceOptions(
    providers=[cluster], transforms=[kubernetes_timeouts]))

pulumi.export("namespace", workflow.namespace)
pulumi.export("streams", workflow.stream_names)
pulumi.export("deployments", workflow.deployments)
'''


class ClusterStack(Stack):
    """engine_support's ``Stack`` with a program whose Kubernetes provider reads ``kubeconfig`` (nothing is
    rendered to a directory)."""

    def __init__(self, root: Path, env: Mapping[str, str], cluster: Cluster, *, project: str,
                 await_timeout: str | None = None) -> None:
        super().__init__(root, env, project=project)
        self.cluster = cluster
        self.await_timeout = await_timeout
        # The provider copies a kubeconfig it is given into a temporary file (for Helm) at every start and never
        # removes it: keep those copies in the stack's directory, not in /tmp.
        self.env["TMPDIR"] = str(root / "tmp")

    def create(self, config: Mapping[str, str] | None = None) -> ClusterStack:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        super().create(config)
        (self.project_dir / "__main__.py").write_text(CLUSTER_MAIN_PY.format(
            kubeconfig=str(self.cluster.kubeconfig), workflow_file=str(self.workflow_file),
            await_timeout=self.await_timeout,
        ))
        return self

    def kubernetes_inputs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(urn, object)`` of every Kubernetes object in the state, as the program gave it to the provider."""
        resources = self.export()["deployment"].get("resources") or []
        for resource in resources:
            kind = resource["type"]
            if kind.startswith("kubernetes:") and not kind.startswith("pulumi:providers:"):
                inputs = {k: v for k, v in (resource.get("inputs") or {}).items() if not k.startswith("__")}
                yield resource["urn"], inputs


# -- the KEDA ScaledObject CRD ------------------------------------------------------------------------------------


def keda_scaledobject_crd() -> dict[str, Any]:
    """A trimmed ``scaledobjects.keda.sh`` CRD: KEDA's own names and version, a structural schema of the fields
    Kumeo writes (those of tests/scenarios/_schemas/keda-scaledobject.json, typed as KEDA types them), which the
    server enforces: a server-side apply with a field it does not declare or a value of the wrong type fails. The
    rest of KEDA's schema (advanced, fallback, status…) is left out."""
    int32 = {"type": "integer", "format": "int32"}
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    spec = {
        "type": "object",
        "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": {
                "type": "object", "required": ["name"],
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "name": {"type": "string"}, "envSourceContainerName": {"type": "string"}},
            },
            "minReplicaCount": {**int32, "minimum": 0},
            "maxReplicaCount": {**int32, "minimum": 1},
            "idleReplicaCount": int32,
            "pollingInterval": {**int32, "minimum": 1},
            "cooldownPeriod": {**int32, "minimum": 0},
            "triggers": {
                "type": "array", "minItems": 1,
                "items": {
                    "type": "object", "required": ["type", "metadata"],
                    "properties": {"type": {"type": "string"}, "name": {"type": "string"},
                                   "metadata": string_map, "metricType": {"type": "string"},
                                   "useCachedMetrics": {"type": "boolean"}},
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {
            "group": "keda.sh",
            "names": {"kind": "ScaledObject", "listKind": "ScaledObjectList", "plural": "scaledobjects",
                      "singular": "scaledobject", "shortNames": ["so"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object", "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }
