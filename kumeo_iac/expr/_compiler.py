"""Compiling a parsed expression into nested Python closures, plus the static facts validation needs.

Why closures: the tree is walked once, here, and evaluation is then a handful of direct calls with no dispatch
on node types and no string handling, which is what makes per-event evaluation cheap. Nothing in this module
(or anywhere in the package) hands user text to ``eval``, ``exec``, ``compile`` or ``getattr``: every node maps
to one of the fixed operations in ``_values`` or ``_functions``.

Every closure has the signature ``(data, bound) -> value``: ``data`` is the mapping given to ``evaluate`` and
``bound`` holds the names introduced by ``all(... for x in ...)``. Whether a name is bound is decided here, at
compile time, so free names never pay for a scope lookup.

Sub-expressions made only of literals are folded at compile time; a fold that fails (``1 / 0``, ``'a' + 1``) is
reported as a KumeoExpressionError with its position, since it can never succeed on any event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from lark import Token, Tree

from kumeo_iac.errors import KumeoExpressionError, SourceSpan
from kumeo_iac.expr import _values as v
from kumeo_iac.expr._functions import FUNCTIONS, compile_pattern
from kumeo_iac.expr._syntax import RESERVED_WORDS, span_at, token_span

__all__ = ["MAX_DEPTH", "Closure", "CompiledExpression", "compile_tree"]

Closure = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]

#: Deepest operator nesting accepted; far beyond any real condition, and well inside Python's recursion limit.
MAX_DEPTH: Final = 100

_NOT_CONSTANT: Final = object()
_MISSING: Final = object()

# Names people reach for that our whitelist spells differently; consulted before difflib's fuzzy match.
_ALIASES: Final = {
    "length": "len", "size": "len", "count": "len", "strip": "trim", "lowercase": "lower", "uppercase": "upper",
    "regex": "matches", "match": "matches", "search": "matches", "isnull": "is_null", "is_none": "is_null",
    "has": "exists", "defined": "exists", "is_defined": "exists", "startswith": "starts_with",
    "endswith": "ends_with", "includes": "contains", "number": "float", "string": "str", "to_string": "str",
    "valid_json": "is_valid_json", "is_json": "is_valid_json", "time": "now", "timestamp": "now",
}


@dataclasses.dataclass(slots=True)
class _Node:
    """A compiled sub-expression: its closure and, when it is made only of literals, its value."""

    fn: Closure
    constant: Any = _NOT_CONSTANT

    @property
    def is_constant(self) -> bool:
        return self.constant is not _NOT_CONSTANT


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledExpression:
    """What the compiler hands to :class:`Expression`: the closure and what the expression reads and calls."""

    fn: Closure
    paths: frozenset[tuple[str, ...]]
    functions: frozenset[str]


def compile_tree(tree: Tree[Token]) -> CompiledExpression:
    """Compile the tree of ``start`` into a closure, collecting paths and function names on the way."""
    compiler = _Compiler()
    try:
        node = compiler.compile_node(tree.children[0], 0)
    except RecursionError:
        raise KumeoExpressionError(
            f"expression is nested too deeply (more than {MAX_DEPTH} levels)", span_at(1, 1)
        ) from None
    return CompiledExpression(node.fn, frozenset(compiler.paths), frozenset(compiler.functions))


def _constant(value: Any) -> _Node:
    if isinstance(value, (list, tuple, dict)):
        # Hand every evaluation its own copy so a caller mutating a result cannot change the expression.
        return _Node(lambda d, b: _thaw(value), value)
    return _Node(lambda d, b: value, value)


def _thaw(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_thaw(item) for item in value]
    if isinstance(value, dict):
        return {key: _thaw(item) for key, item in value.items()}
    return value


def _span(tree: Tree[Token] | Token) -> SourceSpan:
    if isinstance(tree, Token):
        return token_span(tree)
    meta = tree.meta
    if meta.empty:
        return span_at(1, 1)
    return span_at(meta.line, meta.column, meta.end_line, max(meta.end_column - 1, 1))


def _decode_string(token: Token) -> str:
    """Decode a quoted literal. Unknown escapes are kept as written so regexes like '\\d+' work unescaped."""
    body: str = token.value[1:-1]
    if "\\" not in body:
        return body
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "/": "/", "\\": "\\", "'": "'",
              '"': '"'}
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 >= len(body):
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in simple:
            out.append(simple[code])
            i += 2
        elif code == "u" and len(body) >= i + 6 and all(c in "0123456789abcdefABCDEF" for c in body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append("\\" + code)
            i += 2
    return "".join(out)


class _Compiler:
    """One compilation: the scope of bound names and the facts gathered so far."""

    def __init__(self) -> None:
        self.paths: set[tuple[str, ...]] = set()
        self.functions: set[str] = set()
        self.bound: tuple[str, ...] = ()

    # -- dispatch -------------------------------------------------------------------------------------------

    def compile_node(self, tree: Tree[Token] | Token, depth: int) -> _Node:
        if depth > MAX_DEPTH:
            raise KumeoExpressionError(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels)", _span(tree)
            )
        if isinstance(tree, Token):  # pragma: no cover - every token is wrapped by an aliased rule
            raise KumeoExpressionError(f"unexpected '{tree.value}'", token_span(tree))
        visit = _VISITORS.get(str(tree.data))
        if visit is None:  # pragma: no cover - grammar and compiler are kept in step by the tests
            raise KumeoExpressionError(f"unsupported expression '{tree.data}'", _span(tree))
        node: _Node = visit(self, tree, depth + 1)
        return node

    def _child(self, tree: Tree[Token] | Token, depth: int) -> _Node:
        return self.compile_node(tree, depth)

    def _fold(self, tree: Tree[Token], node: _Node, operands: Sequence[_Node]) -> _Node:
        """Evaluate a node of constants now: faster later, and a certain failure becomes a compile error."""
        if not all(o.is_constant for o in operands):
            return node
        try:
            value = node.fn({}, {})
        except v.EvaluationFailure as failure:
            raise KumeoExpressionError(str(failure), _span(tree)) from None
        except (ArithmeticError, ValueError, TypeError) as error:
            raise KumeoExpressionError(f"cannot compute this: {error}", _span(tree)) from None
        return _constant(value)

    # -- literals -------------------------------------------------------------------------------------------

    def visit_int(self, tree: Tree[Token], depth: int) -> _Node:
        token = tree.children[0]
        assert isinstance(token, Token)
        try:
            return _constant(int(token.value))
        except ValueError:  # beyond Python's limit on digits in int()
            raise KumeoExpressionError("number is too long", token_span(token)) from None

    def visit_float(self, tree: Tree[Token], depth: int) -> _Node:
        token = tree.children[0]
        assert isinstance(token, Token)
        return _constant(float(token.value))

    def visit_string(self, tree: Tree[Token], depth: int) -> _Node:
        token = tree.children[0]
        assert isinstance(token, Token)
        return _constant(_decode_string(token))

    def visit_true(self, tree: Tree[Token], depth: int) -> _Node:
        return _constant(True)

    def visit_false(self, tree: Tree[Token], depth: int) -> _Node:
        return _constant(False)

    def visit_null(self, tree: Tree[Token], depth: int) -> _Node:
        return _constant(None)

    def visit_list(self, tree: Tree[Token], depth: int) -> _Node:
        items = [self._child(child, depth) for child in tree.children]
        if all(item.is_constant for item in items):
            return _constant(tuple(item.constant for item in items))
        fns = tuple(item.fn for item in items)
        return _Node(lambda d, b: [fn(d, b) for fn in fns])

    def visit_object(self, tree: Tree[Token], depth: int) -> _Node:
        pairs: list[tuple[str, _Node]] = []
        for pair in tree.children:
            assert isinstance(pair, Tree)
            key_token, value_tree = pair.children
            assert isinstance(key_token, Token)
            key = _decode_string(key_token) if key_token.type == "STRING" else key_token.value
            pairs.append((key, self._child(value_tree, depth)))
        if all(node.is_constant for _, node in pairs):
            return _constant({key: node.constant for key, node in pairs})
        fns = tuple((key, node.fn) for key, node in pairs)
        return _Node(lambda d, b: {key: fn(d, b) for key, fn in fns})

    # -- paths ----------------------------------------------------------------------------------------------

    def _check_name(self, token: Token, role: str) -> str:
        name: str = token.value
        if name.startswith("__"):
            raise KumeoExpressionError(
                f"'{name}' is not allowed: names starting with '__' are reserved", token_span(token)
            )
        if name in RESERVED_WORDS and role != "key":
            raise KumeoExpressionError(
                f"'{name}' is a reserved word and cannot be used as {role}",
                token_span(token),
                hint=f"to read a field called '{name}', write `input[\"{name}\"]`" if role == "a path" else None,
            )
        return name

    def visit_name(self, tree: Tree[Token], depth: int) -> _Node:
        return self._path(tree, depth)

    def visit_member(self, tree: Tree[Token], depth: int) -> _Node:
        return self._path(tree, depth)

    def visit_index(self, tree: Tree[Token], depth: int) -> _Node:
        return self._path(tree, depth)

    def _split_path(
        self, tree: Tree[Token], depth: int
    ) -> tuple[Tree[Token], list[tuple[bool, Any]]]:
        """Walk down `a.b[c].d` to its base; steps are (is_static, key or closure), outermost last."""
        steps: list[tuple[bool, Any]] = []
        node = tree
        while isinstance(node, Tree) and node.data in ("member", "index"):
            base, selector = node.children
            if node.data == "member":
                assert isinstance(selector, Token)
                steps.append((True, self._check_name(selector, "key")))
            else:
                key = self._child(selector, depth + len(steps))
                steps.append((True, key.constant) if key.is_constant else (False, key.fn))
            assert isinstance(base, Tree)
            node = base
        steps.reverse()
        return node, steps

    def _path(self, tree: Tree[Token], depth: int) -> _Node:
        base, steps = self._split_path(tree, depth)
        if base.data == "name":
            token = base.children[0]
            assert isinstance(token, Token)
            root = self._check_name(token, "a path")
            bound = root in self.bound
            if not bound:
                self._record(root, steps)
            return _Node(_path_closure(root, bound, steps))
        base_node = self._child(base, depth + len(steps))
        base_fn = base_node.fn
        walk = _steps_closure(steps)
        node = _Node(lambda d, b: walk(base_fn(d, b), d, b))
        if all(is_static for is_static, _ in steps):
            return self._fold(tree, node, [base_node])
        return node

    def _record(self, root: str, steps: list[tuple[bool, Any]]) -> None:
        path = [root]
        for is_static, key in steps:
            if not (is_static and isinstance(key, str)):
                break
            path.append(key)
        self.paths.add(tuple(path))

    # -- operators ------------------------------------------------------------------------------------------

    def visit_logic_not(self, tree: Tree[Token], depth: int) -> _Node:
        operand = self._child(tree.children[0], depth)
        fn = operand.fn
        truthy = v.truthy
        return self._fold(tree, _Node(lambda d, b: not truthy(fn(d, b))), [operand])

    def visit_logic_and(self, tree: Tree[Token], depth: int) -> _Node:
        left, right = (self._child(child, depth) for child in tree.children)
        lf, rf, truthy = left.fn, right.fn, v.truthy
        return self._fold(tree, _Node(lambda d, b: truthy(lf(d, b)) and truthy(rf(d, b))), [left, right])

    def visit_logic_or(self, tree: Tree[Token], depth: int) -> _Node:
        left, right = (self._child(child, depth) for child in tree.children)
        lf, rf, truthy = left.fn, right.fn, v.truthy
        return self._fold(tree, _Node(lambda d, b: truthy(lf(d, b)) or truthy(rf(d, b))), [left, right])

    def visit_coalesce(self, tree: Tree[Token], depth: int) -> _Node:
        operands = [self._child(child, depth) for child in tree.children]
        return self._fold(tree, _Node(_coalesce_closure(tuple(o.fn for o in operands))), operands)

    def _arith(self, tree: Tree[Token], depth: int, op: Callable[[Any, Any], Any]) -> _Node:
        left, right = (self._child(child, depth) for child in tree.children)
        lf, rf = left.fn, right.fn
        return self._fold(tree, _Node(lambda d, b: op(lf(d, b), rf(d, b))), [left, right])

    def visit_add(self, tree: Tree[Token], depth: int) -> _Node:
        return self._arith(tree, depth, v.add)

    def visit_sub(self, tree: Tree[Token], depth: int) -> _Node:
        return self._arith(tree, depth, v.subtract)

    def visit_mul(self, tree: Tree[Token], depth: int) -> _Node:
        return self._arith(tree, depth, v.multiply)

    def visit_div(self, tree: Tree[Token], depth: int) -> _Node:
        return self._arith(tree, depth, v.divide)

    def visit_mod(self, tree: Tree[Token], depth: int) -> _Node:
        return self._arith(tree, depth, v.modulo)

    def visit_neg(self, tree: Tree[Token], depth: int) -> _Node:
        operand = self._child(tree.children[0], depth)
        fn, negate = operand.fn, v.negate
        return self._fold(tree, _Node(lambda d, b: negate(fn(d, b))), [operand])

    def visit_compare(self, tree: Tree[Token], depth: int) -> _Node:
        children = tree.children
        if len(children) > 3:
            second = children[3]
            assert isinstance(second, Tree)
            first_op = " ".join(str(t) for t in children[1].children)  # type: ignore[union-attr]
            second_op = " ".join(str(t) for t in second.children)
            raise KumeoExpressionError(
                "comparisons cannot be chained",
                _span(second),
                hint=f"combine two comparisons with '&&', e.g. `a {first_op} b && b {second_op} c`",
            )
        left_tree, op_tree, right_tree = children
        assert isinstance(op_tree, Tree)
        op = " ".join(str(token) for token in op_tree.children)
        left, right = self._child(left_tree, depth), self._child(right_tree, depth)
        node = _Node(_comparison_closure(op, left, right))
        return self._fold(tree, node, [left, right])

    # -- calls ----------------------------------------------------------------------------------------------

    def _function(self, token: Token, argc: int, quantifier: bool) -> str:
        name: str = token.value
        if name.startswith("__"):
            self._check_name(token, "a function")
        if name in RESERVED_WORDS:
            self._check_name(token, "a function")
        if name not in FUNCTIONS:
            raise KumeoExpressionError(f"unknown function '{name}'", token_span(token), hint=_did_you_mean(name))
        function = FUNCTIONS[name]
        if quantifier:
            if name not in ("all", "any"):
                raise KumeoExpressionError(
                    f"only all() and any() accept a `for` clause, not {name}()",
                    token_span(token),
                    hint=f"write `all(<condition> for x in <list>)`, or call {name}() on a list",
                )
        elif argc < function.min_args or (function.max_args is not None and argc > function.max_args):
            raise KumeoExpressionError(
                f"{name}() takes {function.arity_text()}, got {argc}", token_span(token)
            )
        self.functions.add(name)
        return name

    def visit_call(self, tree: Tree[Token], depth: int) -> _Node:
        token, *arg_trees = tree.children
        assert isinstance(token, Token)
        name = self._function(token, len(arg_trees), quantifier=False)
        if name == "exists":
            return self._exists(arg_trees[0], depth)
        args = [self._child(arg, depth) for arg in arg_trees]
        fns = tuple(a.fn for a in args)
        if name == "coalesce":
            return self._fold(tree, _Node(_coalesce_closure(fns)), args)
        if name == "matches" and args[1].is_constant and isinstance(args[1].constant, str):
            try:
                compile_pattern(args[1].constant)  # a bad literal pattern is a bug in the file, not in the event
            except v.EvaluationFailure as failure:
                raise KumeoExpressionError(str(failure), _span(arg_trees[1])) from None
        impl = FUNCTIONS[name].call
        node: _Node
        if len(fns) == 0:
            node = _Node(lambda d, b: impl())
        elif len(fns) == 1:
            (a0,) = fns
            node = _Node(lambda d, b: impl(a0(d, b)))
        elif len(fns) == 2:
            a0, a1 = fns
            node = _Node(lambda d, b: impl(a0(d, b), a1(d, b)))
        else:
            node = _Node(lambda d, b: impl(*[fn(d, b) for fn in fns]))
        if name == "now":
            return node  # the clock is the one impure function; never fold it
        return self._fold(tree, node, args)

    def _exists(self, arg: Tree[Token] | Token, depth: int) -> _Node:
        if not (isinstance(arg, Tree) and arg.data in ("name", "member", "index")):
            raise KumeoExpressionError(
                "exists() needs a path", _span(arg), hint="write e.g. `exists(input.customer.email)`"
            )
        base, steps = self._split_path(arg, depth)
        if base.data != "name":
            raise KumeoExpressionError(
                "exists() needs a path that starts with a name", _span(arg),
                hint="write e.g. `exists(input.customer.email)`",
            )
        token = base.children[0]
        assert isinstance(token, Token)
        root = self._check_name(token, "a path")
        bound = root in self.bound
        if not bound:
            self._record(root, steps)
        return _Node(_exists_closure(root, bound, steps))

    def visit_quantifier(self, tree: Tree[Token], depth: int) -> _Node:
        function_token, body_tree, var_token, iterable_tree = tree.children
        assert isinstance(function_token, Token) and isinstance(var_token, Token)
        name = self._function(function_token, 1, quantifier=True)
        var = self._check_name(var_token, "a loop variable")
        iterable = self._child(iterable_tree, depth)
        outer = self.bound
        self.bound = (*outer, var)
        try:
            body = self._child(body_tree, depth)
        finally:
            self.bound = outer
        return _Node(_quantifier_closure(name, var, body.fn, iterable.fn))


# Rule name -> compiler method; a plain table, so dispatch never looks anything up by a computed attribute name.
_VISITORS: Final[dict[str, Callable[[_Compiler, Tree[Token], int], _Node]]] = {
    name.removeprefix("visit_"): method for name, method in vars(_Compiler).items() if name.startswith("visit_")
}


def _did_you_mean(name: str) -> str:
    import difflib  # lazy: only needed when a name is wrong

    if name.lower() in FUNCTIONS:
        return f"did you mean '{name.lower()}'?"
    if name.lower() in _ALIASES:
        return f"did you mean '{_ALIASES[name.lower()]}'?"
    close = difflib.get_close_matches(name, list(FUNCTIONS), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "available functions: " + ", ".join(sorted(FUNCTIONS))


# -- closure builders (module level so each closure captures only what it needs) --------------------------------


def _steps_closure(steps: list[tuple[bool, Any]]) -> Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]:
    step = v.step
    if all(is_static and type(key) is str for is_static, key in steps):
        keys = tuple(key for _, key in steps)

        def walk_static(value: Any, d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
            for key in keys:
                if value is None:
                    return None
                value = value.get(key) if type(value) is dict else step(value, key)
            return value

        return walk_static
    mixed = tuple(steps)

    def walk(value: Any, d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
        for is_static, key in mixed:
            if value is None:
                return None
            value = step(value, key if is_static else key(d, b))
        return value

    return walk


def _path_closure(root: str, bound: bool, steps: list[tuple[bool, Any]]) -> Closure:
    step = v.step
    if bound:
        walk = _steps_closure(steps)
        return lambda d, b: walk(b[root], d, b)
    if not steps:
        return lambda d, b: d.get(root)
    if len(steps) == 1 and steps[0][0] and type(steps[0][1]) is str:
        key = steps[0][1]

        def one(d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
            value = d.get(root)
            return value.get(key) if type(value) is dict else step(value, key)

        return one
    if len(steps) == 2 and all(is_static and type(key) is str for is_static, key in steps):
        k1, k2 = steps[0][1], steps[1][1]

        def two(d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
            value = d.get(root)
            value = value.get(k1) if type(value) is dict else step(value, k1)
            return value.get(k2) if type(value) is dict else step(value, k2)

        return two
    walk = _steps_closure(steps)
    return lambda d, b: walk(d.get(root), d, b)


def _exists_closure(root: str, bound: bool, steps: list[tuple[bool, Any]]) -> Closure:
    def present(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        if bound:
            value = b[root]
        elif root in d:
            value = d[root]
        else:
            return False
        for is_static, key in steps:
            if not is_static:
                key = key(d, b)
            value = _child(value, key)
            if value is _MISSING:
                return False
        return True

    return present


def _child(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        try:
            return container.get(key, _MISSING)
        except TypeError:
            return _MISSING
    if isinstance(container, (list, tuple, str)) and type(key) is int:
        try:
            return container[key]
        except IndexError:
            return _MISSING
    return _MISSING


def _coalesce_closure(fns: tuple[Closure, ...]) -> Closure:
    if len(fns) == 2:
        first, second = fns

        def pair(d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
            value = first(d, b)
            return second(d, b) if value is None else value

        return pair

    def chain(d: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
        for fn in fns:
            value = fn(d, b)
            if value is not None:
                return value
        return None

    return chain


def _comparison_closure(op: str, left: _Node, right: _Node) -> Closure:
    lf, rf = left.fn, right.fn
    equal = v.equal
    if op in ("==", "!="):
        negate = op == "!="
        if right.is_constant or left.is_constant:
            value_fn, constant = (lf, right.constant) if right.is_constant else (rf, left.constant)
            kind = type(constant)

            def eq_constant(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
                value = value_fn(d, b)
                same = value == constant if type(value) is kind else equal(value, constant)
                return same is not negate

            return eq_constant
        return lambda d, b: equal(lf(d, b), rf(d, b)) is not negate
    if op in ("in", "not in"):
        negate = op == "not in"
        contains = v.contains
        if right.is_constant and isinstance(right.constant, tuple) and right.constant and all(
            type(item) is str for item in right.constant
        ):
            items = right.constant
            members = frozenset(items)  # only a string equals a string, so a set lookup is exact

            def in_strings(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
                value = lf(d, b)
                if type(value) is str:
                    return (value in members) is not negate
                return contains(items, value) is not negate  # str subclasses (enums) and non-strings

            return in_strings
        return lambda d, b: contains(rf(d, b), lf(d, b)) is not negate
    ordered = v.ordered
    compare = v.ORDERINGS[op]
    if right.is_constant and v.is_number(right.constant):
        limit = right.constant

        def against_constant(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
            value = lf(d, b)
            if type(value) is int or type(value) is float:
                return compare(value, limit)
            return ordered(value, limit, op)

        return against_constant

    def general(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        left_value, right_value = lf(d, b), rf(d, b)
        if (type(left_value) is int or type(left_value) is float) and (
            type(right_value) is int or type(right_value) is float
        ):
            return compare(left_value, right_value)
        return ordered(left_value, right_value, op)

    return general


def _quantifier_closure(name: str, var: str, body: Closure, iterable: Closure) -> Closure:
    truthy = v.truthy
    want_all = name == "all"

    def quantify(d: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        items = iterable(d, b)
        if items is None:
            return want_all
        if isinstance(items, Mapping):
            items = list(items.keys())
        elif not isinstance(items, (list, tuple)):
            raise v.EvaluationFailure(f"{name}() can only loop over a list or an object's keys, got {v.show(items)}")
        scope = dict(b)
        for item in items:
            scope[var] = item
            if truthy(body(d, scope)) is not want_all:
                return not want_all
        return want_all

    return quantify
