"""Spec → Plan: subjects, JetStream streams/consumers/KV buckets, images and Kubernetes objects, as pure data.

``compile_program(program, base_dir=…, settings=PlatformSettings(…))`` is pure and deterministic; the Plan it gives
drives the Pulumi components, `kumeo render` and the runtime alike.
"""

from kumeo_iac.compile._compile import compile_program
from kumeo_iac.compile._names import Subjects, bucket_name, dns_name, slugify, stream_name
from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    EndpointPlan,
    KeyValuePlan,
    NatsIdentity,
    Plan,
    RoutePlan,
    StreamPlan,
    WorkflowPlan,
)
from kumeo_iac.compile._security import derive_password, derive_passwords, render_nats_config
from kumeo_iac.compile._settings import PlatformSettings

__all__ = [
    "AgentPlan",
    "ConsumerPlan",
    "EndpointPlan",
    "KeyValuePlan",
    "NatsIdentity",
    "Plan",
    "PlatformSettings",
    "RoutePlan",
    "StreamPlan",
    "Subjects",
    "WorkflowPlan",
    "bucket_name",
    "compile_program",
    "derive_password",
    "derive_passwords",
    "dns_name",
    "render_nats_config",
    "slugify",
    "stream_name",
]
