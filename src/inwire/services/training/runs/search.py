"""The run filter language: a small, safe grammar like MLflow's, parsed into a tree.

Examples::

    metrics.rmse < 0.5 and params.model = 'rf'
    tags.team = 'risk' AND status = 'FINISHED'
    metrics.`val loss` <= 0.1 or (params.lr IN ('0.1', '0.01') and tags."mlflow.user" LIKE 'a%')
    attributes.start_time >= '2026-01-01T00:00:00Z' and params.depth IS NOT NULL

Grammar (keywords are case-insensitive)::

    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := '(' expr ')' | comparison
    comparison := identifier op value | identifier IN list | identifier NOT IN list
                | identifier IS [NOT] NULL
    identifier := [metrics|metric|params|param|parameters|tags|tag|attributes|attribute
                   |attr|run] '.' key   |   attribute
    key        := name | `backticked` | "double quoted"
    op         := = | == | != | <> | < | <= | > | >= | LIKE | ILIKE
    value      := 'string' | "string" | number
    list       := '(' value (',' value)* ')'

MLflow's filter strings (``runs/search``) are the AND-only subset of this, so the MLflow
API passes them straight to :func:`parse_filter`. The text is tokenised by one regular
expression and parsed by recursive descent into :class:`Comparison`/:class:`And`/
:class:`Or` nodes; nothing is evaluated, and values only ever become bound parameters
(``runs.repository`` compiles the tree to SQL). :func:`parse_order_by` reads MLflow's
``order_by`` terms (``metrics.rmse DESC``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias

from inwire.kit.errors import Invalid

Kind = Literal["metric", "param", "tag", "attribute"]
Op = Literal[
    "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"
]
Value: TypeAlias = str | float | datetime | tuple[str, ...] | None

#: Limits that keep a hostile filter cheap to parse and to run.
MAX_FILTER_LENGTH = 10_000
MAX_COMPARISONS = 100
MAX_DEPTH = 20
MAX_LIST = 1000

_PREFIXES: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "parameter": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}

#: Attribute names (and their aliases, MLflow's included) -> the attribute searched.
ATTRIBUTES: dict[str, str] = {
    "status": "status",
    "name": "name",
    "run_name": "name",
    "start_time": "start_time",
    "created": "start_time",
    "end_time": "end_time",
    "id": "id",
    "run_id": "id",
    "experiment_id": "experiment_id",
    "parent_run_id": "parent_run_id",
    "user_id": "created_by",
    "created_by": "created_by",
    "dataset_version_id": "dataset_version_id",
    "git_commit": "git_commit",
    "entry_point": "entry_point",
    "lifecycle": "lifecycle",
}
#: Attributes compared as times (a number is milliseconds since the epoch, as in MLflow).
TIME_ATTRIBUTES = frozenset({"start_time", "end_time"})

_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"})
_NUMBER_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL"})
_TIME_OPS = _NUMBER_OPS
_EQUALITY_OPS = frozenset({"=", "!=", "IN", "NOT IN", "IS NULL", "IS NOT NULL"})


class FilterSyntaxError(Invalid):
    """A filter or order-by the grammar does not accept (400 ``INVALID_FILTER``)."""

    code = "INVALID_FILTER"


@dataclass(frozen=True)
class Comparison:
    """``<kind>.<key> <op> <value>``; ``value`` is None for IS [NOT] NULL, a tuple for IN."""

    kind: Kind
    key: str
    op: Op
    value: Value


@dataclass(frozen=True)
class And:
    """Every part holds."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one part holds."""

    parts: tuple[Expr, ...]


Expr: TypeAlias = Comparison | And | Or


@dataclass(frozen=True)
class OrderTerm:
    """One sort key: a metric's latest value, a param, a tag or an attribute."""

    kind: Kind
    key: str
    descending: bool = False


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][\w.\-/:]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL"})


@dataclass(frozen=True)
class _Token:
    kind: str  # string, backtick, number, op, punct, word, keyword, end
    text: str
    pos: int


def _error(message: str, pos: int | None = None) -> FilterSyntaxError:
    where = f" at position {pos}" if pos is not None else ""
    return FilterSyntaxError(
        f"Invalid filter{where}: {message}",
        details=[{"field": "filter", "message": message, "position": pos}],
    )


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        value = match.group()
        if kind != "ws":
            if kind == "word" and value.upper() in _KEYWORDS:
                tokens.append(_Token("keyword", value.upper(), pos))
            else:
                tokens.append(_Token(kind, value, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    quote = token.text[0]
    if quote == "`":
        return body
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.comparisons = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.i += 1
            return token
        return None

    def expect(self, kind: str, text: str, what: str) -> _Token:
        token = self.accept(kind, text)
        if token is None:
            raise _error(f"expected {what}, found {self._describe(self.token)}", self.token.pos)
        return token

    @staticmethod
    def _describe(token: _Token) -> str:
        return "the end of the filter" if token.kind == "end" else repr(token.text)

    def parse(self) -> Expr:
        expr = self.expr(0)
        if self.token.kind != "end":
            raise _error(
                f"expected AND, OR or the end, found {self._describe(self.token)}",
                self.token.pos,
            )
        return expr

    def expr(self, depth: int) -> Expr:
        parts = [self.term(depth)]
        while self.accept("keyword", "OR"):
            parts.append(self.term(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self, depth: int) -> Expr:
        parts = [self.factor(depth)]
        while self.accept("keyword", "AND"):
            parts.append(self.factor(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self, depth: int) -> Expr:
        start = self.accept("punct", "(")
        if start is not None:
            if depth >= MAX_DEPTH:
                raise _error(f"parentheses nest deeper than {MAX_DEPTH}", start.pos)
            inner = self.expr(depth + 1)
            self.expect("punct", ")", "')'")
            return inner
        return self.comparison()

    def identifier(self) -> tuple[Kind, str, int]:
        token = self.take()
        if token.kind == "backtick":
            # A lone backticked name is an attribute (MLflow: `attributes` is implied).
            return self._attribute(_unquote(token), token.pos)
        if token.kind != "word":
            raise _error(
                f"expected a metric, param, tag or attribute, found {self._describe(token)}",
                token.pos,
            )
        prefix, dot, rest = token.text.partition(".")
        kind = _PREFIXES.get(prefix.lower()) if dot else None
        if kind is None:
            if dot:
                raise _error(
                    f"unknown identifier type {prefix!r}; use metrics., params., tags. or "
                    "attributes.",
                    token.pos,
                )
            return self._attribute(token.text, token.pos)
        if not rest:
            quoted = self.token
            if quoted.kind not in ("backtick", "string") or quoted.pos != token.pos + len(
                token.text
            ):
                raise _error(f"expected a key after {token.text!r}", token.pos)
            self.i += 1
            rest = _unquote(quoted)
        if not rest:
            raise _error("empty key", token.pos)
        if kind == "attribute":
            return self._attribute(rest, token.pos)
        return kind, rest, token.pos

    @staticmethod
    def _attribute(name: str, pos: int) -> tuple[Kind, str, int]:
        attribute = ATTRIBUTES.get(name.lower())
        if attribute is None:
            known = ", ".join(sorted(set(ATTRIBUTES)))
            raise _error(f"unknown attribute {name!r}; known: {known}", pos)
        return "attribute", attribute, pos

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _error(f"more than {MAX_COMPARISONS} comparisons", self.token.pos)
        kind, key, pos = self.identifier()
        op_token = self.token
        op: Op
        value: Value
        if self.accept("keyword", "IS"):
            negate = self.accept("keyword", "NOT") is not None
            self.expect("keyword", "NULL", "NULL")
            op, value = ("IS NOT NULL" if negate else "IS NULL"), None
        elif self.accept("keyword", "NOT"):
            self.expect("keyword", "IN", "IN after NOT")
            op, value = "NOT IN", self.value_list()
        elif self.accept("keyword", "IN"):
            op, value = "IN", self.value_list()
        elif self.accept("keyword", "LIKE"):
            op, value = "LIKE", self.string_value()
        elif self.accept("keyword", "ILIKE"):
            op, value = "ILIKE", self.string_value()
        elif op_token.kind == "op":
            self.i += 1
            text = op_token.text
            op = "=" if text == "==" else "!=" if text == "<>" else text  # type: ignore[assignment]
            value = self.scalar_value()
        else:
            raise _error(
                f"expected a comparison operator, found {self._describe(op_token)}",
                op_token.pos,
            )
        return _checked(Comparison(kind, key, op, value), pos)

    def scalar_value(self) -> str | float:
        token = self.take()
        if token.kind == "string":
            return _unquote(token)
        if token.kind == "number":
            return float(token.text)
        raise _error(f"expected a value, found {self._describe(token)}", token.pos)

    def string_value(self) -> str:
        token = self.take()
        if token.kind != "string":
            raise _error(f"expected a quoted pattern, found {self._describe(token)}", token.pos)
        return _unquote(token)

    def value_list(self) -> tuple[str, ...]:
        start = self.expect("punct", "(", "'(' starting a list")
        values: list[str] = []
        while True:
            token = self.take()
            if token.kind == "string":
                values.append(_unquote(token))
            elif token.kind == "number":
                values.append(token.text)
            else:
                raise _error(
                    f"expected a value in the list, found {self._describe(token)}", token.pos
                )
            if len(values) > MAX_LIST:
                raise _error(f"a list holds at most {MAX_LIST} values", start.pos)
            if self.accept("punct", ")"):
                return tuple(values)
            self.expect("punct", ",", "',' or ')'")


def _time(value: str | float, pos: int) -> datetime:
    if isinstance(value, float):
        return datetime.fromtimestamp(value / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _error(f"{value!r} is not a time (RFC 3339, or milliseconds)", pos) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _checked(c: Comparison, pos: int) -> Comparison:
    """Check the operator and value fit the identifier; normalise the value."""
    what = f"{c.kind}s.{c.key}" if c.kind != "attribute" else c.key
    if c.kind == "metric":
        allowed = _NUMBER_OPS
    elif c.kind == "attribute" and c.key in TIME_ATTRIBUTES:
        allowed = _TIME_OPS
    elif c.kind == "attribute" and c.key in ("status", "lifecycle", "id", "experiment_id"):
        allowed = _EQUALITY_OPS
    else:
        allowed = _STRING_OPS
    if c.op not in allowed:
        raise _error(f"{what} does not support {c.op}; use {', '.join(sorted(allowed))}", pos)
    value = c.value
    if c.kind == "metric" and c.op not in ("IS NULL", "IS NOT NULL"):
        if not isinstance(value, float):
            try:
                value = float(str(value))
            except ValueError as exc:
                raise _error(f"{what} compares with a number, not {value!r}", pos) from exc
    elif c.kind == "attribute" and c.key in TIME_ATTRIBUTES and value is not None:
        value = _time(value if isinstance(value, str | float) else str(value), pos)
    elif isinstance(value, float):
        raise _error(f"{what} compares with a quoted string, not a number", pos)
    if c.kind == "attribute" and c.key in ("status", "lifecycle"):
        value = (
            tuple(v.lower() for v in value)
            if isinstance(value, tuple)
            else value.lower()
            if isinstance(value, str)
            else value
        )
    return Comparison(c.kind, c.key, c.op, value)


def parse_filter(text: str | None) -> Expr | None:
    """The tree of a filter string; None for an empty one. Raises ``FilterSyntaxError``."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(f"longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(text).parse()


def parse_order_by(terms: Sequence[str]) -> list[OrderTerm]:
    """Sort keys from terms like ``metrics.rmse DESC``, ``params.lr`` or ``start_time ASC``."""
    result: list[OrderTerm] = []
    for term in terms:
        parser = _Parser(term)
        kind, key, _ = parser.identifier()
        descending = False
        token = parser.token
        if token.kind == "word" and token.text.upper() in ("ASC", "DESC"):
            descending = token.text.upper() == "DESC"
            parser.i += 1
        if parser.token.kind != "end":
            raise FilterSyntaxError(
                f"Invalid order_by term {term!r}: expected '<identifier> [ASC|DESC]'",
                details=[{"field": "order_by", "message": "expected <identifier> [ASC|DESC]"}],
            )
        result.append(OrderTerm(kind, key, descending))
    return result
