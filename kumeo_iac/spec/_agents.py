"""The agent kinds: what each one is, which arguments it takes, and which of them it needs.

Every agent shares the common fields of :class:`Agent`; each kind adds its own. Loose types (``Any``) are used where
the language allows several shapes (a path, an inline object, a list); validation checks the shapes and says where.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from kumeo_iac.spec._agent_config import (
    AgentConfig,
    BayesianNetworkSettings,
    CustomSettings,
    DataNormalizerSettings,
    DataProcessorSettings,
    HumanReviewSettings,
    LLMSettings,
    MLModelSettings,
    NoSettings,
)
from kumeo_iac.spec._base import Ref, arg
from kumeo_iac.spec._kinds import KindSpec

if TYPE_CHECKING:  # the DSL's view of `config`: a TypedDict per kind, so a misspelt key is a type error
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


def _to_ref(value: Any) -> Any:
    """Keep references as Ref nodes wherever they sit in an input mapping."""
    if isinstance(value, dict):
        return {k: _to_ref(v) for k, v in value.items()}
    return value


class Agent(KindSpec):
    """Fields every agent kind has. ``output`` is stored as ``output_channel`` so ``agent.output`` can be a Ref."""

    #: The settings this kind reads from its ``config:`` object (docs/agents.md lists them).
    config_model: ClassVar[type[AgentConfig]] = NoSettings
    #: Arguments the kind's runtime also takes from ``config:`` (the entry wins over the argument).
    config_arguments: ClassVar[tuple[str, ...]] = ()

    id: str | None = arg("Unique id of the agent in its workflow; derived from the kind when omitted.")
    input: Any = arg(
        "Where events come from: `source`, another agent's output (`risk.output`, `\"validated.tx\"`), or an "
        "object naming several inputs that are joined by event id.",
        example='input: fraud_detector.output',
    )
    output_channel: str | None = arg(
        "A channel name other agents can use as their input; results always go to `kumeo.<workflow>.<agent>.out`.",
        alias="output",
    )
    model: Any = arg("A model file path, a reference to the workflow's `models` block, or an inline model object.")
    config: Any = arg("The kind's settings (an object, see each kind's settings), a reference to an entry of the "
                      "workflow's `config` block, or a JSON file.")
    when: str | None = arg(
        "An expression; events for which it is false skip this agent and pass on unchanged.",
        example='when: "amount > 1000"',
    )
    timeout: str | int | float | None = arg("Longest time one event may take (`\"30s\"`, `\"2m\"`, or seconds).")
    retry: Any = arg(
        "Retries before dead-lettering (0 to 100, default 3): a count, or "
        "`{ attempts: 3, backoff: \"1s\", factor: 2 }` where `backoff` is the first wait (each next one `factor` "
        "times longer), a list of waits (the last repeats), `\"exponential\"` (1s, 2s, 4s…) or `\"fixed\"` (1s each).")
    fallback: Any = arg("On final failure: another agent's id to hand the event to, or a value to emit instead.")
    context: Any = arg("Context(s) the agent may read: a context id, a workflow `data` entry, or a list of them.")
    output_schema: Any = arg("A JSON schema (inline, a file, or a `schemas` entry) each result must satisfy.")
    partitions: int | None = arg(
        "Ordered lanes (1 to 64): events with the same `partition_key` value are processed one at a time, in input "
        "order, by one of N workers (a StatefulSet of N pods, pod i on lane i; `kumeo run --processes`: N "
        "processes). Not with `deployment.scaling`. See *Partitioned agents*.",
        example="partitions: 4")
    partition_key: str | None = arg(
        "The event field (a dotted path) whose value picks the lane; needed with `partitions`.",
        example='partition_key: "customer.id"')

    @field_validator("input", mode="before")
    @classmethod
    def _keep_refs(cls, value: Any) -> Any:
        return _to_ref(value)

    @property
    def output(self) -> Ref:
        """A reference to this agent's output, for the ``input=`` of another agent (Python DSL)."""
        return Ref.to_agent(self)

    @classmethod
    def default_id(cls) -> str:
        """The id an agent gets when none is written: its kind in snake_case (``MLModel`` → ``ml_model``)."""
        name = cls.kind_name
        name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
        name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
        return name.lower()


class LLM(Agent):
    kind_name: ClassVar[str] = "LLM"
    summary: ClassVar[str] = "Calls a large language model (OpenAI-compatible or Ollama API) with a prompt template."
    positional: ClassVar[tuple[str, ...]] = ("engine",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("engine", "provider"),)
    kind: Literal["LLM"] = "LLM"
    config_model: ClassVar[type[AgentConfig]] = LLMSettings
    config_arguments: ClassVar[tuple[str, ...]] = (
        "engine", "provider", "prompt", "system", "temperature", "max_tokens", "json_mode", "output_schema", "context")

    if TYPE_CHECKING:
        config: LLMConfig | str | None = None

    engine: str | None = arg("`provider/model`, e.g. `ollama/llama3` or `openai/gpt-4o-mini`.")
    provider: Any = arg("Provider object instead of `engine`: `{ ollama: { model: \"llama3\", temperature: 0.7 } }`.")
    prompt: str | None = arg(
        "The prompt template; `{{path}}` inserts a value of the event, `{{#if x}}…{{/if}}` keeps a block only "
        "when x is truthy. Nothing in it is executed.",
        required=True,
    )
    system: str | None = arg("An optional system message.")
    temperature: float | None = arg("Sampling temperature.")
    max_tokens: int | None = arg("Upper bound on generated tokens.")
    json_mode: bool | None = arg("Ask for a JSON object and parse it (validated against `output_schema` if given).")


class MLModel(Agent):
    kind_name: ClassVar[str] = "MLModel"
    summary: ClassVar[str] = "Runs an ONNX model (ONNX Runtime) on fields of the event."
    positional: ClassVar[tuple[str, ...]] = ("model",)
    kind: Literal["MLModel"] = "MLModel"
    config_model: ClassVar[type[AgentConfig]] = MLModelSettings
    config_arguments: ClassVar[tuple[str, ...]] = ("model", "features")

    if TYPE_CHECKING:
        config: MLModelConfig | str | None = None

    model: Any = arg(
        "The model: a file (`forest.onnx`), a `models` entry (`\"models.fraud_detector\"`) or an inline object "
        "`{ file: …, type: \"onnx\" }`.",
        required=True,
    )
    features: list[str] | None = arg("Event fields fed to the model, in input-tensor order.")


class BayesianNetworkAgent(Agent):
    kind_name: ClassVar[str] = "BayesianNetwork"
    summary: ClassVar[str] = "Queries a discrete Bayesian network (pgmpy) with evidence taken from the event."
    positional: ClassVar[tuple[str, ...]] = ("network",)
    kind: Literal["BayesianNetwork"] = "BayesianNetwork"
    config_model: ClassVar[type[AgentConfig]] = BayesianNetworkSettings
    config_arguments: ClassVar[tuple[str, ...]] = ("network", "query", "evidence", "method")

    if TYPE_CHECKING:
        config: BayesianNetworkConfig | str | None = None

    network: str | None = arg("The network file (BIF `.bn`/`.bif` or XMLBIF `.xml`).", required=True)
    query: list[str] | str | None = arg("Variables whose posterior (or MAP) goes into the output.")
    evidence: Any = arg("Evidence: `{ variable: \"event.path\" }`; default: fields named like variables.")
    method: str | None = arg("`posterior` (default) or `map`.")


class DecisionMatrix(Agent):
    kind_name: ClassVar[str] = "DecisionMatrix"
    summary: ClassVar[str] = "Applies a decision table (inline rules or a `.dmx` file) with a DMN-like hit policy."
    positional: ClassVar[tuple[str, ...]] = ("matrix",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("matrix", "rules"),)
    kind: Literal["DecisionMatrix"] = "DecisionMatrix"
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    matrix: str | None = arg("A decision-table file (`.dmx`).")
    rules: Any = arg("Inline rules: `[{ name: …, condition: \"expr\", error: … }]`.")
    hit_policy: str | None = arg("`first` (default), `unique` or `collect`.")
    on_failure: Any = arg("What to do when a rule fails: `{ action: \"reject\"|\"quarantine\", … }`.")
    mode: Literal["decide", "validate"] | None = arg(
        "Inline rules: `decide` (set the outputs of matching rules) or `validate` (fail on rules with an `error`). "
        "Default: `validate` when the rules carry errors and no outputs.")
    output_key: str | None = arg("Where the decision goes (default `decisions`; a `.dmx` file may set it).")


class RuleEngine(Agent):
    kind_name: ClassVar[str] = "RuleEngine"
    summary: ClassVar[str] = "Evaluates rules (inline or a rules JSON file) and sets fields from the ones that match."
    positional: ClassVar[tuple[str, ...]] = ("rules",)
    kind: Literal["RuleEngine"] = "RuleEngine"
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    rules: Any = arg("A rules file (`rules.json`) or inline rules `[{ when: \"expr\", set: {…} }]`.", required=True)
    hit_policy: str | None = arg("`all` (default: every matching rule applies, in order) or `first`.")


class Router(Agent):
    kind_name: ClassVar[str] = "Router"
    summary: ClassVar[str] = "Sends each event to the first target or agent whose condition holds."
    kind: Literal["Router"] = "Router"
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    rules: Any = arg(
        "Routes: `{ \"expr\": \"target.subject\", \"default\": \"target.other\" }` (first match wins).",
        required=True,
    )
    default: Any = arg("Where events go when no rule matches (instead of a `default` rule).")


class DataProcessor(Agent):
    kind_name: ClassVar[str] = "DataProcessor"
    summary: ClassVar[str] = "Validates, selects, renames, computes and cleans event fields."
    kind: Literal["DataProcessor"] = "DataProcessor"
    config_model: ClassVar[type[AgentConfig]] = DataProcessorSettings

    if TYPE_CHECKING:
        config: DataProcessorConfig | str | None = None


class DataNormalizer(Agent):
    kind_name: ClassVar[str] = "DataNormalizer"
    summary: ClassVar[str] = "Scales numeric fields (min-max, z-score) with fixed or configured statistics."
    positional: ClassVar[tuple[str, ...]] = ("config",)
    kind: Literal["DataNormalizer"] = "DataNormalizer"
    config_model: ClassVar[type[AgentConfig]] = DataNormalizerSettings

    if TYPE_CHECKING:
        config: DataNormalizerConfig | str | None = None
    else:
        config: Any = arg("Normalization settings (see below), a `config` entry or a JSON file.", required=True)


class MissingValueHandler(Agent):
    kind_name: ClassVar[str] = "MissingValueHandler"
    summary: ClassVar[str] = "Fills missing fields by a strategy (mean, median, constant, drop)."
    positional: ClassVar[tuple[str, ...]] = ("strategy",)
    kind: Literal["MissingValueHandler"] = "MissingValueHandler"
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    strategy: str | None = arg(
        "`mean_imputation`, `median_imputation`, `constant` or `drop` (also `mean`, `median`).", required=True
    )
    fields: list[str] | None = arg("Fields to fill; default: every field the strategy can fill.")
    value: Any = arg("The value used by the `constant` strategy (and by mean/median until a field has history).")
    stats: dict[str, Any] | None = arg(
        "Fixed statistics, `{ field: { mean: …, median: … } }` (or a number): the same fill on every replica.")
    window: int | None = arg("How many recent values per field the rolling mean/median uses (default 1000).")


class HumanReview(Agent):
    kind_name: ClassVar[str] = "HumanReview"
    kind_aliases: ClassVar[tuple[str, ...]] = ("HumanInLoop",)
    summary: ClassVar[str] = "Holds an event until a person approves or rejects it (durable review queue)."
    positional: ClassVar[tuple[str, ...]] = ("interface",)
    kind: Literal["HumanReview"] = "HumanReview"
    config_model: ClassVar[type[AgentConfig]] = HumanReviewSettings

    if TYPE_CHECKING:
        config: HumanReviewConfig | str | None = None

    interface: str | None = arg("The review interface (`web`, default).")
    trigger: str | None = arg("An expression; only matching events wait for review (like `when`).")


class Custom(Agent):
    kind_name: ClassVar[str] = "Custom"
    summary: ClassVar[str] = "Runs your own code: a Python `module:function` or a WebAssembly module."
    positional: ClassVar[tuple[str, ...]] = ("entrypoint",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("entrypoint", "wasm"),)
    kind: Literal["Custom"] = "Custom"
    config_model: ClassVar[type[AgentConfig]] = CustomSettings

    if TYPE_CHECKING:
        config: CustomConfig | dict[str, Any] | str | None = None

    entrypoint: str | None = arg("A Python `package.module:function` (sync or async) taking and returning a dict.")
    wasm: str | None = arg("A WebAssembly module file using the JSON-in/JSON-out ABI.")
    config_schema: Any = arg(
        "A JSON Schema (inline, a file, or a `schemas` entry) the agent's `config` must satisfy; without one the "
        "config is free-form.")


AnyAgent = Annotated[
    LLM
    | MLModel
    | BayesianNetworkAgent
    | DecisionMatrix
    | RuleEngine
    | Router
    | DataProcessor
    | DataNormalizer
    | MissingValueHandler
    | HumanReview
    | Custom,
    Field(discriminator="kind"),
]

AGENT_KINDS: dict[str, type[Agent]] = {
    cls.kind_name: cls
    for cls in (
        LLM,
        MLModel,
        BayesianNetworkAgent,
        DecisionMatrix,
        RuleEngine,
        Router,
        DataProcessor,
        DataNormalizer,
        MissingValueHandler,
        HumanReview,
        Custom,
    )
}
