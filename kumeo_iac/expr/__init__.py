"""Kumeo's expression language: the conditions of `when`, Router rules, DecisionMatrix conditions and inputs.

Text such as ``"risk_score >= config.risk_thresholds.high && !input.flagged"`` is parsed with a lark LALR grammar
(``grammar.lark``) and compiled into Python closures; user text never reaches ``eval``, ``exec`` or attribute
access, and only whitelisted functions can be called. Reference: ``docs/expressions.md``.

    >>> from kumeo_iac.expr import compile_expression
    >>> rule = compile_expression("amount > 1000 && input.country not in ['FR', 'DE']")
    >>> rule.truthy({"amount": 1500, "input": {"country": "ES"}})
    True
    >>> sorted(rule.root_names)
    ['amount', 'input']
"""

from kumeo_iac.expr._expression import (
    Expression,
    compile_expression,
    locate,
    parse_expression,
    validate_expression,
)
from kumeo_iac.expr._functions import FUNCTIONS, MAX_MATCH_INPUT, MAX_PATTERN_LENGTH
from kumeo_iac.expr._limits import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING,
    BudgetExceeded,
    time_budget,
)
from kumeo_iac.expr._syntax import EXPRESSION_PATH, RESERVED_WORDS

__all__ = [
    "EXPRESSION_PATH",
    "FUNCTIONS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_MATCH_INPUT",
    "MAX_NESTING",
    "MAX_PATTERN_LENGTH",
    "RESERVED_WORDS",
    "BudgetExceeded",
    "Expression",
    "compile_expression",
    "locate",
    "parse_expression",
    "time_budget",
    "validate_expression",
]
