"""DataProcessor: validates, fills, renames, cleans and computes the fields of each event.

The steps run in a fixed order, so a setting never depends on where it is written:
``defaults`` → ``required_fields`` → ``schema`` → ``rename`` → ``steps`` (text cleaning) →
``features``/``computed`` → ``select``. A failed check rejects the event (dead-letter subject) with the reason.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.expr import Expression
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, evaluate, file_reference, is_missing, load_json_file

__all__ = ["TEXT_STEPS", "DataProcessorAgent"]

_log = logging.getLogger("kumeo.runtime")

_FIELD: Final = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_COMPUTED: Final = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+?)\s*$", re.DOTALL)
_WHITESPACE: Final = re.compile(r"\s+")


def _remove_special_chars(text: str) -> str:
    # Letters, digits and whitespace of any script survive; punctuation and symbols go.
    return "".join(c for c in text if c.isalnum() or c.isspace() or unicodedata.category(c) == "Mn")


#: The text steps `steps:` may name, applied in the order written.
TEXT_STEPS: Final[dict[str, Callable[[str], str]]] = {
    "trim": str.strip,
    "lowercase": str.lower,
    "uppercase": str.upper,
    "remove_special_chars": _remove_special_chars,
    "collapse_whitespace": lambda s: _WHITESPACE.sub(" ", s).strip(),
}

# A mapping with one of these keys is a schema, even if it also has a "file" property.
_SCHEMA_KEYWORDS: Final = frozenset({"type", "properties", "required", "items", "$schema", "$ref", "enum",
                                     "allOf", "anyOf", "oneOf", "const"})

_KNOWN_OPTIONS: Final = frozenset(
    {"defaults", "required_fields", "schema", "rename", "steps", "fields", "features", "computed", "select"}
)


class DataProcessorAgent(KindAgent):
    """Runs one DataProcessor: every check and transform it is configured with, on every event."""

    kind_name = "DataProcessor"
    options_in_config = True

    async def start(self) -> None:
        options = self.options()
        config = self.agent_config()
        unknown = sorted(set(config) - _KNOWN_OPTIONS)
        if unknown:
            _log.warning("%s: ignoring unknown config keys: %s", self.label, ", ".join(unknown))

        self.defaults: dict[str, Any] = dict(self._mapping(options, "defaults"))
        self.required_fields: list[str] = self._names(options, "required_fields")
        self.rename: dict[str, str] = {str(k): str(v) for k, v in self._mapping(options, "rename").items()}
        self.select: list[str] | None = self._names(options, "select") if options.get("select") is not None else None
        self.validator = self._schema_validator(options.get("schema"))

        steps = options.get("steps") or []
        if isinstance(steps, str):
            steps = [steps]
        self.steps: list[Callable[[str], str]] = []
        for step in steps:
            if step not in TEXT_STEPS:
                raise KumeoRuntimeError(
                    f"{self.label}: unknown text step {step!r}; use one of {', '.join(TEXT_STEPS)}"
                )
            self.steps.append(TEXT_STEPS[step])
        self.step_fields: list[str] | None = (
            self._names(options, "fields") if options.get("fields") is not None else None
        )

        # (name, expression or None): None keeps the field as it is; an expression computes it.
        self.features: list[tuple[str, Expression | None]] = []
        for key in ("features", "computed"):
            self.features.extend(self._features(options.get(key), key))
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)

        for name, value in self.defaults.items():
            if is_missing(data.get(name)):
                data[name] = value

        missing = [name for name in self.required_fields if is_missing(data.get(name))]
        if missing:
            raise EventRejected(f"{self.label}: missing required field(s): {', '.join(missing)}")

        if self.validator is not None:
            self._validate(data)

        for old, new in self.rename.items():
            if old in data:
                data[new] = data.pop(old)

        if self.steps:
            names = self.step_fields if self.step_fields is not None else list(data)
            for name in names:
                value = data.get(name)
                if isinstance(value, str):
                    for step in self.steps:
                        value = step(value)
                    data[name] = value

        kept: list[str] = []
        for name, expression in self.features:
            kept.append(name)
            if expression is None:
                if name not in data:
                    raise EventRejected(f"{self.label}: missing feature field '{name}'")
                continue
            data[name] = evaluate(expression, self.scope(data), f"{self.label}: feature '{name}'")

        if self.select is not None:
            keep = dict.fromkeys([*self.select, *kept])
            data = {name: data[name] for name in keep if name in data}
        return [Emit(data)]

    # -- settings -------------------------------------------------------------------------------------------------

    def _mapping(self, options: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = options.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise KumeoRuntimeError(f"{self.label}: '{key}' must be an object, got {type(value).__name__}")
        return value

    def _names(self, options: Mapping[str, Any], key: str) -> list[str]:
        value = options.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KumeoRuntimeError(f"{self.label}: '{key}' must be a list of field names")
        return list(value)

    def _features(self, value: Any, key: str) -> list[tuple[str, Expression | None]]:
        if value is None:
            return []
        if isinstance(value, Mapping):  # { name: "expr" }
            return [(str(name), self.compile(text, f"{key} '{name}'")) for name, text in value.items()]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise KumeoRuntimeError(
                f"{self.label}: '{key}' must be a list such as [\"amount\", \"big: amount > 1000\"]"
            )
        out: list[tuple[str, Expression | None]] = []
        for item in value:
            if not isinstance(item, str):
                raise KumeoRuntimeError(f"{self.label}: '{key}' entries must be strings, got {item!r}")
            plain = _FIELD.match(item)
            if plain:
                out.append((plain.group(1), None))
                continue
            computed = _COMPUTED.match(item)
            if not computed:
                raise KumeoRuntimeError(
                    f"{self.label}: {key} entry {item!r} is neither a field name nor `name: expression`"
                )
            name, text = computed.groups()
            out.append((name, self.compile(text, f"{key} '{name}'")))
        return out

    def _schema_validator(self, schema: Any) -> Any:
        if schema is None:
            return None
        file = file_reference(schema)
        if file is not None and (isinstance(schema, str) or not (set(schema) & _SCHEMA_KEYWORDS)):
            schema = load_json_file(self.resolve_path(file))  # a schema file, relative to the workflow
        if not isinstance(schema, Mapping):
            raise KumeoRuntimeError(f"{self.label}: 'schema' must be a JSON schema object or a schema file")
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - jsonschema is a dependency of the runtime
            raise KumeoRuntimeError(f"{self.label}: 'schema' needs the jsonschema package") from None
        schema = dict(schema)  # jsonschema's types want a dict; a Mapping from a Python caller becomes one
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as error:
            raise KumeoRuntimeError(f"{self.label}: invalid JSON schema: {error.message}") from None
        return cls(schema)

    def _validate(self, data: dict[str, Any]) -> None:
        from jsonschema.exceptions import best_match

        error = best_match(self.validator.iter_errors(data))
        if error is not None:
            raise EventRejected(f"{self.label}: schema violation at {error.json_path}: {error.message}")
