"""Kumeo's repository as a Pulumi project: deploys the fraud-detection example to the current stack.

    pulumi stack init dev
    pulumi config set kumeo:namespace fraud-detection
    pulumi config set kumeo:natsUrl nats://nats.nats.svc.cluster.local:4222
    pulumi config set kumeo:jetstreamUrl nats://127.0.0.1:4222   # where this machine reaches NATS (port-forward)
    pulumi preview && pulumi up

Settings come from stack config under ``kumeo:`` (see docs/deploy.md); tests run :func:`program` under mocks.
"""

from pathlib import Path

import pulumi

from kumeo_iac.components import Workflow

WORKFLOW_FILE = Path(__file__).resolve().parent / "examples" / "fraud_detection" / "fraud_detection.kumeo"


def program() -> Workflow:
    """Declare the stack: one Workflow component and its exports."""
    workflow = Workflow.from_file("fraud-detection", WORKFLOW_FILE)
    pulumi.export("namespace", workflow.namespace)
    pulumi.export("streams", workflow.stream_names)
    pulumi.export("subjects", workflow.subjects)
    pulumi.export("deployments", workflow.deployments)
    return workflow


if __name__ == "__main__":  # Pulumi runs this file as __main__
    program()
