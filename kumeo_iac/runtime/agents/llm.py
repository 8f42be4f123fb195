"""LLM: fills a prompt template from the event, asks a model (OpenAI-compatible or Ollama), emits the answer.

Per event: render ``system`` and ``prompt`` (see ``kumeo_iac.runtime.llm._template``) → look the request up in the
workflow's LLM cache bucket → on a miss call the model → in JSON mode parse and validate the reply → emit.

Output (the input event is never modified; a non-object payload is kept as ``{"input": payload}``):

- text mode: the event plus ``{<output_field>: {"text": …, "model": …, "cached": bool}}``;
- JSON mode (``json_mode: true`` or an ``output_schema``): the reply's fields merged over the event, plus
  ``{<output_field>: {"model": …, "cached": bool}}``; a reply that is JSON but not an object goes to
  ``<output_field>.json``. ``output_field`` defaults to ``"llm"``.

Failures: a 4xx answer (bad request, unknown model, bad key) rejects the event; timeouts, 429 and 5xx are retried
in the call (bounded, ``Retry-After`` honoured) and then by the worker. A reply that is not the JSON asked for is
retried by the worker like a transient error and rejected, with the parse or schema error, on the last delivery.
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, file_reference, load_json_file
from kumeo_iac.runtime.llm import (
    ChatClient,
    ChatReply,
    ChatRequest,
    InvalidReply,
    LLMError,
    ProviderSettings,
    ResponseCache,
    RetryPolicy,
    SchemaCheck,
    Template,
    cache_key,
    compile_template,
    create_client,
    open_cache,
    parse_json_reply,
    render_value,
    resolve_provider,
)

if TYPE_CHECKING:
    import httpx

    from kumeo_iac.compile import AgentPlan, WorkflowPlan

__all__ = ["DEFAULT_OUTPUT_FIELD", "LLMAgent"]

log = logging.getLogger("kumeo.runtime.llm")

#: Where the reply (text mode) or its metadata (JSON mode) goes in the output event.
DEFAULT_OUTPUT_FIELD: Final = "llm"
#: The largest context file put into a prompt.
_MAX_CONTEXT_BYTES: Final = 1_000_000
_JSON_INSTRUCTION: Final = "Answer with one JSON object and nothing else."


def _clean(text: str) -> str:
    """A prompt as written in a ``\"\"\"…\"\"\"`` block, without its indentation and surrounding blank lines."""
    return textwrap.dedent(text).strip()


class LLMAgent(KindAgent):
    """Runs one LLM agent: a prompt template, a provider, optional JSON output and the response cache.

    ``transport`` replaces httpx's network transport (tests count or fake requests with it). The response cache
    lives in the JetStream context of the worker (``host.js``); an agent driven without a worker has no cache.
    """

    kind_name = "LLM"
    options_in_config = True

    def __init__(self, plan: AgentPlan, workflow: WorkflowPlan, base_dir: Path, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(plan, workflow, base_dir)
        self.transport = transport
        self.cache: ResponseCache | None = None
        self.client: ChatClient | None = None
        #: Requests that reached the model server (cache misses), for tests and benchmarks.
        self.model_calls = 0
        self._started = False

    # -- start -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        options = self.options()
        self.provider: ProviderSettings = resolve_provider(options, self.label)
        prompt = options.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise KumeoRuntimeError(f"{self.label}: needs a prompt (a template string)")
        self.prompt: Template = compile_template(_clean(prompt), f"{self.label} prompt")
        system = options.get("system")
        if system is not None and not isinstance(system, str):
            raise KumeoRuntimeError(f"{self.label}: system must be a string")
        self.system: Template | None = compile_template(_clean(system), f"{self.label} system") if system else None

        schema = self._load_schema(options.get("output_schema"))
        self.schema_check = SchemaCheck(schema, self.label) if schema is not None else None
        self.json_mode = bool(options.get("json_mode")) or schema is not None
        self.structured = bool(options.get("structured_output")) and schema is not None
        field = options.get("output_field", DEFAULT_OUTPUT_FIELD)
        if not isinstance(field, str) or not field:
            raise KumeoRuntimeError(f"{self.label}: output_field must be a non-empty string")
        self.output_field: str = field

        self.contexts: dict[str, Any] = self._load_contexts(options.get("context"))
        templates = [t for t in (self.prompt, self.system) if t is not None]
        self._context_in_templates = any(t.uses_root("context") for t in templates)
        self._fixed_system = self._system_suffix(schema)

        policy = RetryPolicy(
            retries=int(options.get("http_retries", RetryPolicy.retries)),
            base_delay=float(options.get("retry_base_delay", RetryPolicy.base_delay)),
            max_delay=float(options.get("max_retry_delay", RetryPolicy.max_delay)),
        )
        self.client = create_client(self.provider, self.label, policy=policy, transport=self.transport,
                                    max_connections=int(options.get("concurrency", 16)))
        bucket = self.settings.get("cache_bucket")
        js = self.host.js if self.host is not None else None
        if options.get("cache", True) is not False and isinstance(bucket, str) and js is not None:
            try:
                self.cache = await open_cache(js, bucket, self.workflow)
            except Exception as exc:  # noqa: BLE001 - run without a cache rather than not at all
                log.warning("%s: LLM cache bucket %s unavailable, running without it: %r", self.label, bucket, exc)
        self._started = True
        log.info("%s: %s model %s at %s (%s mode, cache %s)", self.label, self.provider.provider,
                 self.provider.model, self.provider.base_url, "JSON" if self.json_mode else "text",
                 self.cache.bucket if self.cache else "off")

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        self._started = False

    def _load_schema(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, Mapping) and "file" not in value:
            return dict(value)
        file = file_reference(value)
        if file is None:
            raise KumeoRuntimeError(f"{self.label}: output_schema must be a JSON Schema object or a file")
        return load_json_file(self.resolve_path(file))

    def _load_contexts(self, value: Any) -> dict[str, Any]:
        """Each knowledge context the agent names, by id: a JSON file parsed, any other file as text.

        BayesianNetwork contexts are answered by the worker (their answer is already a field of the event, under
        the context's id); Database contexts cannot be read here and are skipped with a warning.
        """
        items = value if isinstance(value, list) else ([] if value is None else [value])
        out: dict[str, Any] = {}
        for item in items:
            if isinstance(item, Mapping) and "data" in item:
                name = str(item["data"])
                out[name] = item["value"] if "value" in item else self._read_context(str(item.get("file")))
            elif isinstance(item, Mapping) and item.get("kind") == "BayesianNetwork":
                continue
            elif isinstance(item, Mapping) and item.get("kind") in (None, "KnowledgeBase") and isinstance(
                    item.get("path"), str):
                name = str(item.get("id") or Path(item["path"]).stem)
                out[name] = self._read_context(item["path"])
            elif isinstance(item, Mapping):
                log.warning("%s: context %s (%s) cannot be put in a prompt; ignored", self.label,
                            item.get("id"), item.get("kind"))
            elif isinstance(item, str) and self.resolve_path(item).exists():
                out[Path(item).stem] = self._read_context(item)
            else:
                raise KumeoRuntimeError(f"{self.label}: context {item!r} is neither a context of the workflow "
                                        "nor a file")
        return out

    def _read_context(self, name: str) -> Any:
        path = self.resolve_path(name)
        if path.is_dir():
            return {p.name: self._read_context(str(p)) for p in sorted(path.iterdir()) if p.is_file()}
        try:
            size = path.stat().st_size
        except OSError:
            raise KumeoRuntimeError(f"{self.label}: context file {path} not found") from None
        if size > _MAX_CONTEXT_BYTES:
            raise KumeoRuntimeError(f"{self.label}: context file {path} is {size} bytes, too large for a prompt "
                                    f"(limit {_MAX_CONTEXT_BYTES})")
        if path.suffix.lower() == ".json":
            return load_json_file(path)
        return path.read_text(encoding="utf-8", errors="replace")

    def _system_suffix(self, schema: Any) -> str:
        """What is appended to the system message: unreferenced contexts and, in JSON mode, the JSON instruction.

        OpenAI's JSON mode requires the word JSON in the messages; a schema in the instruction helps any model.
        """
        parts = []
        if self.contexts and not self._context_in_templates:
            lines = ["Context:"]
            for name, content in self.contexts.items():
                lines.append(f"[{name}]\n{render_value(content)}")
            parts.append("\n".join(lines))
        if self.json_mode:
            text = _JSON_INSTRUCTION
            if schema is not None:
                text += " It must match this JSON Schema: " + json.dumps(schema, separators=(",", ":"),
                                                                         sort_keys=True)
            parts.append(text)
        return "\n\n".join(parts)

    # -- per event ---------------------------------------------------------------------------------------------

    def template_scope(self, payload: Any) -> dict[str, Any]:
        """What templates see: the payload's fields, ``input``, ``config`` and (when given) ``context``."""
        data = self.scope(payload)
        if self.contexts:
            data["context"] = self.contexts
        return data

    def build_request(self, payload: Any) -> ChatRequest:
        """The chat request for one payload (pure: no I/O), also the basis of the cache key."""
        scope = self.template_scope(payload)
        system = self.system.render(scope).strip() if self.system is not None else ""
        if self._fixed_system:
            system = f"{system}\n\n{self._fixed_system}" if system else self._fixed_system
        messages: list[tuple[str, str]] = []
        if system:
            messages.append(("system", system))
        messages.append(("user", self.prompt.render(scope).strip()))
        return ChatRequest(
            model=self.provider.model,
            messages=tuple(messages),
            temperature=self.provider.temperature,
            max_tokens=self.provider.max_tokens,
            json_mode=self.json_mode,
            schema=self.schema_check.schema if self.structured and self.schema_check is not None else None,
        )

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(self._started and self.client is not None)
        assert self.client is not None
        request = self.build_request(event.data)
        key = cache_key(self.provider.provider, request) if self.cache is not None else ""
        if self.cache is not None:
            cached = await self.cache.get(key)
            if cached is not None:
                try:
                    return [Emit(self.output(event.data, cached, cached=True))]
                except InvalidReply:
                    pass  # stored before the schema changed: ask the model again
        margin = min(0.5, self.plan.timeout_seconds * 0.05)  # answer before the worker's own timeout fires
        reply = await self.client.complete(request, time.monotonic() + self.plan.timeout_seconds - margin)
        self.model_calls += 1
        try:
            output = self.output(event.data, reply, cached=False)
        except InvalidReply as exc:
            message = f"{self.label}: {exc}"
            if reply.finish_reason == "length":
                message += " (the reply was cut off at max_tokens)"
            if event.attempt >= self.plan.max_deliver:
                raise EventRejected(message) from None
            raise LLMError(f"{message}; retrying (delivery {event.attempt} of {self.plan.max_deliver})") from None
        if self.cache is not None:
            await self.cache.put(key, reply)
        return [Emit(output)]

    def output(self, payload: Any, reply: ChatReply, *, cached: bool) -> dict[str, Any]:
        """The event to emit for a reply (see the module docstring); :class:`InvalidReply` in JSON mode."""
        out: dict[str, Any] = dict(payload) if isinstance(payload, Mapping) else {"input": payload}
        meta: dict[str, Any] = {"model": reply.model, "cached": cached}
        if not self.json_mode:
            out[self.output_field] = {"text": reply.text.strip(), **meta}
            return out
        value = parse_json_reply(reply.text)
        if self.schema_check is not None:
            self.schema_check.check(value)
        if isinstance(value, dict):
            out.update(value)
            out[self.output_field] = meta
        else:
            out[self.output_field] = {"json": value, **meta}
        return out
