"""The typed model of a Kumeo program (the Spec), shared by the importer, the Python DSL and every later stage."""

from kumeo_iac.spec._agent_config import (
    BayesianNetworkConfig,
    CustomConfig,
    DataNormalizerConfig,
    DataProcessorConfig,
    HumanReviewConfig,
    LLMConfig,
    MLModelConfig,
    NoConfig,
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
from kumeo_iac.spec._base import Call, LocatedStr, Ref, SpecNode, span_of
from kumeo_iac.spec._deployment import Deployment, Monitor, Resources, Scaling
from kumeo_iac.spec._io import (
    CONTEXT_KINDS,
    SOURCE_KINDS,
    TARGET_KINDS,
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
    "HTTP",
    "LLM",
    "MQTT",
    "NATS",
    "RESOURCE_BLOCKS",
    "SOURCE_KINDS",
    "TARGET_KINDS",
    "Agent",
    "AnyAgent",
    "BayesianNetwork",
    "BayesianNetworkAgent",
    "BayesianNetworkConfig",
    "BayesianNetworkContext",
    "Call",
    "Context",
    "Custom",
    "CustomConfig",
    "DataNormalizer",
    "DataNormalizerConfig",
    "DataProcessor",
    "DataProcessorConfig",
    "Database",
    "DecisionMatrix",
    "Deployment",
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
    "iter_refs",
    "span_of",
]
