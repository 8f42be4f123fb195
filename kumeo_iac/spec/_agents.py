"""The agent kinds: what each one is, which arguments it takes, and which of them it needs.

Every agent shares the common fields of :class:`Agent`; each kind adds its own. Loose types (``Any``) are used where
the language allows several shapes (a path, an inline object, a list); validation checks the shapes and says where.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BeforeValidator, SerializeAsAny, field_validator, model_validator

from kumeo_iac._llm_endpoints import DEFAULT_BASE_URLS, llm_base_url
from kumeo_iac.errors import KumeoSpecError, SourceSpan
from kumeo_iac.spec._agent_config import (
    AgentConfig,
    BayesianNetworkConfig,
    BayesianNetworkSettings,
    CustomConfig,
    CustomSettings,
    DataNormalizerConfig,
    DataNormalizerSettings,
    DataProcessorConfig,
    DataProcessorSettings,
    HumanReviewConfig,
    HumanReviewSettings,
    LLMConfig,
    LLMSettings,
    MLModelConfig,
    MLModelSettings,
    NoConfig,
    NoSettings,
)
from kumeo_iac.spec._base import LocatedStr, Ref, arg
from kumeo_iac.spec._kinds import KindSpec

#: The runtime images an agent can run in: the base image, ``ml`` (onnxruntime, pgmpy) and ``llm``.
IMAGE_CLASSES: tuple[str, ...] = ("base", "ml", "llm")
_RUNTIME: str = "kumeo_iac.runtime.agents"
_HANDLER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class KindExpression:
    """An expression one of a kind's own arguments holds (see :meth:`Agent.expressions`): `kumeo check` parses it
    and checks its ``config.…`` paths, like ``when``.

    ``what`` names it in a diagnostic, which reads ``<what> of <Kind> '<id>' does not parse: …`` (``"`trigger`"``,
    ``"rule 2"``); ``argument`` is the argument holding it, where the diagnostic points when ``text`` carries no
    position of its own; ``offset`` is where the expression starts in ``text`` (``"name: expression"`` items).
    """

    text: Any
    what: str
    argument: str
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class KindProblem:
    """A mistake in how one of a kind's arguments is written, found while listing its expressions: `kumeo check`
    reports ``<what> of <Kind> '<id>'<detail>`` at ``value`` (else at ``argument``) with the diagnostic ``code``."""

    what: str
    detail: str
    argument: str
    value: Any = None
    code: str = "bad-value"


def _to_ref(value: Any) -> Any:
    """Keep references as Ref nodes wherever they sit in an input mapping."""
    if isinstance(value, dict):
        return {k: _to_ref(v) for k, v in value.items()}
    return value


class Agent(KindSpec):
    """Fields every agent kind has. ``output`` is stored as ``output_channel`` so ``agent.output`` can be a Ref.

    A kind is one place: besides its arguments (the fields), each kind declares here, as class variables, everything
    the rest of Kumeo needs to know about it. Validation, the compiler, the Kubernetes objects, the local runner and
    the runtime read these declarations (compile copies them into each ``AgentPlan``); nothing else lists kinds.
    A new kind is a subclass registered with :func:`register_kind`.
    """

    #: The settings this kind reads from its ``config:`` object (docs/agents.md lists them).
    config_model: ClassVar[type[AgentConfig]] = NoSettings
    #: The ``TypedDict`` twin of ``config_model`` for Python literals (a type checker flags a misspelt key).
    config_dict: ClassVar[type] = NoConfig
    #: Arguments the kind's runtime also takes from ``config:`` (the entry wins over the argument).
    config_arguments: ClassVar[tuple[str, ...]] = ()
    #: The runtime image that runs the kind: ``base``, ``ml`` (onnxruntime, pgmpy) or ``llm``; it also picks the
    #: ``deployment.resources`` entry that applies (``ml_models``, ``llm``) and ``deployment.base_images``.
    image_class: ClassVar[Literal["base", "ml", "llm"]] = "base"
    #: The class that runs the kind, ``"package.module:Class"`` (a ``kumeo_iac.runtime.RuntimeAgent``); only the
    #: worker that runs an agent of the kind imports it (the workflow's folder is importable).
    runtime_handler: ClassVar[str] = ""
    #: The pip extra the handler's imports need (``ml``, ``llm``, ``bayes``), named when they are missing.
    runtime_extra: ClassVar[str | None] = None
    #: Arguments that, written as a string, name a file the agent reads: checked to exist, shipped with the agent
    #: (the files ConfigMap) and kept inside the workflow's folder. ``model``, ``config`` and ``output_schema`` are
    #: files for every kind when they name one.
    file_arguments: ClassVar[tuple[str, ...]] = ()
    #: The API the kind serves on the worker's HTTP port beside ``/healthz`` and ``/metrics`` (``"review"`` for
    #: HumanReview), or None: such an agent gets a port in `kumeo run` too, and the dashboard talks to it.
    http_api: ClassVar[str | None] = None
    #: Whether the agent's pod gets the platform's secret environment (API keys, ``PlatformSettings.secrets``).
    uses_secrets: ClassVar[bool] = False
    #: JetStream KV buckets the kind keeps state in: the setting that names the bucket → the bucket's purpose
    #: (``{"review_bucket": "reviews"}``). Compile creates one bucket per purpose per workflow.
    state_buckets: ClassVar[Mapping[str, str]] = MappingProxyType({})

    #: The argument holding a JSON Schema that the kind's free-form ``config:`` entries (those its ``config_model``
    #: does not declare) must satisfy; `kumeo check` checks them against it (Custom: ``config_schema``).
    config_schema_argument: ClassVar[str | None] = None

    #: The kind's name in JSON (``"LLM"``); filled from ``kind_name``.
    kind: str = ""

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

    @model_validator(mode="before")
    @classmethod
    def _fill_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.kind_name:
            written = data.get("kind")
            if written is None:
                data = {**data, "kind": cls.kind_name}
            elif written != cls.kind_name and written not in cls.kind_aliases:
                raise ValueError(f"kind {written!r} is not {cls.kind_name!r}")
        return data

    @field_validator("input", mode="before")
    @classmethod
    def _keep_refs(cls, value: Any) -> Any:
        return _to_ref(value)

    @property
    def output(self) -> Ref:
        """A reference to this agent's output, for the ``input=`` of another agent (Python DSL)."""
        return Ref.to_agent(self)

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        """The expressions the kind's own arguments hold (``when`` and expression inputs are every kind's and
        checked anyway), for `kumeo check` to parse, plus the problems found in how those arguments are written.
        A kind whose arguments hold expressions overrides this."""
        return iter(())

    @classmethod
    def egress_urls(cls, settings: Mapping[str, Any]) -> list[str]:
        """The URLs an agent of the kind connects to besides NATS, read from its resolved settings (what compile
        writes to ``AgentPlan.settings``): compile keeps them in ``AgentPlan.egress`` and the agent's NetworkPolicy
        lets the pod reach them. The HTTP targets an agent delivers to are added by compile, not here."""
        return []

    def located(self, argument: str) -> Any:
        """The value of ``argument``; a string of a typed field (which pydantic stores as a plain ``str``) gets its
        position back from the argument's span, which points at its opening quote."""
        value = getattr(self, type(self).field_for_argument(argument) or argument, None)
        quote = self.arg_spans.get(argument)
        if not isinstance(value, str) or getattr(value, "content_start", None) is not None or quote is None:
            return value
        return LocatedStr(value, quote, SourceSpan(quote.path, quote.line, quote.column + 1))

    @classmethod
    def default_id(cls) -> str:
        """The id an agent gets when none is written: its kind in snake_case (``MLModel`` → ``ml_model``)."""
        name = cls.kind_name
        name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
        name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
        return name.lower()


def _rule_conditions(rules: Any) -> Iterator[KindExpression | KindProblem]:
    """The conditions of inline rules (``when``, ``condition`` or ``if`` of each rule object)."""
    if not isinstance(rules, list):
        return
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        for key in ("when", "condition", "if"):
            cond = rule.get(key)
            if isinstance(cond, str):
                yield KindExpression(cond, f"`{key}` of rule {i + 1}", "rules")


#: Every agent kind by the name users write, in registration order (the built-ins first).
AGENT_KINDS: dict[str, type[Agent]] = {}
#: Names the language accepts for agent kinds, aliases included.
AGENT_KIND_NAMES: dict[str, type[Agent]] = {}

_A = TypeVar("_A", bound=type[Agent])


def register_kind(cls: _A) -> _A:
    """Make an agent kind known to the language, validation, compile and the runtime; returns ``cls`` (a decorator).

    ``cls`` subclasses :class:`Agent`, sets ``kind_name`` and ``runtime_handler`` (``"module:Class"``), and declares
    the rest of what the kind means as class variables (``config_model``, ``image_class``, ``file_arguments``…).
    Registering the same class again (or a re-run of the module that defines it) replaces the entry; another class
    under a taken name is an error.
    """
    if not (isinstance(cls, type) and issubclass(cls, Agent)) or cls is Agent:
        raise KumeoSpecError(f"register_kind() takes a subclass of kumeo_iac.Agent, not {cls!r}")
    where = f"{cls.__module__}.{cls.__qualname__}"
    problems = []
    if not re.fullmatch(r"[A-Z][A-Za-z0-9_]*", cls.kind_name or ""):
        problems.append("kind_name must be a capitalised identifier (kind_name = \"Upper\")")
    if not _HANDLER.fullmatch(cls.runtime_handler):
        problems.append(f"runtime_handler must be \"package.module:Class\", not {cls.runtime_handler!r}")
    if cls.image_class not in IMAGE_CLASSES:
        problems.append(f"image_class must be one of {', '.join(IMAGE_CLASSES)}, not {cls.image_class!r}")
    if not (isinstance(cls.config_model, type) and issubclass(cls.config_model, AgentConfig)):
        problems.append("config_model must be a subclass of kumeo_iac.AgentConfig")
    arguments = set(cls.argument_names())
    unknown = [a for a in (*cls.file_arguments, *cls.config_arguments, *cls.positional) if a not in arguments]
    if unknown:
        problems.append(f"{', '.join(map(repr, unknown))} is not an argument of the kind")
    if problems:
        raise KumeoSpecError(f"agent kind {where}: " + "; ".join(problems))
    for name in (cls.kind_name, *cls.kind_aliases):
        taken = AGENT_KIND_NAMES.get(name)
        if taken is not None and taken is not cls and (taken.__module__, taken.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise KumeoSpecError(f"agent kind {where}: the name {name!r} is taken by "
                                 f"{taken.__module__}.{taken.__qualname__}")
    AGENT_KINDS[cls.kind_name] = cls
    for name in (cls.kind_name, *cls.kind_aliases):
        AGENT_KIND_NAMES[name] = cls
    return cls


def agent_kind(name: str) -> type[Agent]:
    """The kind users write as ``name`` (aliases too); KumeoSpecError naming the known kinds when there is none."""
    cls = AGENT_KIND_NAMES.get(name)
    if cls is None:
        from kumeo_iac.spec._suggest import did_you_mean

        raise KumeoSpecError(f"unknown agent kind {name!r}{did_you_mean(name, list(AGENT_KIND_NAMES))} (known "
                             f"kinds: {', '.join(AGENT_KINDS)}; a kind of your own needs register_kind())")
    return cls


def _as_agent(value: Any) -> Any:
    """An agent in a workflow's list: an Agent as it is, an object by its ``kind`` through the registry."""
    if isinstance(value, dict) and not isinstance(value, Agent):
        kind = value.get("kind")
        if not isinstance(kind, str):
            raise ValueError("an agent needs a 'kind'")
        try:
            return agent_kind(kind).model_validate(value)
        except KumeoSpecError as exc:
            raise ValueError(str(exc)) from None
    return value


#: An agent of any registered kind, in a workflow's ``agents``/``preprocessors``: dumped with its kind's fields.
AnyAgent = Annotated[SerializeAsAny[Agent], BeforeValidator(_as_agent)]


@register_kind
class LLM(Agent):
    kind_name: ClassVar[str] = "LLM"
    summary: ClassVar[str] = "Calls a large language model (OpenAI-compatible or Ollama API) with a prompt template."
    positional: ClassVar[tuple[str, ...]] = ("engine",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("engine", "provider"),)
    kind: Literal["LLM"] = "LLM"
    config_dict: ClassVar[type] = LLMConfig
    image_class: ClassVar[Literal["base", "ml", "llm"]] = "llm"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.llm:LLMAgent"
    runtime_extra: ClassVar[str | None] = "llm"
    uses_secrets: ClassVar[bool] = True
    state_buckets: ClassVar[Mapping[str, str]] = MappingProxyType({"cache_bucket": "llm-cache"})
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

    @classmethod
    def egress_urls(cls, settings: Mapping[str, Any]) -> list[str]:
        """The model server: the ``base_url`` its settings (or ``config:``) give, else its provider's default (a
        pod's environment has no OPENAI_BASE_URL/OLLAMA_HOST); OpenAI's API when they name no provider."""
        options = {k: v for k, v in settings.items() if k not in ("config", "workflow_config")}
        config = settings.get("config")
        if isinstance(config, Mapping):
            options.update(config)
        return [llm_base_url(options) or DEFAULT_BASE_URLS["openai"]]


@register_kind
class MLModel(Agent):
    kind_name: ClassVar[str] = "MLModel"
    summary: ClassVar[str] = "Runs an ONNX model (ONNX Runtime) on fields of the event."
    positional: ClassVar[tuple[str, ...]] = ("model",)
    kind: Literal["MLModel"] = "MLModel"
    config_dict: ClassVar[type] = MLModelConfig
    image_class: ClassVar[Literal["base", "ml", "llm"]] = "ml"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.ml_model:MLModelAgent"
    runtime_extra: ClassVar[str | None] = "ml"
    file_arguments: ClassVar[tuple[str, ...]] = ("model",)
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


@register_kind
class BayesianNetworkAgent(Agent):
    kind_name: ClassVar[str] = "BayesianNetwork"
    summary: ClassVar[str] = "Queries a discrete Bayesian network (pgmpy) with evidence taken from the event."
    positional: ClassVar[tuple[str, ...]] = ("network",)
    kind: Literal["BayesianNetwork"] = "BayesianNetwork"
    config_dict: ClassVar[type] = BayesianNetworkConfig
    image_class: ClassVar[Literal["base", "ml", "llm"]] = "ml"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.bayesian_network:BayesianNetworkAgent"
    runtime_extra: ClassVar[str | None] = "bayes"
    file_arguments: ClassVar[tuple[str, ...]] = ("model", "network")
    config_model: ClassVar[type[AgentConfig]] = BayesianNetworkSettings
    config_arguments: ClassVar[tuple[str, ...]] = ("network", "query", "evidence", "method")

    if TYPE_CHECKING:
        config: BayesianNetworkConfig | str | None = None

    network: str | None = arg("The network file (BIF `.bn`/`.bif` or XMLBIF `.xml`).", required=True)
    query: list[str] | str | None = arg("Variables whose posterior (or MAP) goes into the output.")
    evidence: Any = arg("Evidence: `{ variable: \"event.path\" }`; default: fields named like variables.")
    method: str | None = arg("`posterior` (default) or `map`.")


@register_kind
class DecisionMatrix(Agent):
    kind_name: ClassVar[str] = "DecisionMatrix"
    summary: ClassVar[str] = "Applies a decision table (inline rules or a `.dmx` file) with a DMN-like hit policy."
    positional: ClassVar[tuple[str, ...]] = ("matrix",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("matrix", "rules"),)
    kind: Literal["DecisionMatrix"] = "DecisionMatrix"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.decision_matrix:DecisionMatrixAgent"
    file_arguments: ClassVar[tuple[str, ...]] = ("matrix",)
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

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        return _rule_conditions(self.rules)


@register_kind
class RuleEngine(Agent):
    kind_name: ClassVar[str] = "RuleEngine"
    summary: ClassVar[str] = "Evaluates rules (inline or a rules JSON file) and sets fields from the ones that match."
    positional: ClassVar[tuple[str, ...]] = ("rules",)
    kind: Literal["RuleEngine"] = "RuleEngine"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.rule_engine:RuleEngineAgent"
    file_arguments: ClassVar[tuple[str, ...]] = ("rules",)
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    rules: Any = arg("A rules file (`rules.json`) or inline rules `[{ when: \"expr\", set: {…} }]`.", required=True)
    hit_policy: str | None = arg("`all` (default: every matching rule applies, in order) or `first`.")

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        return _rule_conditions(self.rules)


@register_kind
class Router(Agent):
    kind_name: ClassVar[str] = "Router"
    summary: ClassVar[str] = "Sends each event to the first target or agent whose condition holds."
    kind: Literal["Router"] = "Router"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.router:RouterAgent"
    config_model: ClassVar[type[AgentConfig]] = NoSettings

    if TYPE_CHECKING:
        config: NoConfig | str | None = None

    rules: Any = arg(
        "Routes: `{ \"expr\": \"target.subject\", \"default\": \"target.other\" }` (first match wins).",
        required=True,
    )
    default: Any = arg("Where events go when no rule matches (instead of a `default` rule).")

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        """Each route's condition (a ``default`` route has none)."""
        rules = self.rules
        if isinstance(rules, dict):
            for cond in rules:
                if str(cond).strip() != "default":
                    yield KindExpression(cond, f"rule '{cond}'", "rules")
        elif isinstance(rules, list):
            for i, rule in enumerate(rules):
                if not isinstance(rule, dict):
                    continue
                cond = rule.get("when", rule.get("condition", rule.get("if")))
                if isinstance(cond, str) and cond.strip() != "default":
                    yield KindExpression(cond, f"rule {i + 1}", "rules")
        elif rules is not None:
            yield KindProblem("rules", " must be an object `{ \"condition\": \"target.subject\", \"default\": … }` "
                                       "or a list of `{ when: …, to: … }`", "rules")


@register_kind
class DataProcessor(Agent):
    kind_name: ClassVar[str] = "DataProcessor"
    summary: ClassVar[str] = "Validates, selects, renames, computes and cleans event fields."
    kind: Literal["DataProcessor"] = "DataProcessor"
    config_dict: ClassVar[type] = DataProcessorConfig
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.data_processor:DataProcessorAgent"
    config_model: ClassVar[type[AgentConfig]] = DataProcessorSettings

    if TYPE_CHECKING:
        config: DataProcessorConfig | str | None = None

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        """The computed fields of an inline ``config``: ``{ name: "expression" }`` or ``["name: expression"]``."""
        config: Any = self.config
        if not isinstance(config, dict):
            return
        for key in ("features", "computed"):
            items = config.get(key)
            if isinstance(items, dict):
                for name, expression in items.items():
                    if isinstance(expression, str):
                        yield KindExpression(expression, f"computed field '{name}'", "config")
            elif isinstance(items, list):
                for item in items:
                    if not isinstance(item, str) or ":" not in item:
                        continue
                    name, _, rest = item.partition(":")
                    what = f"computed field '{name.strip()}'"
                    if not _FIELD_NAME.fullmatch(name.strip()):
                        yield KindProblem(what, f": '{name.strip()}' is not a field name; write \"name: expression\"",
                                          "config", item)
                        continue
                    yield KindExpression(item, what, "config", offset=len(name) + 1 + (len(rest) - len(rest.lstrip())))


@register_kind
class DataNormalizer(Agent):
    kind_name: ClassVar[str] = "DataNormalizer"
    summary: ClassVar[str] = "Scales numeric fields (min-max, z-score) with fixed or configured statistics."
    positional: ClassVar[tuple[str, ...]] = ("config",)
    kind: Literal["DataNormalizer"] = "DataNormalizer"
    config_dict: ClassVar[type] = DataNormalizerConfig
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.data_normalizer:DataNormalizerAgent"
    config_model: ClassVar[type[AgentConfig]] = DataNormalizerSettings

    if TYPE_CHECKING:
        config: DataNormalizerConfig | str | None = None
    else:
        config: Any = arg("Normalization settings (see below), a `config` entry or a JSON file.", required=True)


@register_kind
class MissingValueHandler(Agent):
    kind_name: ClassVar[str] = "MissingValueHandler"
    summary: ClassVar[str] = "Fills missing fields by a strategy (mean, median, constant, drop)."
    positional: ClassVar[tuple[str, ...]] = ("strategy",)
    kind: Literal["MissingValueHandler"] = "MissingValueHandler"
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.missing_value_handler:MissingValueHandlerAgent"
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


@register_kind
class HumanReview(Agent):
    kind_name: ClassVar[str] = "HumanReview"
    kind_aliases: ClassVar[tuple[str, ...]] = ("HumanInLoop",)
    summary: ClassVar[str] = "Holds an event until a person approves or rejects it (durable review queue)."
    positional: ClassVar[tuple[str, ...]] = ("interface",)
    kind: Literal["HumanReview"] = "HumanReview"
    config_dict: ClassVar[type] = HumanReviewConfig
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.human_review:HumanReviewAgent"
    http_api: ClassVar[str | None] = "review"
    state_buckets: ClassVar[Mapping[str, str]] = MappingProxyType({"review_bucket": "reviews"})
    config_model: ClassVar[type[AgentConfig]] = HumanReviewSettings

    if TYPE_CHECKING:
        config: HumanReviewConfig | str | None = None

    interface: str | None = arg("The review interface (`web`, default).")
    trigger: str | None = arg("An expression; only matching events wait for review (like `when`).")

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        if self.trigger is not None:
            yield KindExpression(self.located("trigger"), "`trigger`", "trigger")

    @classmethod
    def egress_urls(cls, settings: Mapping[str, Any]) -> list[str]:
        """Its notification webhook and the URLs of its escalation path (it POSTs to them)."""
        config = settings.get("config")
        if not isinstance(config, Mapping):
            return []
        urls = []
        notifications = config.get("notifications")
        if isinstance(notifications, Mapping) and isinstance(notifications.get("webhook"), str):
            urls.append(notifications["webhook"])
        path = config.get("escalation_path")
        for entry in path if isinstance(path, list) else [path]:
            if isinstance(entry, str) and entry.startswith(("http://", "https://")):
                urls.append(entry)
        return urls


@register_kind
class Custom(Agent):
    kind_name: ClassVar[str] = "Custom"
    summary: ClassVar[str] = "Runs your own code: a Python `module:function` or a WebAssembly module."
    positional: ClassVar[tuple[str, ...]] = ("entrypoint",)
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = (("entrypoint", "wasm"),)
    kind: Literal["Custom"] = "Custom"
    config_dict: ClassVar[type] = CustomConfig
    runtime_handler: ClassVar[str] = f"{_RUNTIME}.custom:CustomAgent"
    uses_secrets: ClassVar[bool] = True
    file_arguments: ClassVar[tuple[str, ...]] = ("wasm",)
    config_model: ClassVar[type[AgentConfig]] = CustomSettings
    config_schema_argument: ClassVar[str | None] = "config_schema"

    if TYPE_CHECKING:
        config: CustomConfig | dict[str, Any] | str | None = None

    entrypoint: str | None = arg("A Python `package.module:function` (sync or async) taking and returning a dict.")
    wasm: str | None = arg("A WebAssembly module file using the JSON-in/JSON-out ABI.")
    config_schema: Any = arg(
        "A JSON Schema (inline, a file, or a `schemas` entry) the agent's `config` must satisfy; without one the "
        "config is free-form.")

