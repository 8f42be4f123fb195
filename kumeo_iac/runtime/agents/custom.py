"""Custom: your own code as an agent — a Python ``module:function`` or a WebAssembly module (JSON in, JSON out).

Python: ``entrypoint: "package.module:function"`` (or ``"path/to/file.py:function"``, relative to the workflow
file; the workflow's directory is importable). The function takes the payload (a dict), and the :class:`Event`
too when it has a second parameter or one named ``event``; it returns a dict (one message) or a list of dicts.
An ``async def`` runs on the worker's loop; a plain function runs in a thread of the agent's own pool, under the
agent's ``timeout``. Raising ``EventRejected`` dead-letters the event at once; any other exception is retried.

WebAssembly: ``wasm: "module.wasm"`` (or ``.wat``) following the ABI in ``kumeo_iac.runtime.wasm``, run with
wasmtime under ``config.time_limit`` (default: 90 % of the agent's timeout), ``config.memory_limit`` (default
``"64Mi"``) and, optionally, ``config.fuel``. A module that exceeds a limit, traps, or breaks the ABI rejects the
event (it would do the same again on a retry).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, file_reference

__all__ = ["CustomAgent", "parse_size"]

_DEFAULT_MEMORY_LIMIT: Final = 64 << 20
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|k|ki|kb|kib|m|mi|mb|mib|g|gi|gb|gib)?\s*\Z", re.IGNORECASE)
_SIZE_UNITS: Final = {None: 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
                      "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}


def parse_size(value: Any, what: str) -> int:
    """``"64Mi"``, ``"16MB"``, ``"512k"`` or a number of bytes."""
    if isinstance(value, bool):
        raise KumeoRuntimeError(f"{what} must be a size, not {value!r}")
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise KumeoRuntimeError(f'{what} {value!r} is not a size (write e.g. "64Mi", "16MB" or bytes)')
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise KumeoRuntimeError(f"{what} must be positive, got {value!r}")
    return size


class CustomAgent(KindAgent):
    """Runs a user's Python function or WebAssembly module on each event."""

    kind_name = "Custom"
    options_in_config = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._function: Callable[..., Any] | None = None
        self._is_async = False
        self._wants_event = False
        self._wasm: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def start(self) -> None:
        options = self.agent_config()
        entrypoint = self.settings.get("entrypoint")
        wasm = file_reference(self.settings.get("wasm"))
        if entrypoint and wasm:
            raise KumeoRuntimeError(f"{self.label}: give either 'entrypoint' (Python) or 'wasm', not both")
        if not entrypoint and not wasm:
            raise KumeoRuntimeError(f"{self.label}: needs 'entrypoint' (\"package.module:function\") or 'wasm' "
                                    "(a WebAssembly module file)")
        threads = int(options.get("threads", 4))
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(threads, 1),
                                                           thread_name_prefix=f"kumeo-custom-{self.plan.id}")
        if entrypoint:
            self._load_function(str(entrypoint))
        else:
            self._load_wasm(str(wasm), options)

    async def stop(self) -> None:
        if self._wasm is not None:
            self._wasm.close()
            self._wasm = None
        if self._pool is not None:
            # Do not wait: a Python function stuck past its timeout cannot be interrupted, only abandoned.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def process(self, event: Event) -> list[Emit]:
        if self._pool is None:
            raise KumeoRuntimeError(f"{self.label}: process() called before start()")
        loop = asyncio.get_running_loop()
        if self._wasm is not None:
            from kumeo_iac.runtime.wasm import WasmError

            try:
                result = await loop.run_in_executor(self._pool, self._wasm.call, event.data)
            except WasmError as exc:
                raise EventRejected(str(exc)) from None
            return self._emits(result, "the WebAssembly module")
        assert self._function is not None
        args = (event.data, event) if self._wants_event else (event.data,)
        if self._is_async:
            result = await self._function(*args)
        else:
            future = loop.run_in_executor(self._pool, self._function, *args)
            result = await asyncio.wait_for(future, self.plan.timeout_seconds)
        return self._emits(result, f"{self.settings.get('entrypoint')}")

    # -- loading ---------------------------------------------------------------------------------------------

    def _load_function(self, entrypoint: str) -> None:
        module_name, sep, function_name = entrypoint.rpartition(":")
        if not sep or not module_name or not function_name:
            raise KumeoRuntimeError(f"{self.label}: entrypoint {entrypoint!r} must be \"package.module:function\"")
        module = self._import(module_name, entrypoint)
        function: Any = module
        for name in function_name.split("."):
            function = getattr(function, name, None)
            if function is None:
                raise KumeoRuntimeError(f"{self.label}: entrypoint {entrypoint!r}: {module_name} has no "
                                        f"{function_name!r}")
        if not callable(function):
            raise KumeoRuntimeError(f"{self.label}: entrypoint {entrypoint!r} is not a function")
        self._function = function
        # An object with an async __call__ counts as async too.
        self._is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            type(function).__call__)
        self._wants_event = _wants_event(function)

    def _import(self, module_name: str, entrypoint: str) -> Any:
        if module_name.endswith(".py") or "/" in module_name:
            path = self.resolve_path(module_name)
            if not path.is_file():
                raise KumeoRuntimeError(f"{self.label}: entrypoint {entrypoint!r}: {path} not found")
            spec = importlib.util.spec_from_file_location(f"kumeo_custom_{self.plan.id}_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        # The workflow's directory is importable, so `handlers:enrich` finds handlers.py next to the .kumeo file.
        base = str(self.base_dir.resolve())
        if base not in sys.path:
            sys.path.insert(0, base)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise KumeoRuntimeError(
                    f"{self.label}: entrypoint {entrypoint!r}: no module {exc.name!r} (looked in {base} and the "
                    "installed packages)") from None
            raise

    def _load_wasm(self, name: str, options: Mapping[str, Any]) -> None:
        from kumeo_iac.runtime.review import parse_duration
        from kumeo_iac.runtime.wasm import WasmModule

        time_limit = (parse_duration(options["time_limit"], f"{self.label}: config.time_limit")
                      if options.get("time_limit") is not None else 0.9 * self.plan.timeout_seconds)
        memory_limit = (parse_size(options["memory_limit"], f"{self.label}: config.memory_limit")
                        if options.get("memory_limit") is not None else _DEFAULT_MEMORY_LIMIT)
        fuel = options.get("fuel")
        if fuel is not None and (isinstance(fuel, bool) or not isinstance(fuel, int) or fuel <= 0):
            raise KumeoRuntimeError(f"{self.label}: config.fuel must be a positive integer, got {fuel!r}")
        self._wasm = WasmModule(self.resolve_path(name), name=self.label, time_limit=time_limit,
                                memory_limit=memory_limit, fuel=fuel)

    def _emits(self, result: Any, what: str) -> list[Emit]:
        if isinstance(result, Mapping):
            return [Emit(dict(result))]
        if isinstance(result, list) and all(isinstance(item, Mapping) for item in result):
            return [Emit(dict(item)) for item in result]
        got = "None" if result is None else type(result).__name__
        raise EventRejected(f"{self.label}: {what} returned {got}; it must return a dict or a list of dicts")


def _wants_event(function: Callable[..., Any]) -> bool:
    with contextlib.suppress(TypeError, ValueError):
        params = [p for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return len(params) >= 2 or any(p.name == "event" for p in params[1:])
    return False

