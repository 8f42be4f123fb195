"""MLModel: runs an ONNX model (ONNX Runtime) on fields of each event, several events per inference call.

Settings (named arguments, or entries of the agent's ``config`` object, which win):

- ``model``: the model file, relative to the workflow file: a path or ``{file: …, type: …}``. ``type`` defaults
  from the suffix (``.onnx`` → ``onnx``). Only ``onnx`` runs; a pickled scikit-learn model (``.pkl``/``.joblib``,
  type ``sklearn``) loads only with ``allow_pickle: true``, with a warning, because unpickling executes code.
  Any other type (pytorch, tensorflow, keras…) fails at start: export it to ONNX.
- ``features: [field, …]``: one row per event, these fields in this order, into the model's single input.
  ``inputs: {tensor_name: [field, …]}`` feeds models with several inputs. Fields may be dotted paths
  (``card.amount``); booleans become 0/1; a missing, null, NaN or non-numeric value rejects the event naming the
  field. The row's element type is the input's (float32 for ``tensor(float)``; float64, int64, int32 too).
- ``outputs: {onnx_output: field}``: where each model output goes in the event. Default: for an IsolationForest
  (outputs ``label`` and ``scores``) ``anomaly_label`` (1 normal, -1 anomaly) and ``anomaly_score``; for any other
  model every output under its own name. Values per event: a number for one-element rows, else a list (a dict for
  skl2onnx's ZipMap probabilities).
- ``anomaly_score`` = ``-(scores + offset)``, which is exactly ``-IsolationForest.score_samples(x)``: the anomaly
  score of the Isolation Forest paper, in (0, 1], higher = more anomalous (about 0.5 and below is normal).
  ``scores`` is sklearn's ``decision_function`` = ``score_samples - offset_``; ``offset`` is read from the
  model's ONNX metadata ``kumeo.score_offset`` (the fraud example's training script writes it), else the
  ``score_offset`` setting, else -0.5 (sklearn's ``offset_`` for ``contamination="auto"``).
- ``batch_size`` (default 256): the most events one inference call takes. ``max_wait_ms`` (default 0): how long a
  call with fewer rows than ``batch_size`` waits for more rows from concurrent callers before it runs.
- ``intra_op_num_threads`` (default 1), ``inter_op_num_threads`` (default 1): ONNX Runtime's thread pools.

Micro-batching and the worker: the worker pulls up to its own batch size (``--batch-size``, 64 by default) of
messages and hands them to :meth:`MLModelAgent.process_batch` at once, which stacks them into
``ceil(n / batch_size)`` inference calls. The worker waits for that batch before it pulls again, so within one
consumer ``max_wait_ms`` can only add latency; it helps when calls overlap (an agent with several inputs has one
pull loop per consumer; callers of :meth:`process`). Make the worker's batch size a multiple of ``batch_size``.

Output: the event with the output fields added (a new object; the input is not modified).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, file_reference, is_number
from kumeo_iac.runtime.dmx import redact_quotes

__all__ = ["DEFAULT_BATCH_SIZE", "ISOLATION_FOREST_OUTPUTS", "SCORE_OFFSET_METADATA", "MLModelAgent"]

log = logging.getLogger("kumeo.runtime.ml_model")

DEFAULT_BATCH_SIZE: Final = 256
#: The derived output an ``outputs`` mapping may name when the model has ``scores``: ``-(scores + offset)``.
ANOMALY_SCORE: Final = "anomaly_score"
#: Where an IsolationForest's outputs go by default (model output → event field).
ISOLATION_FOREST_OUTPUTS: Final = {"label": "anomaly_label", ANOMALY_SCORE: "anomaly_score"}
#: The ONNX metadata key holding sklearn's ``offset_`` (so ``scores`` can be turned back into score_samples).
SCORE_OFFSET_METADATA: Final = "kumeo.score_offset"
_SKLEARN_AUTO_OFFSET: Final = -0.5
_SUFFIX_TYPES: Final = {
    ".onnx": "onnx", ".ort": "onnx", ".pkl": "sklearn", ".pickle": "sklearn", ".joblib": "sklearn",
    ".pt": "pytorch", ".pth": "pytorch", ".torchscript": "pytorch", ".h5": "keras", ".keras": "keras",
    ".pb": "tensorflow", ".savedmodel": "tensorflow", ".json": "xgboost", ".ubj": "xgboost", ".txt": "lightgbm",
}
_PICKLE_TYPES: Final = ("sklearn", "pickle", "joblib")
_DTYPES: Final = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                  "tensor(int32)": "int32"}

Row = dict[str, list[float | int]]  # tensor name → this event's values


class MLModelAgent(KindAgent):
    """Scores events with one model session per worker, stacking a batch of events into one inference call."""

    kind_name = "MLModel"
    options_in_config = True

    async def start(self) -> None:
        options = self.options()
        file, model_type = self._model_reference(options.get("model"))
        path = self.resolve_path(file)
        if not path.is_file():
            raise KumeoRuntimeError(f"{self.label}: model file {path} not found")
        if model_type == "onnx":
            runner: _Runner = await asyncio.to_thread(_OnnxRunner, path, options, self.label)
        elif model_type in _PICKLE_TYPES:
            if options.get("allow_pickle") is not True:
                raise KumeoRuntimeError(
                    f"{self.label}: {path.name} is a pickled {model_type} model; loading it executes code from the "
                    "file. Export it to ONNX (skl2onnx), or set allow_pickle: true if you trust the file")
            log.warning("%s: loading pickled model %s (allow_pickle: true): unpickling executes code from the file; "
                        "load only files you trust, and prefer ONNX", self.label, path)
            runner = await asyncio.to_thread(_PickleRunner, path, self.label)
        else:
            raise KumeoRuntimeError(
                f"{self.label}: model type '{model_type}' is not supported; this runtime runs ONNX models "
                "(export it, e.g. torch.onnx.export, tf2onnx, skl2onnx) or, with allow_pickle, sklearn pickles")
        self.runner = runner
        self.inputs = self._input_fields(options, runner)
        self.outputs = self._output_fields(options.get("outputs"), runner)
        self.batch_size = _positive_int(options.get("batch_size", DEFAULT_BATCH_SIZE), "batch_size", self.label)
        max_wait_ms = options.get("max_wait_ms", 0)
        if not is_number(max_wait_ms) or max_wait_ms < 0:
            raise KumeoRuntimeError(f"{self.label}: max_wait_ms must be a number >= 0, got {max_wait_ms!r}")
        self._batcher = _MicroBatcher(self._infer, self.batch_size, float(max_wait_ms) / 1000.0)
        self.started = True

    async def stop(self) -> None:
        self.runner = None  # type: ignore[assignment]
        self.started = False

    # -- per event -------------------------------------------------------------------------------------------

    async def process(self, event: Event) -> list[Emit]:
        result = (await self.process_batch([event]))[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def process_batch(self, events: list[Event]) -> list[list[Emit] | BaseException]:
        self._require_started(getattr(self, "started", False))
        out: list[list[Emit] | BaseException] = [None] * len(events)  # type: ignore[list-item]
        payloads: list[dict[str, Any]] = []
        rows: list[Row] = []
        slots: list[int] = []
        for index, event in enumerate(events):
            try:
                payload = self.payload(event.data)
                rows.append(self._row(payload))
            except EventRejected as error:
                out[index] = error
                continue
            payloads.append(payload)
            slots.append(index)
        if rows:
            results = await self._batcher.submit(rows)
            for slot, payload, result in zip(slots, payloads, results, strict=False):
                out[slot] = result if isinstance(result, BaseException) else [Emit({**payload, **result})]
        return out

    def _row(self, payload: Mapping[str, Any]) -> Row:
        row: Row = {}
        for tensor, fields, integral in self.inputs:
            values: list[float | int] = []
            for field, path in fields:
                value = _lookup(payload, path)
                if isinstance(value, bool):
                    values.append(int(value))
                    continue
                if value is _ABSENT or value is None:
                    raise EventRejected(f"{self.label}: feature '{field}' is missing")
                if not is_number(value):
                    raise EventRejected(
                        f"{self.label}: feature '{field}' must be a number or a boolean, got {value!r}")
                if not math.isfinite(value):
                    raise EventRejected(f"{self.label}: feature '{field}' must be finite, got {value!r}")
                if integral and not float(value).is_integer():
                    raise EventRejected(f"{self.label}: feature '{field}' must be an integer, got {value!r}")
                values.append(int(value) if integral else value)
            row[tensor] = values
        return row

    def _infer(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """One inference call on stacked rows; the fields each row's event gets."""
        produced = self.runner.run(rows)
        columns = [(field, produced[output]) for output, field in self.outputs]
        return [{field: column[i] for field, column in columns} for i in range(len(rows))]

    # -- settings --------------------------------------------------------------------------------------------

    def _model_reference(self, value: Any) -> tuple[str, str]:
        file = file_reference(value)
        if not file:
            raise KumeoRuntimeError(f"{self.label}: 'model' must be a file path or {{file: …, type: …}}, "
                                    f"got {value!r}")
        declared = value.get("type") if isinstance(value, Mapping) else None
        if declared is not None and not isinstance(declared, str):
            raise KumeoRuntimeError(f"{self.label}: model type must be a string, got {declared!r}")
        model_type = (declared or _SUFFIX_TYPES.get(Path(file).suffix.lower()) or "").strip().lower()
        if not model_type:
            raise KumeoRuntimeError(
                f"{self.label}: cannot tell the type of model file {file!r}; name it .onnx or give "
                "{file: …, type: \"onnx\"}")
        return file, model_type

    def _input_fields(self, options: Mapping[str, Any], runner: _Runner
                      ) -> list[tuple[str, list[tuple[str, list[str]]], bool]]:
        features, inputs = options.get("features"), options.get("inputs")
        if features is not None and inputs is not None:
            raise KumeoRuntimeError(f"{self.label}: give either 'features' or 'inputs', not both")
        if features is not None:
            if len(runner.inputs) != 1:
                names = ", ".join(runner.inputs)
                raise KumeoRuntimeError(f"{self.label}: the model has {len(runner.inputs)} inputs ({names}); map "
                                        "fields to each with inputs: {tensor_name: [field, …]}")
            inputs = {next(iter(runner.inputs)): features}
        if not isinstance(inputs, Mapping) or not inputs:
            raise KumeoRuntimeError(f"{self.label}: needs 'features: [field, …]' (the model's input, in order)")
        out = []
        for tensor, fields in inputs.items():
            if tensor not in runner.inputs:
                raise KumeoRuntimeError(f"{self.label}: the model has no input '{tensor}' "
                                        f"(inputs: {', '.join(runner.inputs)})")
            if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
                raise KumeoRuntimeError(f"{self.label}: input '{tensor}' needs a non-empty list of field names")
            width, dtype = runner.inputs[tensor]
            if width is not None and width != len(fields):
                raise KumeoRuntimeError(f"{self.label}: input '{tensor}' takes {width} values per row but "
                                        f"{len(fields)} field(s) are given ({', '.join(fields)})")
            out.append((str(tensor), [(f, f.split(".")) for f in fields], dtype.startswith("int")))
        missing = [name for name in runner.inputs if name not in inputs]
        if missing:
            raise KumeoRuntimeError(f"{self.label}: no fields for model input(s) {', '.join(missing)}")
        return out

    def _output_fields(self, outputs: Any, runner: _Runner) -> list[tuple[str, str]]:
        available = list(runner.outputs)
        if outputs is None:
            if runner.is_isolation_forest:
                return [(o, f) for o, f in ISOLATION_FOREST_OUTPUTS.items()]
            return [(o, o) for o in available]
        if not isinstance(outputs, Mapping) or not outputs:
            raise KumeoRuntimeError(f"{self.label}: 'outputs' must be an object {{model_output: field}}")
        for name, field in outputs.items():
            if name not in available:
                raise KumeoRuntimeError(f"{self.label}: the model has no output '{name}' "
                                        f"(outputs: {', '.join(available)})")
            if not isinstance(field, str) or not field:
                raise KumeoRuntimeError(f"{self.label}: output '{name}' must map to a field name, got {field!r}")
        return [(str(o), str(f)) for o, f in outputs.items()]


# -- runners: one model format each ---------------------------------------------------------------------------------


class _Runner:
    #: input name → (values per row or None when the model does not fix it, element type)
    inputs: dict[str, tuple[int | None, str]]
    #: output names a mapping may use (including derived ones such as ``anomaly_score``)
    outputs: list[str]
    is_isolation_forest: bool

    def run(self, rows: Sequence[Row]) -> dict[str, list[Any]]:
        """Outputs by name, one value per row."""
        raise NotImplementedError


class _OnnxRunner(_Runner):
    """One onnxruntime InferenceSession (CPU) with its thread pools sized by the settings."""

    def __init__(self, path: Path, options: Mapping[str, Any], label: str) -> None:
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError as error:
            raise KumeoRuntimeError(
                f"{label}: ONNX models need onnxruntime and numpy: pip install 'kumeo-iac[ml]' ({error})") from error
        self.np = np
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = _positive_int(
            options.get("intra_op_num_threads", 1), "intra_op_num_threads", label)
        session_options.inter_op_num_threads = _positive_int(
            options.get("inter_op_num_threads", 1), "inter_op_num_threads", label)
        session_options.log_severity_level = 3  # errors only; the agent reports what matters
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types; name the file
            raise KumeoRuntimeError(f"{label}: cannot load ONNX model {path}: "
                                    f"{redact_quotes(str(error))}") from None
        self.inputs = {}
        for node in self.session.get_inputs():
            dtype = _DTYPES.get(node.type)
            if dtype is None:
                raise KumeoRuntimeError(f"{label}: model input '{node.name}' has type {node.type}; numeric "
                                        f"inputs ({', '.join(_DTYPES)}) are supported")
            shape = list(node.shape or [])
            width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
            if len(shape) not in (1, 2):
                raise KumeoRuntimeError(f"{label}: model input '{node.name}' has shape {shape}; one row of "
                                        "values per event ([batch, n]) is supported")
            self.inputs[node.name] = (width, dtype)
        self._dtypes = {name: dtype for name, (_, dtype) in self.inputs.items()}
        self._flat = {node.name for node in self.session.get_inputs() if len(node.shape or []) == 1}
        self.names = [node.name for node in self.session.get_outputs()]
        self.is_isolation_forest = {"label", "scores"} <= set(self.names)
        self.outputs = [*self.names, ANOMALY_SCORE] if "scores" in self.names else list(self.names)
        metadata = self.session.get_modelmeta().custom_metadata_map or {}
        offset: Any = options.get("score_offset")
        if offset is None and SCORE_OFFSET_METADATA in metadata:
            try:
                offset = float(metadata[SCORE_OFFSET_METADATA])
            except ValueError:
                raise KumeoRuntimeError(f"{label}: metadata {SCORE_OFFSET_METADATA}="
                                        f"{metadata[SCORE_OFFSET_METADATA]!r} is not a number") from None
        if offset is not None and not is_number(offset):
            raise KumeoRuntimeError(f"{label}: score_offset must be a number, got {offset!r}")
        self.score_offset = float(offset) if offset is not None else _SKLEARN_AUTO_OFFSET

    def run(self, rows: Sequence[Row]) -> dict[str, list[Any]]:
        np = self.np
        feed = {}
        for name, dtype in self._dtypes.items():
            array = np.array([row[name] for row in rows], dtype=dtype)
            feed[name] = array.reshape(-1) if name in self._flat else array
        values = self.session.run(self.names, feed)
        out: dict[str, list[Any]] = {}
        for name, value in zip(self.names, values, strict=False):
            out[name] = _per_row(value, len(rows))
        if "scores" in out:
            scores = values[self.names.index("scores")].reshape(len(rows), -1)[:, 0].astype("float64")
            out[ANOMALY_SCORE] = (-(scores + self.score_offset)).tolist()
        return out


class _PickleRunner(_Runner):
    """A pickled scikit-learn estimator (opt-in): IsolationForest-like, classifier or regressor."""

    def __init__(self, path: Path, label: str) -> None:
        import numpy as np

        self.np = np
        try:
            try:
                import joblib

                model = joblib.load(path)
            except ImportError:
                import pickle

                with path.open("rb") as handle:
                    model = pickle.load(handle)
        except Exception as error:  # noqa: BLE001 - anything can come out of a pickle
            raise KumeoRuntimeError(f"{label}: cannot load pickled model {path}: "
                                    f"{redact_quotes(str(error))}") from None
        if not hasattr(model, "predict"):
            raise KumeoRuntimeError(f"{label}: {path.name} holds a {type(model).__name__}, not a model with predict()")
        self.model = model
        width = getattr(model, "n_features_in_", None)
        self.inputs = {"X": (int(width) if width is not None else None, "float64")}
        self.is_isolation_forest = hasattr(model, "score_samples") and hasattr(model, "offset_")
        if self.is_isolation_forest:
            self.outputs = ["label", "scores", ANOMALY_SCORE]
        else:
            self.outputs = ["prediction"] + (["probabilities"] if hasattr(model, "predict_proba") else [])

    def run(self, rows: Sequence[Row]) -> dict[str, list[Any]]:
        x = self.np.array([row["X"] for row in rows], dtype="float64")
        if self.is_isolation_forest:
            samples = self.model.score_samples(x)
            return {"label": [int(v) for v in self.model.predict(x)],
                    "scores": (samples - self.model.offset_).tolist(),
                    ANOMALY_SCORE: (-samples).tolist()}
        out: dict[str, list[Any]] = {"prediction": _per_row(self.model.predict(x), len(rows))}
        if "probabilities" in self.outputs:
            classes = [str(c) for c in self.model.classes_]
            out["probabilities"] = [dict(zip(classes, map(float, p), strict=False))
                                    for p in self.model.predict_proba(x)]
        return out


# -- micro-batching ---------------------------------------------------------------------------------------------


class _MicroBatcher:
    """Collects rows from concurrent callers and runs them ``batch_size`` at a time.

    A call runs as soon as ``batch_size`` rows are pending, or when the first pending row has waited
    ``max_wait`` seconds (at once when ``max_wait`` is 0). Inference runs on the event loop: a call on a batch of
    small rows takes well under a millisecond, less than handing it to a thread would cost.
    """

    def __init__(self, infer: Callable[[Sequence[Row]], list[dict[str, Any]]], batch_size: int,
                 max_wait: float) -> None:
        self.infer = infer
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.calls = 0  # inference calls made (observability and tests)
        self._pending: list[tuple[Row, asyncio.Future[dict[str, Any]]]] = []
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, rows: Sequence[Row]) -> list[dict[str, Any] | BaseException]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in rows]
        self._pending.extend(zip(rows, futures, strict=True))
        while len(self._pending) >= self.batch_size:
            self._flush(self.batch_size)
        if self._pending:
            if self.max_wait <= 0:
                self._flush(len(self._pending))
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait, self._flush_waiting)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def _flush_waiting(self) -> None:
        self._timer = None
        while self._pending:
            self._flush(self.batch_size)

    def _flush(self, count: int) -> None:
        taken, self._pending = self._pending[:count], self._pending[count:]
        if not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        taken = [(row, future) for row, future in taken if not future.done()]  # a caller that timed out
        if not taken:
            return
        try:
            self.calls += 1
            results = self.infer([row for row, _ in taken])
        except Exception as error:  # noqa: BLE001 - isolate the row that broke the call, if one did
            if len(taken) == 1:
                taken[0][1].set_exception(error)
                return
            for row, future in taken:
                try:
                    self.calls += 1
                    future.set_result(self.infer([row])[0])
                except Exception as one_error:  # noqa: BLE001 - this event's outcome
                    future.set_exception(one_error)
            return
        for (_, future), result in zip(taken, results, strict=False):
            future.set_result(result)


# -- helpers ------------------------------------------------------------------------------------------------------

_ABSENT: Final = object()


def _lookup(payload: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = payload
    for name in path:
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        else:
            return _ABSENT
    return value


def _per_row(value: Any, rows: int) -> list[Any]:
    """A model output as one JSON value per row: a number, a list, or a dict (ZipMap)."""
    if isinstance(value, list):  # a sequence of maps (ZipMap) or of tensors
        return [{str(k): float(v) for k, v in item.items()} if isinstance(item, Mapping) else _plain(item)
                for item in value]
    shaped = value.reshape(rows, -1)
    per_row: list[Any] = shaped[:, 0].tolist() if shaped.shape[1] == 1 else shaped.tolist()
    return per_row


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _positive_int(value: Any, name: str, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KumeoRuntimeError(f"{label}: {name} must be a whole number >= 1, got {value!r}")
    return value
