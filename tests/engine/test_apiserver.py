"""The fraud-detection example under the real Pulumi engine, applied to a real Kubernetes API server (kube-apiserver
on etcd, no controllers or nodes: see apiserver_support.py).

What a rendered YAML directory cannot show: that the server accepts every object Kumeo registers (the provider
applies with server-side apply, which fails on any field the server's schema does not declare or a value of the wrong
type, then admission and validation run); that a second ``up`` finds nothing to change once the server has defaulted
the objects; that the ``kumeo:awaitKubernetes`` option decides whether ``up`` waits for pods (here none can ever run,
so with await on ``up`` must fail with the provider's timeout, and with it off it must finish); and that a KEDA
workflow applies once the ScaledObject CRD is installed.

Run: ``.venv/bin/python -m pytest tests/engine/test_apiserver.py`` (needs ``make toolchain kube-apiserver`` and
Debian's etcd-server; ``make test`` provides all three).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_support import (
    Cluster,
    ClusterStack,
    keda_scaledobject_crd,
    pinned_kubernetes_version,
    running_cluster,
)
from engine_support import expected_objects, stream_names

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

SKIP_AWAIT = "pulumi.com/skipAwait"
JETSTREAM_KINDS = ("stream", "consumer", "kv")
#: The create/update timeout the await-on stack gives every Kubernetes object (the provider's default for a
#: Deployment is 10 minutes).
AWAIT_TIMEOUT_S = 20


def kubernetes_expected(stack: ClusterStack, nats_url: str, namespace: str) -> set[tuple[str, str]]:
    """``(kind, name)`` of every Kubernetes object the workflow should register, its Namespace included."""
    expected = {k for k in expected_objects(stack.workflow_file, nats_url) if k[0] not in JETSTREAM_KINDS}
    return expected | {("Namespace", namespace)}


def applied(stack: ClusterStack) -> dict[tuple[str, str], dict[str, Any]]:
    """``(kind, name)`` → the object the program gave the provider, from the stack's state."""
    return {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in stack.kubernetes_inputs()}


def served(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any] | None:
    metadata = obj["metadata"]
    return cluster.get(obj["apiVersion"], obj["kind"], metadata["name"], metadata.get("namespace"))


def apply_error(cluster: Cluster, obj: dict[str, Any]) -> str:
    """The server's message for a (dry-run) server-side apply of ``obj``, or "" when it accepts it."""
    response = cluster.dry_run_apply(obj)
    return "" if response.status_code in (200, 201) else f"{response.status_code} {response.text}"


def applied_by_the_provider(got: dict[str, Any]) -> bool:
    """The object's fields are managed by the Pulumi provider through a server-side apply."""
    return any(m.get("manager", "").startswith("pulumi-kubernetes") and m.get("operation") == "Apply"
               for m in got["metadata"].get("managedFields") or [])


@pytest.fixture(scope="module")
def cluster(engine_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd and kube-apiserver on loopback for this module (about 3 s to start)."""
    yield from running_cluster(tmp_path_factory.mktemp("cluster"))


def test_the_api_server_is_the_pinned_release_and_validates_what_is_applied(cluster: Cluster) -> None:
    version = cluster.version()
    assert version["gitVersion"] == pinned_kubernetes_version(), version
    assert cluster.request("GET", "/readyz").status_code == 200
    # RBAC is on and bootstrapped; the admin is in system:masters.
    assert cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", "cluster-admin") is not None
    # What makes an accepted `up` mean something: an apply with a field the schema lacks, or an invalid value, fails.
    container: dict[str, Any] = {"name": "agent", "image": "ghcr.io/kumeo/agent:test"}
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "probe"}},
                 "template": {"metadata": {"labels": {"app": "probe"}}, "spec": {"containers": [container]}}},
    }
    assert apply_error(cluster, deployment) == ""
    container["imagePullPolice"] = "Always"
    assert "imagePullPolice: field not declared in schema" in apply_error(cluster, deployment)
    del container["imagePullPolice"]
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": "other"}  # the selector no longer matches
    assert "`selector` does not match template `labels`" in apply_error(cluster, deployment)


# -- await off: the fraud-detection workflow applied -----------------------------------------------------------


NAMESPACE = "fraud-detection"


@pytest.fixture(scope="module")
def stack(engine_env: dict[str, str], cluster: Cluster, jetstream: Any,
          tmp_path_factory: pytest.TempPathFactory) -> ClusterStack:
    return ClusterStack(tmp_path_factory.mktemp("stack"), engine_env, cluster, project="kumeo-apiserver").create({
        "kumeo:natsUrl": jetstream.url, "kumeo:jetstreamUrl": jetstream.url,
        "kumeo:createNamespace": "true", "kumeo:awaitKubernetes": "false",
    })


def test_up_with_await_off_applies_every_object_to_the_server(
    stack: ClusterStack, cluster: Cluster, jetstream: Any
) -> None:
    stack.up()

    objects = applied(stack)
    assert set(objects) == kubernetes_expected(stack, jetstream.url, NAMESPACE)
    problems = []
    for (kind, name), obj in sorted(objects.items()):
        got = served(cluster, obj)
        if got is None:
            problems.append(f"{kind} {name}: not on the server")
            continue
        annotations = got["metadata"].get("annotations") or {}
        if annotations.get(SKIP_AWAIT) != "true":
            problems.append(f"{kind} {name}: no {SKIP_AWAIT}=true annotation ({annotations})")
        if not applied_by_the_provider(got):
            problems.append(f"{kind} {name}: not server-side applied by the Pulumi provider "
                            f"({got['metadata'].get('managedFields')})")
    assert problems == []

    deployments = sorted(name for kind, name in objects if kind == "Deployment")
    assert sorted(stack.outputs()["deployments"]) == deployments
    for name in deployments:
        got = served(cluster, objects[("Deployment", name)])
        assert got is not None
        # Defaulted by the server (the YAML never says so), and never reconciled: no controller runs here, which is
        # why the stack must not wait for the Deployments.
        assert got["spec"]["strategy"]["type"] == "RollingUpdate"
        assert got["spec"]["template"]["spec"]["restartPolicy"] == "Always"
        assert not (got.get("status") or {}).get("readyReplicas"), got.get("status")
    assert cluster.list("apps/v1", "ReplicaSet", NAMESPACE) == []
    assert set(stack.outputs()["streams"]) <= stream_names(jetstream.url)


def test_a_preview_after_up_changes_nothing(stack: ClusterStack) -> None:
    # The server defaulted and normalised every object; the provider's diff must not mistake that for drift.
    preview = stack.preview()
    assert preview.changes() == [], preview.summary()


# -- await on: up waits for pods that can never run ------------------------------------------------------------


def test_up_with_await_on_fails_on_the_deployments_timeout_and_await_off_repairs_it(
    engine_env: dict[str, str], cluster: Cluster, nats_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    namespace = "fraud-await"
    stack = ClusterStack(tmp_path_factory.mktemp("await"), engine_env, cluster, project="kumeo-apiserver-await",
                         await_timeout=f"{AWAIT_TIMEOUT_S}s").create({
        "kumeo:natsUrl": nats_server.url, "kumeo:jetstreamUrl": nats_server.url,
        "kumeo:namespace": namespace, "kumeo:createNamespace": "true",
        # kumeo:awaitKubernetes unset: awaiting is the default.
    })
    started = time.monotonic()
    result = stack.pulumi("up", "--yes", "--skip-preview", check=False, timeout=600)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr

    assert result.returncode != 0, f"`pulumi up` succeeded although no pod can run:\n{output[-4000:]}"
    objects = applied(stack)
    deployments = sorted(name for kind, name in objects if kind == "Deployment")
    assert deployments, f"no Deployment reached the state:\n{output[-4000:]}"
    not_reported = [name for name in deployments if f"'{name}' timed out waiting to be Ready" not in output]
    assert not_reported == [], f"no timeout reported for {not_reported}:\n{output[-6000:]}"
    # It gave up after the timeout, not after the provider's 10 minutes; a slow machine gets generous slack.
    assert elapsed < 10 * AWAIT_TIMEOUT_S + 120, elapsed
    for name in deployments:
        got = served(cluster, objects[("Deployment", name)])
        assert got is not None, f"Deployment {name} is not on the server"
        assert SKIP_AWAIT not in (got["metadata"].get("annotations") or {})

    # The option is the way out: with await off, the same stack's next `up` only adds the annotation and finishes.
    stack.config_set("kumeo:awaitKubernetes", "false")
    stack.up()
    for name in deployments:
        got = served(cluster, objects[("Deployment", name)])
        assert got is not None and (got["metadata"].get("annotations") or {}).get(SKIP_AWAIT) == "true"


# -- KEDA: a workflow whose Plan needs a CRD ---------------------------------------------------------------------


def test_a_keda_workflow_applies_once_the_scaledobject_crd_is_installed(
    engine_env: dict[str, str], cluster: Cluster, nats_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    namespace = "fraud-keda"
    cluster.install_crd(keda_scaledobject_crd())
    # The CRD's schema is enforced, so the workflow's ScaledObjects applying below means they conform to it.
    probe: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "probe"}, "minReplicaCount": 1,
                 "triggers": [{"type": "nats-jetstream", "metadata": {"stream": "S", "consumer": "C"}}]},
    }
    assert apply_error(cluster, probe) == ""
    probe["spec"]["minReplicaCount"] = "one"
    assert "minReplicaCount: expected numeric" in apply_error(cluster, probe)
    stack = ClusterStack(tmp_path_factory.mktemp("keda"), engine_env, cluster, project="kumeo-apiserver-keda").create({
        "kumeo:natsUrl": nats_server.url, "kumeo:jetstreamUrl": nats_server.url,
        "kumeo:namespace": namespace, "kumeo:createNamespace": "true", "kumeo:awaitKubernetes": "false",
        "kumeo:keda": "true",
    })
    stack.up()

    objects = applied(stack)
    scaled = {name: obj for (kind, name), obj in objects.items() if kind == "ScaledObject"}
    deployments = {name for kind, name in objects if kind == "Deployment"}
    # One ScaledObject wherever the same workflow without KEDA has a HorizontalPodAutoscaler.
    without_keda = expected_objects(stack.workflow_file, nats_server.url)
    autoscaled = {name for kind, name in without_keda if kind == "HorizontalPodAutoscaler"}
    assert autoscaled and set(scaled) == autoscaled, sorted(objects)
    assert not any(kind == "HorizontalPodAutoscaler" for kind, _ in objects)
    assert set(scaled) <= deployments
    for name, obj in scaled.items():
        got = served(cluster, obj)
        assert got is not None, f"ScaledObject {name} is not on the server"
        assert got["spec"]["scaleTargetRef"]["name"] == name
        triggers = got["spec"]["triggers"]
        assert triggers and {t["type"] for t in triggers} == {"nats-jetstream"}
        assert all(t["metadata"]["consumer"] and t["metadata"]["stream"] for t in triggers)
        assert applied_by_the_provider(got)
    assert cluster.list("autoscaling/v2", "HorizontalPodAutoscaler", namespace) == []
