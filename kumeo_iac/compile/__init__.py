"""Spec → Plan: subjects, JetStream streams/consumers/KV buckets, images and Kubernetes objects, as pure data.

``compile_program(program, base_dir=…, settings=PlatformSettings(…))`` is pure and deterministic; the Plan it gives
drives the Pulumi components, `kumeo render` and the runtime alike.
"""

from kumeo_iac.compile._compile import compile_program
from kumeo_iac.compile._edge import EDGE_COMPONENT, edge_pod_plan, leaf_server_config
from kumeo_iac.compile._integrations import expand_integrations
from kumeo_iac.compile._kubernetes import FILES_CHECKSUM_ANNOTATION, SHARED_METRICS, apply_order, files_key, labels
from kumeo_iac.compile._names import (
    Subjects,
    bucket_name,
    dns_name,
    gateway_target_durable,
    slugify,
    stream_name,
    words,
)
from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    EdgePlan,
    EndpointPlan,
    KeyValuePlan,
    NatsIdentity,
    Plan,
    RoutePlan,
    StreamPlan,
    WorkflowPlan,
)
from kumeo_iac.compile._security import (
    DEPLOYER_USER,
    agent_buckets,
    credentials_secret_name,
    derive_password,
    derive_passwords,
    render_nats_config,
)
from kumeo_iac.compile._settings import PlatformSettings

__all__ = [
    "DEPLOYER_USER",
    "EDGE_COMPONENT",
    "FILES_CHECKSUM_ANNOTATION",
    "SHARED_METRICS",
    "AgentPlan",
    "ConsumerPlan",
    "EdgePlan",
    "EndpointPlan",
    "KeyValuePlan",
    "NatsIdentity",
    "Plan",
    "PlatformSettings",
    "RoutePlan",
    "StreamPlan",
    "Subjects",
    "WorkflowPlan",
    "agent_buckets",
    "apply_order",
    "bucket_name",
    "compile_program",
    "credentials_secret_name",
    "derive_password",
    "derive_passwords",
    "dns_name",
    "edge_pod_plan",
    "expand_integrations",
    "files_key",
    "gateway_target_durable",
    "labels",
    "leaf_server_config",
    "render_nats_config",
    "slugify",
    "stream_name",
    "words",
]
