"""The settings each agent kind reads from its ``config:`` object, declared once as pydantic models.

Each model is what the kind's runtime reads (``kumeo_iac/runtime/agents/*``): its keys, their types, defaults and
allowed values. ``kumeo check`` validates every agent's ``config`` against its kind's model (unknown keys with a
did-you-mean, wrong types, at the key's line and column), docs/agents.md is generated from the models, and each
model has a ``TypedDict`` twin (``DataProcessorConfig`` …) so a type checker flags a misspelt key in a Python
literal (``DataProcessor(config={"required_feilds": …})``).

Kinds whose runtime merges named arguments and ``config`` entries also accept those arguments as keys (the
kind's ``config_arguments``); the entry wins over the argument. A ``Custom`` agent's config is free-form unless the
agent declares ``config_schema`` (a JSON Schema).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, TypedDict

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kumeo_iac.spec._durations import Duration

__all__ = [
    "AgentConfig",
    "BayesianNetworkConfig",
    "BayesianNetworkSettings",
    "CustomConfig",
    "CustomSettings",
    "DataNormalizerConfig",
    "DataNormalizerSettings",
    "DataProcessorConfig",
    "DataProcessorSettings",
    "HumanReviewConfig",
    "HumanReviewSettings",
    "LLMConfig",
    "LLMSettings",
    "MLModelConfig",
    "MLModelSettings",
    "NoConfig",
    "NoSettings",
]

_ENV_REF: Final = re.compile(r"\$\{env\.[A-Za-z_][A-Za-z0-9_]*\}")
_TEXT_STEPS = Literal["trim", "lowercase", "uppercase", "remove_special_chars", "collapse_whitespace"]
_SIZE: Final = re.compile(r"(?i)\s*\d+(\.\d+)?\s*(b|k|ki|kb|kib|m|mi|mb|mib|g|gi|gb|gib)?\s*")


def _env_ref(value: str) -> str:
    if not _ENV_REF.fullmatch(value):
        raise ValueError(f'"{value}" is not a reference like "${{env.OPENAI_API_KEY}}"; never write the key itself')
    return value


def _size(value: str | int) -> str | int:
    if isinstance(value, str) and not _SIZE.fullmatch(value):
        raise ValueError(f'"{value}" is not a size; write e.g. "64Mi", "1Gi" or a number of bytes')
    return value


_EnvRef = Annotated[str, AfterValidator(_env_ref)]
_Size = Annotated[str | int, AfterValidator(_size)]


class AgentConfig(BaseModel):
    """Settings every kind's ``config`` may hold."""

    model_config = ConfigDict(extra="forbid", strict=True)

    join_timeout: Duration | None = Field(
        default=None,
        description="For an agent with several inputs (a join): how long the first part of an event waits "
                    "for the others before it is dead-lettered. Default `\"5m\"`.")


class NoSettings(AgentConfig):
    """This kind reads its settings from its arguments only; `config` may hold just `join_timeout`."""


class LLMSettings(AgentConfig):
    """How an LLM agent reaches its provider and what it does with the reply."""

    base_url: str | None = Field(
        default=None,
        description="The server's URL. Default: `$OPENAI_BASE_URL` or `$OLLAMA_HOST`, else the provider's "
                    "usual address.")
    api: Literal["chat", "generate"] = Field(default="chat", description="Ollama only: the `chat` or `generate` API.")
    api_key_env: str | None = Field(
        default=None, description="The environment variable holding the API key. Default: `OPENAI_API_KEY` for openai.")
    api_key: _EnvRef | None = Field(
        default=None, description="Where the key comes from, as `\"${env.NAME}\"`; never the key itself.")
    structured_output: bool = Field(
        default=False, description="With `output_schema`: send the schema as the provider's structured-output format.")
    output_field: str = Field(default="llm", min_length=1, description="The event field the reply is written to.")
    http_retries: int = Field(default=3, ge=0, description="Further HTTP requests after a failed one, for one event.")
    retry_base_delay: float = Field(default=0.5, ge=0,
    description="Seconds before the first HTTP retry; doubles after.")
    max_retry_delay: float = Field(default=20.0, ge=0, description="The longest wait between HTTP retries, in seconds.")
    concurrency: int = Field(default=16, ge=1, description="Requests in flight at once from one worker.")
    cache: bool = Field(default=True,
    description="Reuse the reply to an identical prompt (a JetStream key-value cache).")


class MLModelSettings(AgentConfig):
    """How an MLModel agent feeds its model and where the outputs go."""

    inputs: dict[str, list[str]] | None = Field(
        default=None, description="For a model with several input tensors: `{ tensor_name: [field, …] }` (instead of "
                          "`features`).")
    outputs: dict[str, str] | None = Field(
        default=None, description="`{ model_output: event_field }`. Default: every output under its own name "
                          "(an IsolationForest: `anomaly_label`, `anomaly_score`).")
    score_offset: float | None = Field(
        default=None, description="IsolationForest: the offset turning `scores` into `anomaly_score` when the model's "
                          "metadata lacks it. Default -0.5.")
    batch_size: int = Field(default=256, ge=1, description="The most events one inference call takes.")
    max_wait_ms: float = Field(default=0, ge=0, description="How long a short batch waits for more events, in ms.")
    intra_op_num_threads: int = Field(default=1, ge=1, description="ONNX Runtime's threads within one operator.")
    inter_op_num_threads: int = Field(default=1, ge=1, description="ONNX Runtime's threads across operators.")
    allow_pickle: bool = Field(
        default=False,
        description="Load a pickled sklearn model (`.pkl`, `.joblib`): unpickling runs code from the file, "
                    "so only for files you trust. ONNX needs no such switch.")


class BayesianNetworkSettings(AgentConfig):
    """Where a BayesianNetwork agent puts its answer."""

    output_key: str | None = Field(
        default=None, min_length=1,
        description="Nest the result under this field instead of merging it into the event.")


class DataProcessorSettings(AgentConfig):
    """The checks and transforms of a DataProcessor, applied in this order."""

    defaults: dict[str, Any] | None = Field(default=None, description="Values for fields that are missing or null.")
    required_fields: list[str] | str | None = Field(
        default=None, description="Fields every event must have (not null); an event without one is dead-lettered.")
    schema_: dict[str, Any] | str | None = Field(
        default=None, alias="schema",
        description="A JSON Schema (inline, a file, or a `schemas` entry) every event must "
                    "satisfy.")
    rename: dict[str, str] | None = Field(default=None, description="`{ old_name: new_name }`.")
    steps: list[_TEXT_STEPS] | _TEXT_STEPS | None = Field(
        default=None, description="Text steps applied, in order, to string fields.")
    fields: list[str] | str | None = Field(default=None,
    description="The fields `steps` apply to. Default: every field.")
    features: list[str] | dict[str, str] | str | None = Field(
        default=None, description="Fields to keep (`\"amount\"`) or compute (`\"big: amount > 1000\"`, or "
                          "`{ big: \"amount > 1000\" }`), in order.")
    computed: list[str] | dict[str, str] | str | None = Field(default=None, description="More computed fields, like "
                                                                                "`features`.")
    select: list[str] | str | None = Field(
        default=None, description="Keep only these fields (and the features) in the output.")


class DataNormalizerSettings(AgentConfig):
    """How a DataNormalizer scales its fields."""

    method: Literal["min_max", "minmax", "z_score", "zscore"] = Field(
        default="min_max", description="`min_max`: (x - min) / (max - min); `z_score`: (x - mean) / std.")
    fields: dict[str, list[float] | dict[str, float]] = Field(
        description="Each field with its statistics: `{ amount: [min, max] }` (or `[mean, std]`, or "
                    "`{ min: …, max: … }`).")
    clip: bool | float | list[float] = Field(
        default=False, description="Clip the result: `true` ([0, 1] for min_max), a number of deviations (z_score), or "
                           "`[low, high]`.")
    keep_original: bool = Field(default=False, description="Write the result to `<field><suffix>` and keep the field.")
    suffix: str = Field(default="_normalized", min_length=1, description="The suffix used with `keep_original`.")


class ReviewField(BaseModel):
    """A field shown to the reviewer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    field: str = Field(description="The event field.")
    label: str | None = Field(default=None, description="Its label. Default: the field name.")
    type: str = Field(default="text", description="How it is shown (`text`, …).")


class ReviewUI(BaseModel):
    """What the review page shows."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str | None = Field(default=None, description="The review's title.")
    fields: list[str | ReviewField] | str | ReviewField | None = Field(
        default=None, description="The fields shown (and editable): names or `{ field, label, type }`.")
    base_url: str | None = Field(default=None, description="Where reviewers reach the API, for links in notifications.")


class ReviewNotifications(BaseModel):
    """Who hears of a new review."""

    model_config = ConfigDict(extra="forbid", strict=True)

    webhook: str | None = Field(default=None, description="An http(s) URL POSTed to (`${env.NAME}` is expanded).")
    email: list[str] | str | None = Field(default=None, description="Addresses named in the notification.")


class HumanReviewSettings(AgentConfig):
    """The review page, notifications and what happens when nobody decides in time."""

    ui: ReviewUI | None = Field(default=None, description="`{ title, fields, base_url }`.")
    notifications: ReviewNotifications | None = Field(default=None, description="`{ webhook, email }`.")
    timeout: Duration | None = Field(default=None,
    description="How long a review waits. Default: until someone decides.")
    on_timeout: Literal["approve", "reject", "escalate"] = Field(
        default="reject", description="What a timed-out review does.")
    escalation_path: list[str] | str | None = Field(
        default=None, description="Who an escalated review goes to: URLs (POSTed to) or names/addresses.")
    escalation_timeout: Duration | None = Field(
        default=None, description="How long an escalated review waits. Default: `timeout`.")
    sweep_interval: Duration | None = Field(
        default=None, description="How often deadlines are checked. Default: a tenth of the timeout, 0.2s to 5s.")


class CustomSettings(AgentConfig):
    """Limits of a Custom agent. Other keys are free-form, or checked against the agent's `config_schema`."""

    model_config = ConfigDict(extra="allow", strict=True)

    threads: int = Field(default=4, ge=1, description="Threads running a plain (not async) Python function.")
    time_limit: Duration | None = Field(
        default=None, description="WebAssembly: the longest one call may run. Default: 90% of the agent's `timeout`.")
    memory_limit: _Size | None = Field(
        default=None, description="WebAssembly: the module's memory, e.g. `\"64Mi\"`. Default `\"64Mi\"`.")
    fuel: int | None = Field(default=None, gt=0, description="WebAssembly: instructions one call may execute.")


# -- the TypedDict twins, for type checkers (the keys and types of the models above; a test keeps them equal) ------

_Durationish = str | int | float


class _Base(TypedDict, total=False):
    join_timeout: _Durationish


class NoConfig(_Base, total=False):
    """The ``config`` of a kind that reads none of its own (``join_timeout`` only)."""


class LLMConfig(_Base, total=False):
    """The ``config`` of an LLM agent (its argument names are accepted too)."""

    base_url: str
    api: Literal["chat", "generate"]
    api_key_env: str
    api_key: str
    structured_output: bool
    output_field: str
    http_retries: int
    retry_base_delay: float
    max_retry_delay: float
    concurrency: int
    cache: bool
    engine: str
    provider: Any
    prompt: str
    system: str
    temperature: float
    max_tokens: int
    json_mode: bool
    context: Any
    output_schema: Any


class MLModelConfig(_Base, total=False):
    """The ``config`` of an MLModel agent (its argument names are accepted too)."""

    inputs: dict[str, list[str]]
    outputs: dict[str, str]
    score_offset: float
    batch_size: int
    max_wait_ms: float
    intra_op_num_threads: int
    inter_op_num_threads: int
    allow_pickle: bool
    model: Any
    features: list[str]


class BayesianNetworkConfig(_Base, total=False):
    """The ``config`` of a BayesianNetwork agent (its argument names are accepted too)."""

    output_key: str
    network: str
    query: list[str] | str
    evidence: dict[str, str]
    method: str


class DataProcessorConfig(_Base, total=False):
    """The ``config`` of a DataProcessor agent."""

    defaults: dict[str, Any]
    required_fields: list[str] | str
    schema: dict[str, Any] | str
    rename: dict[str, str]
    steps: list[str] | str
    fields: list[str] | str
    features: list[str] | dict[str, str] | str
    computed: list[str] | dict[str, str] | str
    select: list[str] | str


class DataNormalizerConfig(_Base, total=False):
    """The ``config`` of a DataNormalizer agent."""

    method: Literal["min_max", "minmax", "z_score", "zscore"]
    fields: dict[str, list[float] | dict[str, float]]
    clip: bool | float | list[float]
    keep_original: bool
    suffix: str


class HumanReviewConfig(_Base, total=False):
    """The ``config`` of a HumanReview agent."""

    ui: dict[str, Any]
    notifications: dict[str, Any]
    timeout: _Durationish
    on_timeout: Literal["approve", "reject", "escalate"]
    escalation_path: list[str] | str
    escalation_timeout: _Durationish
    sweep_interval: _Durationish


class CustomConfig(_Base, total=False):
    """The ``config`` of a Custom agent's limits; other keys are free-form (a dict literal with them is a
    ``dict[str, Any]``, which the annotation also accepts)."""

    threads: int
    time_limit: _Durationish
    memory_limit: str | int
    fuel: int

