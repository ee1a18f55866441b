"""The recipe expression language: a small, safe subset of Python syntax compiled to polars.

Users write row filters and derived columns as expressions such as
``age >= 18 and country in ["DE", "FR"]`` or ``round(income / 12, 2)``. The text is parsed
with Python's ``ast`` and every node is checked against a whitelist: column names,
literals, arithmetic, comparisons, ``and``/``or``/``not``, ``x if c else y``, ``in`` lists
and a fixed set of functions. Nothing is ever evaluated by Python (no ``eval``): the tree
is translated into a polars expression, so an expression can only read the row's columns.

Each sub-expression carries a kind (integer, float, boolean, text, date, datetime, null)
so type mistakes (``name + 1``, ``age and true``) are reported before any data is read.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import polars as pl

Kind = Literal["integer", "float", "boolean", "text", "date", "datetime", "null", "any"]

#: Longest expression accepted (characters) and most syntax nodes in it.
MAX_LENGTH = 2000
MAX_NODES = 400
_INT64 = 2**63 - 1
_NUMBER: frozenset[Kind] = frozenset({"integer", "float"})
_TEMPORAL: frozenset[Kind] = frozenset({"date", "datetime"})
_LOOSE: frozenset[Kind] = frozenset({"null", "any"})


class ExpressionError(ValueError):
    """An expression that is not valid; the message says what and where (column offset)."""

    def __init__(self, message: str, node: ast.AST | None = None) -> None:
        offset = getattr(node, "col_offset", None) if node is not None else None
        where = f" (at character {offset + 1})" if offset is not None else ""
        super().__init__(f"{message}{where}")
        self.reason = message
        self.offset = offset


@dataclass(frozen=True)
class Compiled:
    """A checked expression: the polars expression, its result kind, the columns it reads."""

    expr: pl.Expr
    kind: Kind
    columns: frozenset[str]


@dataclass(frozen=True)
class _Typed:
    expr: pl.Expr
    kind: Kind
    node: ast.AST
    #: The Python value when the node is a literal (used for `in` lists and date literals).
    literal: Any = None
    is_literal: bool = False


def compile_expression(text: str, columns: Mapping[str, Kind] | None) -> Compiled:
    """Parse ``text`` and translate it to polars.

    ``columns`` maps each available column to its kind; with None (syntax check only, no
    schema known yet) any column name is accepted and not type-checked.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        offset = f" (at character {exc.offset})" if exc.offset else ""
        raise ExpressionError(f"syntax error: {exc.msg}{offset}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("the expression cannot be parsed") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ExpressionError(f"the expression is too complex ({nodes} parts, at most {MAX_NODES})")
    compiler = _Compiler(columns)
    try:
        typed = compiler.visit(tree.body)
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    return Compiled(typed.expr, typed.kind, frozenset(compiler.used))


def check_regex(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid (Rust ``regex`` crate) pattern, or None if it is."""
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except Exception as exc:  # polars raises ComputeError subclasses for a bad pattern
        text = str(exc).split("This error occurred", 1)[0]
        reason = next(
            (line.strip() for line in text.splitlines() if line.strip().startswith("error:")),
            "",
        )
        return f"invalid regular expression {pattern!r}" + (
            f": {reason.removeprefix('error:').strip()}" if reason else ""
        )
    return None


def _numeric(kind: Kind) -> bool:
    return kind in _NUMBER or kind in _LOOSE


def _is(kind: Kind, allowed: frozenset[Kind]) -> bool:
    return kind in allowed or kind in _LOOSE


def _describe(kind: Kind) -> str:
    return {
        "integer": "a whole number",
        "float": "a number",
        "boolean": "true/false",
        "text": "text",
        "date": "a date",
        "datetime": "a date-time",
        "null": "None",
        "any": "a value",
    }[kind]


def _parse_temporal(value: str, node: ast.AST) -> date | datetime:
    text = value.strip()
    try:
        if len(text) <= 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise ExpressionError(
            f"{value!r} is not a date (write YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)", node
        ) from None


def _number_result(*kinds: Kind) -> Kind:
    if any(k == "float" for k in kinds):
        return "float"
    if all(k == "integer" for k in kinds):
        return "integer"
    if any(k == "any" for k in kinds):
        return "any"
    return "integer" if "integer" in kinds else "null"


def _unify(a: Kind, b: Kind, node: ast.AST, what: str) -> Kind:
    """The common kind of two branches or values (numbers widen; null fits anything)."""
    if a in _LOOSE:
        return b if a == "null" else a
    if b in _LOOSE:
        return a if b == "null" else b
    if a == b:
        return a
    if a in _NUMBER and b in _NUMBER:
        return "float"
    if a in _TEMPORAL and b in _TEMPORAL:
        return "datetime"
    raise ExpressionError(f"{what} mixes {_describe(a)} and {_describe(b)}", node)


_BINARY: dict[type[ast.operator], tuple[str, Callable[[pl.Expr, pl.Expr], pl.Expr]]] = {
    ast.Add: ("+", lambda a, b: a + b),
    ast.Sub: ("-", lambda a, b: a - b),
    ast.Mult: ("*", lambda a, b: a * b),
    ast.Div: ("/", lambda a, b: a / b),
    ast.FloorDiv: ("//", lambda a, b: a // b),
    ast.Mod: ("%", lambda a, b: a % b),
    ast.Pow: ("**", lambda a, b: a.cast(pl.Float64) ** b),
}

_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[pl.Expr, pl.Expr], pl.Expr]]] = {
    ast.Eq: ("==", lambda a, b: a == b),
    ast.NotEq: ("!=", lambda a, b: a != b),
    ast.Lt: ("<", lambda a, b: a < b),
    ast.LtE: ("<=", lambda a, b: a <= b),
    ast.Gt: (">", lambda a, b: a > b),
    ast.GtE: (">=", lambda a, b: a >= b),
}


class _Compiler:
    """Walks the syntax tree; every node type not handled here is refused."""

    def __init__(self, columns: Mapping[str, Kind] | None) -> None:
        self.columns = columns
        self.used: set[str] = set()

    def visit(self, node: ast.AST) -> _Typed:
        handler = getattr(self, f"_visit_{type(node).__name__}", None)
        if handler is None:
            raise ExpressionError(_refusal(node), node)
        result: _Typed = handler(node)
        return result

    # -- leaves ----------------------------------------------------------------------------

    def _column(self, name: str, node: ast.AST) -> _Typed:
        if name.startswith("__"):
            raise ExpressionError(f"names starting with '__' are not allowed ({name!r})", node)
        if self.columns is None:
            kind: Kind = "any"
        elif name in self.columns:
            kind = self.columns[name]
        else:
            raise ExpressionError(f"unknown column {name!r}", node)
        self.used.add(name)
        return _Typed(pl.col(name), kind, node)

    def _visit_Name(self, node: ast.Name) -> _Typed:
        return self._column(node.id, node)

    def _visit_Constant(self, node: ast.Constant) -> _Typed:
        value = node.value
        if value is None:
            return _Typed(pl.lit(None), "null", node, None, True)
        if isinstance(value, bool):
            return _Typed(pl.lit(value), "boolean", node, value, True)
        if isinstance(value, int):
            if abs(value) > _INT64:
                raise ExpressionError("whole numbers must fit in 64 bits", node)
            return _Typed(pl.lit(value, dtype=pl.Int64), "integer", node, value, True)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ExpressionError("numbers must be finite", node)
            return _Typed(pl.lit(value), "float", node, value, True)
        if isinstance(value, str):
            if len(value) > 1000:
                raise ExpressionError("text literals are limited to 1000 characters", node)
            return _Typed(pl.lit(value, dtype=pl.String), "text", node, value, True)
        raise ExpressionError(f"{type(value).__name__} literals are not allowed", node)

    # -- operators -------------------------------------------------------------------------

    def _visit_UnaryOp(self, node: ast.UnaryOp) -> _Typed:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self._need(operand, frozenset({"boolean"}), "not")
            return _Typed(~operand.expr, "boolean", node)
        if isinstance(node.op, ast.USub | ast.UAdd):
            if not _numeric(operand.kind):
                raise ExpressionError(f"a sign needs a number, not {_describe(operand.kind)}", node)
            if isinstance(node.op, ast.UAdd):
                return operand
            literal = -operand.literal if operand.is_literal else None
            return _Typed(-operand.expr, operand.kind, node, literal, operand.is_literal)
        raise ExpressionError("bitwise operators are not allowed; use 'not'", node)

    def _visit_BinOp(self, node: ast.BinOp) -> _Typed:
        found = _BINARY.get(type(node.op))
        if found is None:
            raise ExpressionError("bitwise operators are not allowed; use 'and', 'or'", node)
        symbol, build = found
        left, right = self.visit(node.left), self.visit(node.right)
        kinds = {left.kind, right.kind}
        if symbol == "+" and "text" in kinds and kinds <= {"text", "null", "any"}:
            return _Typed(left.expr + right.expr, "text", node)
        for side in (left, right):
            if not _numeric(side.kind):
                hint = "; use days_between(a, b)" if side.kind in _TEMPORAL else ""
                if side.kind == "boolean":
                    hint = "; use int(x)"
                raise ExpressionError(
                    f"'{symbol}' needs numbers, not {_describe(side.kind)}{hint}", side.node
                )
        kind: Kind = "float" if symbol in ("/", "**") else _number_result(left.kind, right.kind)
        return _Typed(build(left.expr, right.expr), kind, node)

    def _visit_BoolOp(self, node: ast.BoolOp) -> _Typed:
        word = "and" if isinstance(node.op, ast.And) else "or"
        values = [self.visit(v) for v in node.values]
        for value in values:
            self._need(value, frozenset({"boolean"}), word)
        expr = values[0].expr
        for value in values[1:]:
            expr = (expr & value.expr) if word == "and" else (expr | value.expr)
        return _Typed(expr, "boolean", node)

    def _visit_Compare(self, node: ast.Compare) -> _Typed:
        special = [op for op in node.ops if isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot)]
        if special and len(node.ops) > 1:
            raise ExpressionError("'in' and 'is' cannot be chained; use 'and'", node)
        left = self.visit(node.left)
        op, comparator = node.ops[0], node.comparators[0]
        if isinstance(op, ast.In | ast.NotIn):
            expr = self._membership(left, comparator, negate=isinstance(op, ast.NotIn))
            return _Typed(expr, "boolean", node)
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(comparator, ast.Constant) and comparator.value is None):
                raise ExpressionError("'is' only compares with None: 'x is None'", comparator)
            test = left.expr.is_null() if isinstance(op, ast.Is) else left.expr.is_not_null()
            return _Typed(test, "boolean", node)
        parts: list[pl.Expr] = []
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            symbol, build = _COMPARE[type(op)]
            if right.kind == "null" or left.kind == "null":
                if symbol not in ("==", "!="):
                    raise ExpressionError(f"cannot use '{symbol}' with None", comparator)
                other = right if left.kind == "null" else left
                parts.append(other.expr.is_null() if symbol == "==" else other.expr.is_not_null())
            else:
                lhs, rhs = self._comparable(left, right, symbol, comparator)
                parts.append(build(lhs.expr, rhs.expr))
            left = right
        expr = parts[0]
        for part in parts[1:]:
            expr = expr & part
        return _Typed(expr, "boolean", node)

    def _comparable(
        self, left: _Typed, right: _Typed, symbol: str, node: ast.AST
    ) -> tuple[_Typed, _Typed]:
        """Both sides, with a text literal next to a date read as a date."""
        if left.kind in _TEMPORAL and right.kind == "text" and right.is_literal:
            right = self._temporal_literal(right)
        elif right.kind in _TEMPORAL and left.kind == "text" and left.is_literal:
            left = self._temporal_literal(left)
        a, b = left.kind, right.kind
        if a in _LOOSE or b in _LOOSE or a == b:
            ok = True
        else:
            ok = (a in _NUMBER and b in _NUMBER) or (a in _TEMPORAL and b in _TEMPORAL)
        if not ok:
            raise ExpressionError(
                f"cannot compare {_describe(a)} with {_describe(b)} using '{symbol}'", node
            )
        if a == "boolean" and symbol not in ("==", "!="):
            raise ExpressionError(f"true/false values cannot be ordered with '{symbol}'", node)
        return left, right

    def _temporal_literal(self, typed: _Typed) -> _Typed:
        value = _parse_temporal(str(typed.literal), typed.node)
        kind: Kind = "datetime" if isinstance(value, datetime) else "date"
        return _Typed(pl.lit(value), kind, typed.node, value, True)

    def _membership(self, left: _Typed, container: ast.AST, *, negate: bool) -> pl.Expr:
        if not isinstance(container, ast.List | ast.Tuple | ast.Set):
            raise ExpressionError("'in' needs a list of values: x in [1, 2, 3]", container)
        if len(container.elts) > 1000:
            raise ExpressionError("'in' lists are limited to 1000 values", container)
        values: list[Any] = []
        kind: Kind = "null"
        for element in container.elts:
            item = self.visit(element)
            if not item.is_literal:
                raise ExpressionError("'in' lists hold literal values only", element)
            if item.kind == "null":
                raise ExpressionError("use 'x is None' to test for missing values", element)
            kind = _unify(kind, item.kind, element, "the list")
            values.append(item.literal)
        if left.kind in _TEMPORAL and kind == "text":
            values = [_parse_temporal(v, container) for v in values]
            kind = left.kind
        if values and not (
            left.kind in _LOOSE
            or left.kind == kind
            or (left.kind in _NUMBER and kind in _NUMBER)
            or (left.kind in _TEMPORAL and kind in _TEMPORAL)
        ):
            raise ExpressionError(
                f"cannot look for {_describe(left.kind)} in a list of {_describe(kind)}",
                container,
            )
        if left.kind == "float" and kind == "integer":
            values = [float(v) for v in values]
        elif left.kind == "integer" and kind == "float":
            found = left.expr.cast(pl.Float64).is_in(pl.Series(values, dtype=pl.Float64).implode())
            return ~found if negate else found
        found = left.expr.is_in(pl.Series(values).implode()) if values else pl.lit(False)
        return ~found if negate else found

    def _visit_IfExp(self, node: ast.IfExp) -> _Typed:
        test = self.visit(node.test)
        self._need(test, frozenset({"boolean"}), "the condition of 'if'")
        body, orelse = self.visit(node.body), self.visit(node.orelse)
        kind = _unify(body.kind, orelse.kind, node, "'x if c else y'")
        expr = pl.when(test.expr).then(body.expr).otherwise(orelse.expr)
        return _Typed(expr, kind, node)

    # -- functions -------------------------------------------------------------------------

    def _visit_Call(self, node: ast.Call) -> _Typed:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError("only the listed functions can be called, by name", node)
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"{name}() takes positional arguments only", node)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError("'*' arguments are not allowed", node)
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise ExpressionError(f"unknown function {name!r}; allowed: {_FUNCTION_NAMES}", node)
        low, high = spec.arity
        count = len(node.args)
        if count < low or (high is not None and count > high):
            expected = str(low) if low == high else f"{low} to {high or 'any number of'}"
            raise ExpressionError(f"{name}() takes {expected} arguments, got {count}", node)
        if name == "col":
            arg = node.args[0]
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise ExpressionError("col() takes a column name in quotes", arg)
            return self._column(arg.value, node)
        args = [self.visit(a) for a in node.args]
        return spec.build(self, node, args)

    def _need(self, typed: _Typed, kinds: frozenset[Kind], what: str) -> None:
        if not _is(typed.kind, kinds):
            wanted = " or ".join(_describe(k) for k in sorted(kinds))
            raise ExpressionError(f"{what} needs {wanted}, not {_describe(typed.kind)}", typed.node)

    def _literal_text(self, typed: _Typed, what: str) -> str:
        if not (typed.is_literal and isinstance(typed.literal, str)):
            raise ExpressionError(f"{what} must be text in quotes", typed.node)
        return str(typed.literal)

    def _literal_int(self, typed: _Typed, what: str) -> int:
        if not (typed.is_literal and type(typed.literal) is int):
            raise ExpressionError(f"{what} must be a whole number", typed.node)
        return int(typed.literal)


@dataclass(frozen=True)
class _Function:
    arity: tuple[int, int | None]
    build: Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]
    doc: str


_TEXT: frozenset[Kind] = frozenset({"text"})
_NUMBERS = _NUMBER
_TEMPORALS = _TEMPORAL


def _math(
    op: Callable[[pl.Expr], pl.Expr], kind: Kind | None = None
) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        c._need(args[0], _NUMBERS, f"{node.func.id}()")  # type: ignore[attr-defined]
        return _Typed(op(args[0].expr), kind or args[0].kind, node)

    return build


def _text_fn(
    op: Callable[[pl.Expr], pl.Expr], kind: Kind = "text"
) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        c._need(args[0], _TEXT, f"{node.func.id}()")  # type: ignore[attr-defined]
        return _Typed(op(args[0].expr), kind, node)

    return build


def _text_with_literal(
    op: Callable[[pl.Expr, str], pl.Expr],
) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        name = node.func.id  # type: ignore[attr-defined]
        c._need(args[0], _TEXT, f"{name}()")
        return _Typed(
            op(args[0].expr, c._literal_text(args[1], f"{name}()'s second argument")),
            "boolean",
            node,
        )

    return build


def _date_part(
    op: Callable[[pl.Expr], pl.Expr], *, time: bool = False
) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        c._need(args[0], _TEMPORALS, f"{node.func.id}()")  # type: ignore[attr-defined]
        expr = args[0].expr
        if time and args[0].kind == "date":
            expr = expr.cast(pl.Datetime("us"))
        return _Typed(op(expr).cast(pl.Int64), "integer", node)

    return build


def _round(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    c._need(args[0], _NUMBERS, "round()")
    digits = c._literal_int(args[1], "round()'s digits") if len(args) > 1 else 0
    if not 0 <= digits <= 15:
        raise ExpressionError("round() keeps 0 to 15 digits", node)
    kind: Kind = "integer" if args[0].kind == "integer" else args[0].kind
    return _Typed(args[0].expr.round(digits), kind, node)


def _log(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    c._need(args[0], _NUMBERS, "log()")
    base = math.e
    if len(args) > 1:
        if not (args[1].is_literal and args[1].kind in _NUMBER and args[1].literal > 0):
            raise ExpressionError("log()'s base must be a positive number", args[1].node)
        base = float(args[1].literal)
    return _Typed(args[0].expr.cast(pl.Float64).log(base), "float", node)


def _extreme(smallest: bool) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        name = "min" if smallest else "max"
        kind: Kind = "null"
        for arg in args:
            if arg.kind not in _LOOSE and arg.kind not in (_NUMBER | _TEMPORAL | _TEXT):
                raise ExpressionError(f"{name}() compares numbers, dates or text", arg.node)
            kind = _unify(kind, arg.kind, arg.node, f"{name}()")
        exprs = [a.expr for a in args]
        combined = pl.min_horizontal(exprs) if smallest else pl.max_horizontal(exprs)
        return _Typed(combined, kind, node)

    return build


def _clip(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    for arg in args:
        c._need(arg, _NUMBERS, "clip()")
    kind = _number_result(*(a.kind for a in args))
    return _Typed(args[0].expr.clip(args[1].expr, args[2].expr), kind, node)


def _coalesce(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    kind: Kind = "null"
    for arg in args:
        kind = _unify(kind, arg.kind, arg.node, "coalesce()")
    return _Typed(pl.coalesce([a.expr for a in args]), kind, node)


def _replace(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    c._need(args[0], _TEXT, "replace()")
    old = c._literal_text(args[1], "replace()'s text to find")
    new = c._literal_text(args[2], "replace()'s replacement")
    if not old:
        raise ExpressionError("replace() needs a non-empty text to find", args[1].node)
    return _Typed(args[0].expr.str.replace_all(old, new, literal=True), "text", node)


def _matches(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    c._need(args[0], _TEXT, "matches()")
    pattern = c._literal_text(args[1], "matches()'s pattern")
    problem = check_regex(pattern)
    if problem:
        raise ExpressionError(problem, args[1].node)
    return _Typed(args[0].expr.str.contains(pattern), "boolean", node)


def _substr(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    c._need(args[0], _TEXT, "substr()")
    start = c._literal_int(args[1], "substr()'s start")
    length = c._literal_int(args[2], "substr()'s length") if len(args) > 2 else None
    if start < 0 or (length is not None and length < 0):
        raise ExpressionError("substr() takes a start and length of 0 or more", node)
    return _Typed(args[0].expr.str.slice(start, length), "text", node)


def _concat(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    parts = [a.expr.cast(pl.String) for a in args]
    return _Typed(pl.concat_str(parts), "text", node)


def _null_test(negate: bool) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        expr = args[0].expr
        # A NaN is as missing as a null for users (CSV "NaN", failed arithmetic).
        missing = expr.is_null() | expr.is_nan() if args[0].kind == "float" else expr.is_null()
        return _Typed(~missing if negate else missing, "boolean", node)

    return build


def _to_int(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    arg = args[0]
    if arg.kind == "text":
        expr = arg.expr.str.strip_chars().cast(pl.Int64, strict=False)
    elif arg.kind == "float":
        expr = arg.expr.round(0).cast(pl.Int64, strict=False)
    elif arg.kind in _TEMPORAL:
        raise ExpressionError("int() cannot read a date; use year(), days_between()", arg.node)
    else:
        expr = arg.expr.cast(pl.Int64, strict=False)
    return _Typed(expr, "integer", node)


def _to_float(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    arg = args[0]
    if arg.kind in _TEMPORAL:
        raise ExpressionError("float() cannot read a date", arg.node)
    expr = arg.expr.str.strip_chars() if arg.kind == "text" else arg.expr
    return _Typed(expr.cast(pl.Float64, strict=False), "float", node)


def _to_str(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    return _Typed(args[0].expr.cast(pl.String), "text", node)


def _date_literal(kind: Kind) -> Callable[[_Compiler, ast.Call, list[_Typed]], _Typed]:
    def build(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
        text = c._literal_text(args[0], f"{kind}()")
        value = _parse_temporal(text, args[0].node)
        if kind == "datetime" and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        if kind == "date" and isinstance(value, datetime):
            value = value.date()
        return _Typed(pl.lit(value), kind, node, value, True)

    return build


def _days_between(c: _Compiler, node: ast.Call, args: list[_Typed]) -> _Typed:
    start, end = args
    for arg in (start, end):
        c._need(arg, _TEMPORALS, "days_between()")
    exprs = [
        a.expr.cast(pl.Datetime("us")) if a.kind in ("date", "datetime") else a.expr
        for a in (start, end)
    ]
    return _Typed((exprs[1] - exprs[0]).dt.total_days(), "integer", node)


def _weekday(expr: pl.Expr) -> pl.Expr:
    return expr.dt.weekday()


FUNCTIONS: dict[str, _Function] = {
    "col": _Function((1, 1), lambda c, n, a: a[0], 'a column by name: col("unit price")'),
    "abs": _Function((1, 1), _math(lambda e: e.abs()), "absolute value"),
    "round": _Function((1, 2), _round, "round(x) or round(x, digits)"),
    "floor": _Function((1, 1), _math(lambda e: e.floor(), "float"), "round down"),
    "ceil": _Function((1, 1), _math(lambda e: e.ceil(), "float"), "round up"),
    "sqrt": _Function((1, 1), _math(lambda e: e.cast(pl.Float64).sqrt(), "float"), "square root"),
    "exp": _Function((1, 1), _math(lambda e: e.cast(pl.Float64).exp(), "float"), "e to the x"),
    "log": _Function((1, 2), _log, "natural logarithm, or log(x, base)"),
    "log10": _Function(
        (1, 1), _math(lambda e: e.cast(pl.Float64).log10(), "float"), "base-10 logarithm"
    ),
    "min": _Function((2, None), _extreme(True), "smallest of the arguments (per row)"),
    "max": _Function((2, None), _extreme(False), "largest of the arguments (per row)"),
    "clip": _Function((3, 3), _clip, "clip(x, low, high)"),
    "lower": _Function((1, 1), _text_fn(lambda e: e.str.to_lowercase()), "lower case"),
    "upper": _Function((1, 1), _text_fn(lambda e: e.str.to_uppercase()), "upper case"),
    "title": _Function((1, 1), _text_fn(lambda e: e.str.to_titlecase()), "Title Case"),
    "strip": _Function((1, 1), _text_fn(lambda e: e.str.strip_chars()), "trim whitespace"),
    "len": _Function(
        (1, 1), _text_fn(lambda e: e.str.len_chars().cast(pl.Int64), "integer"), "characters"
    ),
    "contains": _Function(
        (2, 2), _text_with_literal(lambda e, s: e.str.contains(s, literal=True)), "has text"
    ),
    "startswith": _Function(
        (2, 2), _text_with_literal(lambda e, s: e.str.starts_with(s)), "starts with text"
    ),
    "endswith": _Function(
        (2, 2), _text_with_literal(lambda e, s: e.str.ends_with(s)), "ends with text"
    ),
    "matches": _Function((2, 2), _matches, "matches a regular expression"),
    "replace": _Function((3, 3), _replace, "replace(s, old, new), literal text"),
    "substr": _Function((2, 3), _substr, "substr(s, start[, length]), from 0"),
    "concat": _Function((1, None), _concat, "join values as text"),
    "is_null": _Function((1, 1), _null_test(False), "missing (null or NaN)"),
    "is_not_null": _Function((1, 1), _null_test(True), "present"),
    "coalesce": _Function((1, None), _coalesce, "first non-missing argument"),
    "int": _Function((1, 1), _to_int, "to a whole number (rounded; unreadable text → null)"),
    "float": _Function((1, 1), _to_float, "to a number (unreadable text → null)"),
    "str": _Function((1, 1), _to_str, "to text"),
    "date": _Function((1, 1), _date_literal("date"), 'a date: date("2024-01-31")'),
    "datetime": _Function((1, 1), _date_literal("datetime"), 'datetime("2024-01-31 12:00")'),
    "year": _Function((1, 1), _date_part(lambda e: e.dt.year()), "year of a date"),
    "month": _Function((1, 1), _date_part(lambda e: e.dt.month()), "month, 1-12"),
    "day": _Function((1, 1), _date_part(lambda e: e.dt.day()), "day of the month"),
    "weekday": _Function((1, 1), _date_part(_weekday), "day of the week, Monday=1 … Sunday=7"),
    "hour": _Function((1, 1), _date_part(lambda e: e.dt.hour(), time=True), "hour, 0-23"),
    "days_between": _Function((2, 2), _days_between, "days_between(start, end): whole days"),
}
_FUNCTION_NAMES = ", ".join(sorted(FUNCTIONS))


def _refusal(node: ast.AST) -> str:
    """Why a syntax element is refused, in words a user understands."""
    if isinstance(node, ast.Attribute):
        return "attribute access ('.') is not allowed; use the listed functions"
    if isinstance(node, ast.Subscript):
        return "indexing ('[...]') is not allowed"
    if isinstance(node, ast.Lambda):
        return "lambda is not allowed"
    if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return "comprehensions are not allowed"
    if isinstance(node, ast.JoinedStr | ast.FormattedValue):
        return "f-strings are not allowed; use concat()"
    if isinstance(node, ast.NamedExpr):
        return "assignment (':=') is not allowed"
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return "a list is only allowed after 'in'"
    if isinstance(node, ast.Dict):
        return "dictionaries are not allowed"
    if isinstance(node, ast.Await | ast.Yield | ast.YieldFrom):
        return f"'{type(node).__name__.lower()}' is not allowed"
    return f"{type(node).__name__} is not allowed in an expression"
