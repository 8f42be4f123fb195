"""A platform stack that composes Kumeo with the rest of its infrastructure.

One Pulumi program owns a namespace, a NATS server with JetStream from the official NATS Helm chart, and the
fraud-detection workflow wired to that server. Kumeo is one component among others: it takes the namespace and the
NATS URL as Outputs of the resources declared here, and waits for the Helm release before creating anything.

    cd examples/platform_stack
    pulumi stack init dev
    pulumi config set kumeo:jetstreamUrl nats://127.0.0.1:4222   # where this machine reaches NATS (port-forward)
    pulumi preview && pulumi up
"""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from kumeo_iac.components import Workflow

NATS_CHART_REPO = "https://nats-io.github.io/k8s/helm/charts/"
WORKFLOW_FILE = Path(__file__).resolve().parents[1] / "fraud_detection" / "fraud_detection.kumeo"


def nats_values() -> dict:
    """Helm values for the `nats` chart: JetStream on, file storage on a PVC, monitoring for KEDA's scaler."""
    return {
        "config": {
            "jetstream": {"enabled": True, "fileStore": {"pvc": {"size": "10Gi"}}},
            "monitor": {"enabled": True},
        },
    }


def program() -> dict:
    """Declare the platform; returns its main resources (tests call this under Pulumi mocks)."""
    config = pulumi.Config("platform")
    namespace = k8s.core.v1.Namespace(
        "platform",
        metadata={"name": config.get("namespace") or "kumeo-platform",
                  "labels": {"app.kubernetes.io/part-of": "kumeo"}},
    )
    nats = k8s.helm.v3.Release(
        "nats",
        name="nats",
        chart="nats",
        version=config.get("natsChartVersion"),  # pin it per stack: pulumi config set platform:natsChartVersion …
        repository_opts={"repo": NATS_CHART_REPO},
        namespace=namespace.metadata.name,
        values=nats_values(),
    )
    # The chart's client Service is named after the release and listens on 4222.
    nats_url = pulumi.Output.concat(
        "nats://", nats.status.name, ".", nats.status.namespace, ".svc.cluster.local:4222"
    )
    workflow = Workflow.from_file(
        "fraud-detection",
        WORKFLOW_FILE,
        namespace=namespace.metadata.name,
        nats_url=nats_url,
        opts=pulumi.ResourceOptions(depends_on=[nats]),
    )
    pulumi.export("namespace", namespace.metadata.name)
    pulumi.export("natsUrl", nats_url)
    pulumi.export("deployments", workflow.deployments)
    pulumi.export("subjects", workflow.subjects)
    return {"namespace": namespace, "nats": nats, "workflow": workflow}


if __name__ == "__main__":  # Pulumi runs this file as __main__
    program()
