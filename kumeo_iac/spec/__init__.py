"""The typed model of a Kumeo program (the Spec), shared by the importer, the Python DSL and every later stage."""

from kumeo_iac.spec._agent_config import (
    BayesianNetworkConfig,
    CustomConfig,
    CustomSettings,
    DataNormalizerConfig,
    DataProcessorConfig,
    HumanReviewConfig,
    LLMConfig,
    MLModelConfig,
    NoConfig,
    NoSettings,
)
from kumeo_iac.spec._agents import (
    AGENT_KINDS,
    LLM,
    Agent,
    AnyAgent,
    BayesianNetworkAgent,
    Custom,
    DataNormalizer,
    DataProcessor,
    DecisionMatrix,
    HumanReview,
    MissingValueHandler,
    MLModel,
    Router,
    RuleEngine,
)
from kumeo_iac.spec._base import Call, LocatedStr, Ref, SpecNode, is_identifier, span_of
from kumeo_iac.spec._deployment import Deployment, Monitor, Resources, Scaling
from kumeo_iac.spec._durations import DURATION_HINT, Duration, parse_duration
from kumeo_iac.spec._io import (
    CONTEXT_KINDS,
    SOURCE_KINDS,
    TARGET_KINDS,
    AnyContext,
    BayesianNetworkContext,
    Context,
    Database,
    Endpoint,
    FileSource,
    FileTarget,
    HttpSource,
    HttpTarget,
    KafkaSource,
    KafkaTarget,
    KnowledgeBase,
    MqttSource,
    MqttTarget,
    NatsSource,
    NatsTarget,
    TimerSource,
)
from kumeo_iac.spec._kinds import KindSpec
from kumeo_iac.spec._partitions import MAX_PARTITIONS, key_path, partition_problems, partition_scaling_conflict
from kumeo_iac.spec._platform import kubernetes_quantity, literal_secrets
from kumeo_iac.spec._problems import Problem, plain, problems_for_type, problems_in
from kumeo_iac.spec._references import FILE_EXTENSIONS, block_ref, resolve
from kumeo_iac.spec._retry import retry_policy, retry_problems
from kumeo_iac.spec._suggest import closest, did_you_mean
from kumeo_iac.spec._workflow import (
    RESOURCE_BLOCKS,
    IntegrationSpec,
    Program,
    SubworkflowSpec,
    WorkflowSpec,
    iter_refs,
)

#: Names the language accepts for agent kinds, aliases included.
AGENT_KIND_NAMES: dict[str, type[Agent]] = {
    **AGENT_KINDS,
    **{alias: cls for cls in AGENT_KINDS.values() for alias in cls.kind_aliases},
}

# The DSL spells sources, targets and the BayesianNetwork agent/context with one name each; the workflow re-types
# a value for the slot it is put in.
NATS = NatsSource
HTTP = HttpSource
Kafka = KafkaSource
MQTT = MqttSource
Timer = TimerSource
File = FileSource
BayesianNetwork = BayesianNetworkAgent
HumanInLoop = HumanReview

__all__ = [
    "AGENT_KINDS",
    "AGENT_KIND_NAMES",
    "CONTEXT_KINDS",
    "DURATION_HINT",
    "FILE_EXTENSIONS",
    "HTTP",
    "LLM",
    "MAX_PARTITIONS",
    "MQTT",
    "NATS",
    "RESOURCE_BLOCKS",
    "SOURCE_KINDS",
    "TARGET_KINDS",
    "Agent",
    "AnyAgent",
    "AnyContext",
    "BayesianNetwork",
    "BayesianNetworkAgent",
    "BayesianNetworkConfig",
    "BayesianNetworkContext",
    "Call",
    "Context",
    "Custom",
    "CustomConfig",
    "CustomSettings",
    "DataNormalizer",
    "DataNormalizerConfig",
    "DataProcessor",
    "DataProcessorConfig",
    "Database",
    "DecisionMatrix",
    "Deployment",
    "Duration",
    "Endpoint",
    "File",
    "FileSource",
    "FileTarget",
    "HttpSource",
    "HttpTarget",
    "HumanInLoop",
    "HumanReview",
    "HumanReviewConfig",
    "IntegrationSpec",
    "Kafka",
    "KafkaSource",
    "KafkaTarget",
    "KindSpec",
    "KnowledgeBase",
    "LLMConfig",
    "LocatedStr",
    "MLModel",
    "MLModelConfig",
    "MissingValueHandler",
    "Monitor",
    "MqttSource",
    "MqttTarget",
    "NatsSource",
    "NatsTarget",
    "NoConfig",
    "NoSettings",
    "Problem",
    "Program",
    "Ref",
    "Resources",
    "Router",
    "RuleEngine",
    "Scaling",
    "SpecNode",
    "SubworkflowSpec",
    "Timer",
    "TimerSource",
    "WorkflowSpec",
    "block_ref",
    "closest",
    "did_you_mean",
    "is_identifier",
    "iter_refs",
    "key_path",
    "kubernetes_quantity",
    "literal_secrets",
    "parse_duration",
    "partition_problems",
    "partition_scaling_conflict",
    "plain",
    "problems_for_type",
    "problems_in",
    "resolve",
    "retry_policy",
    "retry_problems",
    "span_of",
]
