"""The errors an LLM call can end in, split the way the worker cares about: retry later, or never."""

from __future__ import annotations

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import EventRejected

__all__ = ["LLMError", "LLMRejected"]


class LLMError(KumeoRuntimeError):
    """The model server failed in a way that may pass (timeout, 429, 5xx, unreachable): the event is retried."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class LLMRejected(EventRejected):
    """The model server refused this request (a 4xx other than 408/409/425/429): retrying cannot help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
