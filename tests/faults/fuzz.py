"""A fast, seed-driven mutation fuzzer for `.kumeo` text and expressions.

Each case is a function of its integer seed alone (``random.Random(seed)``), so a failure is reproduced with
``python tests/faults/fuzz.py kumeo SEED`` (or ``expr SEED``). The contract checked: whatever the input, the
front end either succeeds or raises a :class:`KumeoError` — and a syntax error carries a location inside the text.
Anything else (a TypeError from deep inside, a lark exception, a RecursionError, a span of None) is a finding.
"""

from __future__ import annotations

import random
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

KUMEO_SEEDS = [
    'workflow W {\n  source: NATS("in")\n  target: NATS("out")\n  agents: [\n'
    '    DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }),\n'
    '    MLModel("models/m.onnx", id: "score", input: clean.output, features: ["a", "b"]),\n'
    '    Router(id: "route", input: score.output, rules: { "score > 0.5": "target.out", "default": "target.out" })\n'
    "  ]\n}\n",
    'workflow Fraud {\n  source: [NATS("tx.in"), HTTP("/ingest")]\n  target: NATS("tx.alerts")\n'
    '  config: { limits: { high: 0.8 } }\n  context: BayesianNetwork("net.bif")\n  agents: [\n'
    '    LLM("ollama/llama3", id: "explain", input: source, prompt: """Explain {{amount}}""", when: "amount > 10"),\n'
    '    DecisionMatrix(id: "d", input: explain.output, '
    'rules: [{ name: "r", condition: "len(x) >= 1", error: "e" }]),\n'
    '    HumanReview(id: "h", input: d.output, trigger: "severity == \'high\' || amount > config.limits.high")\n'
    "  ]\n  monitor: { metrics: [\"latency\"] }\n  deployment: { replicas: 2, resources: { cpu: \"100m\" } }\n}\n",
    "// comment\n/* block */\nsubworkflow Sub {\n  input: NATS(\"a\")\n  output: NATS(\"b\")\n  agents: [\n"
    '    RuleEngine(id= "r", input= input, rules= [{ when: "any(v > 1 for v in values)", set: { flag: true } }])\n'
    "  ]\n}\nintegration I { workflows: [Sub] }\n",
]
for path in sorted((ROOT / "examples").glob("*/*.kumeo")):
    KUMEO_SEEDS.append(path.read_text(encoding="utf-8"))

EXPR_SEEDS = [
    "amount > 1000",
    "risk_score >= config.risk_thresholds.high",
    "input.urgency in ['low', 'medium', 'high', 'critical']",
    "all(field in input for field in ['patient_id', 'findings'])",
    "reviewed.analysis?.review_notes ?? ''",
    "amount > 1000 && lower(input.country) not in ['fr', 'de'] || is_null(input.user)",
    "len(items) >= 1 ?? false",
    "!input.flagged && (a + b * c - d / e % f) <= 3.5e10",
    "any(v > 1 for v in values) ? 'yes' : 'no'",
    "x[0].y['z'] == null",
]
EVENT = {"amount": 1500, "risk_score": 0.82, "values": [1, 2, 3], "items": [], "a": 1, "b": 2, "c": 3, "d": 4,
         "e": 0, "f": 0, "x": [{"y": {"z": None}}], "input": {"urgency": "high", "country": "ES", "user": None},
         "config": {"risk_thresholds": {"high": 0.8}}, "reviewed": {"analysis": {}}}

TOKENS = [
    "{", "}", "[", "]", "(", ")", ",", ":", "=", ".", '"', '"""', "'", "//", "/*", "*/", "\\", "\n", " ", "\t",
    "workflow", "subworkflow", "integration", "agents", "source", "target", "context", "input", "output", "id",
    "NATS", "HTTP", "LLM", "MLModel", "Router", "DataProcessor", "Custom", "when", "rules", "config", "null",
    "true", "false", "0", "-1", "1e309", "99999999999999999999999", "NaN", "0x1F", "&&", "||", "!", "??", "?.",
    "in", "not", "for", "if", "?", "==", "!=", "<=", ">", "+", "*", "/", "%", "é", "𝔘", "\u202e", "\x00", "\r",  # noqa: RUF001 - hostile text on purpose
    "\ufeff", "{{", "}}", "$", "@", "#", "source.output", "a.b.c.d.e", "len(", "lower(x)", "x[0]", "[[[[[[[[",
    "((((((((", "{ a: { b: { c: {", "]]]]", '"unterminated', '"""\n', "\\u00zz", "\\x", "\\n",
]


def mutate(rng: random.Random, text: str, seeds: list[str]) -> str:
    """A few random edits: delete, duplicate, insert a token, flip a character, truncate, splice, nest deeply."""
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        op = rng.randrange(8)
        i = rng.randrange(n + 1) if n else 0
        j = min(n, i + rng.randint(1, 40))
        if op == 0 and n:
            text = text[:i] + text[j:]
        elif op == 1 and n:
            text = text[:i] + text[i:j] * rng.randint(2, 4) + text[i:]
        elif op in (2, 3):
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 4 and n:
            k = rng.randrange(n)
            text = text[:k] + chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x3000)])) + text[k + 1:]
        elif op == 5:
            text = text[:i]
        elif op == 6:
            other = rng.choice(seeds)
            k = rng.randrange(len(other) + 1)
            text = text[:i] + other[k:k + rng.randint(1, 200)] + text[j:]
        else:
            depth = rng.choice([10, 100, 1000, 3000])
            opener = rng.choice(["[", "(", "{ a: ", "!", "-"])
            text = text[:i] + opener * depth + text[i:]
    return text


def kumeo_case(seed: int) -> str | None:
    """None when the contract holds for this seed's input; the finding otherwise."""
    from kumeo_iac.errors import KumeoError, KumeoSyntaxError
    from kumeo_iac.lang import parse
    from kumeo_iac.validate import validate

    rng = random.Random(seed)
    text = mutate(rng, rng.choice(KUMEO_SEEDS), KUMEO_SEEDS)
    try:
        result = parse(text, "fuzz.kumeo")
        if result.ok:
            validate(result.program)
    except KumeoSyntaxError as exc:
        span = exc.span
        lines = text.count("\n") + 2
        if span is None or span.path != "fuzz.kumeo" or not (1 <= span.line <= lines) or span.column < 1:
            return f"kumeo seed {seed}: syntax error without a location in the text: {span!r}: {exc}"
    except KumeoError:
        pass
    except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
        return f"kumeo seed {seed}: {type(exc).__name__}: {exc}\n{_short_traceback()}"
    return None


def expr_case(seed: int) -> str | None:
    from kumeo_iac.errors import KumeoError, KumeoExpressionError
    from kumeo_iac.expr import compile_expression

    rng = random.Random(seed)
    text = mutate(rng, rng.choice(EXPR_SEEDS), EXPR_SEEDS)
    try:
        expression = compile_expression.__wrapped__(text)  # type: ignore[attr-defined] - no cache: every case parses
    except KumeoExpressionError as exc:
        span = exc.span
        if span is None or not (1 <= span.line <= text.count("\n") + 2) or span.column < 1:
            return f"expr seed {seed}: syntax error without a location in the text: {span!r}: {exc}"
        return None
    except KumeoError:
        return None
    except BaseException as exc:  # noqa: BLE001
        return f"expr seed {seed}: {type(exc).__name__}: {exc}\n{_short_traceback()}"
    try:
        expression.evaluate(EVENT)
    except KumeoError:
        pass
    except BaseException as exc:  # noqa: BLE001
        return f"expr seed {seed} (evaluating {text!r}): {type(exc).__name__}: {exc}\n{_short_traceback()}"
    return None


def _short_traceback() -> str:
    return "".join(traceback.format_exc().splitlines(keepends=True)[-6:])


CASES: dict[str, Callable[[int], str | None]] = {"kumeo": kumeo_case, "expr": expr_case}


def _run_range(kind: str, start: int, stop: int) -> list[str]:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    case = CASES[kind]
    return [f for f in (case(s) for s in range(start, stop)) if f is not None]


def run(kind: str, count: int, *, first_seed: int = 0, workers: int = 2) -> list[str]:
    """Run ``count`` cases (seeds ``first_seed`` …) across ``workers`` processes; return the findings."""
    if workers <= 1:
        return _run_range(kind, first_seed, first_seed + count)
    step = -(-count // workers)
    ranges = [(kind, first_seed + k * step, min(first_seed + count, first_seed + (k + 1) * step))
              for k in range(workers)]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        results = pool.map(_run_range, *zip(*ranges, strict=True))
        return [f for chunk in results for f in chunk]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    kind, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    seeds = KUMEO_SEEDS if kind == "kumeo" else EXPR_SEEDS
    print(repr(mutate(rng, rng.choice(seeds), seeds)))
    print(CASES[kind](seed) or "ok")
