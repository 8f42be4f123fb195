"""Discrete Bayesian networks (pgmpy) for the BayesianNetwork agent and context, each file parsed once per process.

A Bayesian network file costs about a second to parse and pgmpy seconds to import, so networks are read through
:func:`load_network`, a module-level cache keyed by the file's resolved path, modification time and size: every
agent and context of a worker that names the same file shares one parsed model and one inference engine, and an
edited file is parsed afresh. pgmpy is imported only there, on the first load.

:class:`Network` is the one place that turns event values into evidence and runs exact inference
(variable elimination); the BayesianNetwork agent and the BayesianNetwork context both use it, so they agree on
every number. Results are memoised per evidence (the evidence space of a discrete network is small), which makes
repeated queries free.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.expr import Expression
from kumeo_iac.runtime._agent import EventRejected
from kumeo_iac.runtime.agents import compile_condition, evaluate, file_reference
from kumeo_iac.runtime.agents import expression_scope as scope

__all__ = [
    "BINARY_STATE_PAIRS",
    "Network",
    "NetworkQuery",
    "clear_network_cache",
    "evidence_state",
    "load_network",
    "positive_state",
]

log = logging.getLogger("kumeo.runtime.models")

#: Two-state variables whose states mean no/yes (compared case-insensitively): a boolean event value, or the
#: numbers 0/1, observe the first/second state, and a context reports P(second state).
BINARY_STATE_PAIRS: Final = (
    ("no", "yes"),
    ("false", "true"),
    ("0", "1"),
    ("off", "on"),
    ("n", "y"),
    ("f", "t"),
    ("negative", "positive"),
    ("absent", "present"),
)
_NETWORK_SUFFIXES: Final = {".bn": "bif", ".bif": "bif", ".xml": "xmlbif", ".xmlbif": "xmlbif"}
_QUERY_CACHE_SIZE: Final = 4096

_cache: dict[Path, tuple[tuple[int, int], Network]] = {}
_cache_lock = threading.Lock()


def clear_network_cache() -> None:
    """Forget every parsed network (tests; a long-lived process that wants to free memory)."""
    with _cache_lock:
        _cache.clear()


def load_network(path: Path, where: str) -> Network:
    """The network in a BIF (``.bn``/``.bif``) or XMLBIF (``.xml``) file, parsed once per path and version.

    ``where`` names who asks ("BayesianNetwork 'risk'") for error messages.
    """
    resolved = path.resolve()
    try:
        stat = resolved.stat()
    except FileNotFoundError:
        raise KumeoRuntimeError(f"{where}: network file {path} not found") from None
    except OSError as error:
        raise KumeoRuntimeError(f"{where}: cannot read network file {path}: {error.strerror or error}") from None
    version = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        hit = _cache.get(resolved)
        if hit is not None and hit[0] == version:
            return hit[1]
        network = Network(_read_model(resolved, where), str(path))
        _cache[resolved] = (version, network)
        return network


def _read_model(path: Path, where: str) -> Any:
    form = _NETWORK_SUFFIXES.get(path.suffix.lower())
    if form is None:
        known = ", ".join(sorted(_NETWORK_SUFFIXES))
        raise KumeoRuntimeError(f"{where}: {path.name}: unknown network format (use one of {known})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgmpy's import-time deprecation chatter
            if form == "bif":
                from pgmpy.readwrite import BIFReader as Reader
            else:
                from pgmpy.readwrite import XMLBIFReader as Reader
    except ImportError as error:
        raise KumeoRuntimeError(
            f"{where}: Bayesian networks need pgmpy: pip install 'kumeo-iac[bayes]' ({error})") from error
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Reader(path=str(path)).get_model()
            model.check_model()
    except Exception as error:  # noqa: BLE001 - pgmpy raises anything from a bad file; say which file
        # Say where, never what: the parser's message may quote the file, which may not be a network at all.
        found = re.search(r"line:?\s*(\d+)(?:\D{1,12}?col(?:umn)?:?\s*(\d+))?", str(error))
        at = (f" at line {found.group(1)}" + (f", column {found.group(2)}" if found.group(2) else "")) if found else ""
        raise KumeoRuntimeError(f"{where}: cannot read network {path}: not a valid {form.upper()} network{at} "
                                f"({type(error).__name__})") from None
    if not list(model.nodes()):
        raise KumeoRuntimeError(f"{where}: cannot read network {path}: no variables found (expected a "
                                f"{form.upper()} network)")
    return model


def positive_state(states: Sequence[str]) -> str | None:
    """The "yes" state of a two-state variable whose states are a known no/yes pair, else None."""
    if len(states) != 2:
        return None
    lowered = (str(states[0]).lower(), str(states[1]).lower())
    for negative, positive in BINARY_STATE_PAIRS:
        if lowered == (negative, positive):
            return str(states[1])
        if lowered == (positive, negative):
            return str(states[0])
    return None


def evidence_state(variable: str, states: Sequence[str], value: Any, where: str) -> str | None:
    """The state an event value observes; None for null (unobserved); EventRejected when it names no state.

    Strings must name a state (exact match first, then case-insensitive). Booleans observe the yes/no state of a
    two-state no/yes variable. Integers observe the state spelled like them (``2`` → ``"2"``), or, for a no/yes
    variable, 0 → no and 1 → yes.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    names = [str(s) for s in states]
    if isinstance(value, bool):
        positive = positive_state(names)
        if positive is not None:
            return positive if value else next(s for s in names if s != positive)
    elif isinstance(value, str):
        if value in names:
            return value
        folded = [s for s in names if s.lower() == value.lower()]
        if len(folded) == 1:
            return folded[0]
    elif isinstance(value, (int, float)) and float(value).is_integer():
        spelled = str(int(value))
        if spelled in names:
            return spelled
        positive = positive_state(names)
        if positive is not None and int(value) in (0, 1):
            return positive if int(value) == 1 else next(s for s in names if s != positive)
    raise EventRejected(
        f"{where}: value {value!r} for variable '{variable}' matches none of its states ({', '.join(names)})")


class Network:
    """A parsed discrete Bayesian network and its exact inference engine (pgmpy VariableElimination)."""

    def __init__(self, model: Any, name: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgmpy's import-time deprecation chatter
            from pgmpy.inference import VariableElimination

        self.model = model
        self.name = name
        self.states: dict[str, list[str]] = {str(v): [str(s) for s in model.states[v]] for v in model.nodes()}
        self.variables: list[str] = sorted(self.states)
        self.leaves: list[str] = sorted(str(v) for v in model.nodes() if model.out_degree(v) == 0)
        self._engine = VariableElimination(model)
        self._posteriors: collections.OrderedDict[Any, dict[str, dict[str, float]]] = collections.OrderedDict()
        self._maps: collections.OrderedDict[Any, dict[str, str]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def check_variables(self, names: Iterable[str], what: str, where: str) -> None:
        """KumeoRuntimeError naming the first of ``names`` the network does not have."""
        for name in names:
            if name not in self.states:
                raise KumeoRuntimeError(
                    f"{where}: {what} '{name}' is not a variable of network {self.name} "
                    f"(variables: {', '.join(self.variables)})")

    def posterior(self, query: Sequence[str], evidence: Mapping[str, str]) -> dict[str, dict[str, float]]:
        """P(variable | evidence) for each query variable: ``{variable: {state: probability}}``.

        A query variable that is itself observed gets probability 1 on its observed state.
        """
        key = (tuple(query), tuple(sorted(evidence.items())))
        with self._lock:
            hit = self._posteriors.get(key)
            if hit is not None:
                self._posteriors.move_to_end(key)
                return hit
            out: dict[str, dict[str, float]] = {}
            free = [q for q in query if q not in evidence]
            if free:
                factors = self._engine.query(free, evidence=dict(evidence), joint=False, show_progress=False)
                for variable in free:
                    factor = factors[variable]
                    names = [str(s) for s in factor.state_names[variable]]
                    out[variable] = {s: float(p) for s, p in zip(names, factor.values, strict=False)}
            for variable in query:
                if variable in evidence:
                    out[variable] = {s: 1.0 if s == evidence[variable] else 0.0 for s in self.states[variable]}
            result = {variable: out[variable] for variable in query}
            _remember(self._posteriors, key, result)
            return result

    def map(self, query: Sequence[str], evidence: Mapping[str, str]) -> dict[str, str]:
        """The jointly most probable states of the query variables given the evidence (MAP)."""
        key = (tuple(query), tuple(sorted(evidence.items())))
        with self._lock:
            hit = self._maps.get(key)
            if hit is not None:
                self._maps.move_to_end(key)
                return hit
            free = [q for q in query if q not in evidence]
            found: dict[str, str] = {}
            if free:
                found = {str(k): str(v) for k, v in self._engine.map_query(
                    free, evidence=dict(evidence), show_progress=False).items()}
            result = {variable: evidence[variable] if variable in evidence else found[variable] for variable in query}
            _remember(self._maps, key, result)
            return result


def _remember(cache: collections.OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > _QUERY_CACHE_SIZE:
        cache.popitem(last=False)


class NetworkQuery:
    """One configured question to a network: which variables, which evidence from the event, which method.

    Settings (the same for the agent and the context):

    - ``query``: a variable or a list; default: the network's leaves (variables without children).
    - ``evidence``: ``{variable: "expression"}``, each expression evaluated on the event like any agent condition
      (``"night"``, ``"input.card.foreign"``, ``"amount > config.high_value"``); default: every top-level event
      field named like a variable of the network (query variables excepted). Null observes nothing.
    - ``method``: ``posterior`` (default) or ``map``.
    """

    def __init__(self, network: Network, options: Mapping[str, Any], where: str) -> None:
        self.network = network
        self.where = where
        query = options.get("query")
        if query is None:
            query = network.leaves
        elif isinstance(query, str):
            query = [query]
        if not isinstance(query, list) or not query or not all(isinstance(q, str) for q in query):
            raise KumeoRuntimeError(f"{where}: 'query' must be a variable name or a non-empty list of them")
        network.check_variables(query, "query variable", where)
        self.query: list[str] = list(dict.fromkeys(query))
        method = options.get("method") or "posterior"
        if method not in ("posterior", "map"):
            raise KumeoRuntimeError(f"{where}: unknown method {method!r}; use 'posterior' or 'map'")
        self.method: str = method
        evidence = options.get("evidence")
        self.by_name = evidence is None
        self.evidence: dict[str, Expression] = {}
        if evidence is not None:
            if not isinstance(evidence, Mapping):
                raise KumeoRuntimeError(
                    f"{where}: 'evidence' must be an object {{variable: \"event field or expression\"}}")
            network.check_variables(evidence, "evidence variable", where)
            for variable, text in evidence.items():
                self.evidence[str(variable)] = compile_condition(text, f"{where}: evidence '{variable}'")
        self._candidates = [v for v in network.variables if v not in self.query]

    def observe(self, payload: Any, config: Any) -> dict[str, str]:
        """The evidence one event gives: ``{variable: state}``; EventRejected when a value names no state."""
        states = self.network.states
        observed: dict[str, str] = {}
        if self.by_name:
            if not isinstance(payload, Mapping):
                return observed
            for variable in self._candidates:
                if variable in payload:
                    state = evidence_state(variable, states[variable], payload[variable], self.where)
                    if state is not None:
                        observed[variable] = state
            return observed
        names = scope(payload, config)
        for variable, expression in self.evidence.items():
            value = evaluate(expression, names, f"{self.where}: evidence '{variable}'")
            state = evidence_state(variable, states[variable], value, self.where)
            if state is not None:
                observed[variable] = state
        return observed

    def posterior(self, evidence: Mapping[str, str]) -> dict[str, dict[str, float]]:
        return self.network.posterior(self.query, evidence)

    def map(self, evidence: Mapping[str, str]) -> dict[str, str]:
        return self.network.map(self.query, evidence)


def network_file(value: Any, where: str) -> str:
    """The path a ``network``/``path`` setting names; KumeoRuntimeError when it names none."""
    file = file_reference(value)
    if not file:
        raise KumeoRuntimeError(f"{where}: needs a network file (BIF .bn/.bif or XMLBIF .xml), got {value!r}")
    return file
