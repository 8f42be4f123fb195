"""Reading a model's JSON answer: strip code fences and chatter, parse, validate against the output schema."""

from __future__ import annotations

import json
import re
from typing import Any

from kumeo_iac.errors import KumeoRuntimeError

__all__ = ["InvalidReply", "SchemaCheck", "parse_json_reply"]

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


class InvalidReply(ValueError):
    """The reply is not the JSON the agent asked for (not JSON, or not valid against the schema)."""


def parse_json_reply(text: str) -> Any:
    """The JSON value in a reply: the whole text, else a fenced block, else the outermost ``{…}`` / ``[…]``."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    # The outermost value starts at whichever of { and [ comes first (not a list nested in a broken object).
    starts = [(text.find(o), o, c) for o, c in (("{", "}"), ("[", "]")) if text.find(o) >= 0]
    if starts:
        start, _, closer = min(starts)
        end = text.rfind(closer)
        if start < end:
            candidates.append(text[start:end + 1])
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    preview = " ".join(text.split())[:120]
    raise InvalidReply(f"the reply is not JSON: {preview!r}" if preview else "the reply is empty")


class SchemaCheck:
    """A compiled JSON Schema (jsonschema; the draft its ``$schema`` names, 2020-12 otherwise)."""

    def __init__(self, schema: Any, where: str) -> None:
        try:
            import jsonschema
            import jsonschema.validators
        except ImportError:
            raise KumeoRuntimeError(f"{where}: output_schema needs jsonschema: pip install jsonschema") from None
        if not isinstance(schema, dict):
            raise KumeoRuntimeError(f"{where}: output_schema must be a JSON Schema object")
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise KumeoRuntimeError(f"{where}: output_schema is not a valid JSON Schema: {exc.message}") from None
        self.schema = schema
        self._validator = cls(schema)
        self._best_match = jsonschema.exceptions.best_match

    def check(self, value: Any) -> None:
        """Raise :class:`InvalidReply` naming the most relevant violation and where it is."""
        error = self._best_match(self._validator.iter_errors(value))
        if error is not None:
            where = error.json_path if hasattr(error, "json_path") else "$"
            raise InvalidReply(f"schema violation at {where}: {error.message}")
