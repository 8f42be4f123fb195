"""What a chat client is asked and what it answers, independent of the wire format of the provider."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One chat turn: the messages (system first, then the user prompt) and the sampling parameters."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float | None = None
    max_tokens: int | None = None
    json_mode: bool = False
    #: A JSON Schema sent to the server to constrain the output (``structured_output``); None: plain JSON mode.
    schema: dict[str, Any] | None = None

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def identity(self) -> dict[str, Any]:
        """Everything that determines the answer, as JSON: what the response cache key is made of."""
        return {
            "model": self.model,
            "messages": [[role, content] for role, content in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "json_mode": self.json_mode,
            "schema": self.schema,
        }


@dataclasses.dataclass(frozen=True)
class ChatReply:
    """The model's answer: its text, the model that produced it, token usage and why generation stopped."""

    text: str
    model: str
    usage: dict[str, int] = dataclasses.field(default_factory=dict)
    finish_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "model": self.model, "usage": dict(self.usage), "finish_reason": self.finish_reason}

    @classmethod
    def from_json(cls, data: Any) -> ChatReply | None:
        """A reply read back from the cache; None when the stored value does not have the expected shape."""
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return None
        stored_usage = data.get("usage")
        usage = stored_usage if isinstance(stored_usage, dict) else {}
        return cls(str(data["text"]), str(data.get("model") or ""),
                   {str(k): int(v) for k, v in usage.items() if isinstance(v, int)}, data.get("finish_reason"))
