"""A small, safe expression language for filters, compiled to DuckDB SQL.

``length_ratio < 3 and suspicion < 0.8 and agreement >= 0.6`` is parsed with Python's
:mod:`ast` (``mode="eval"``) and every node is checked against a whitelist; nothing is
ever evaluated by Python. The checked tree is compiled to one DuckDB SQL expression over
the per-judgment frame (:mod:`prefkit.curation.pairframe`): identifiers are double-quoted,
strings become single-quoted SQL literals with quotes doubled, so no input can escape into
SQL.

Accepted
    ``and``/``or``/``not``; comparisons ``< <= > >= == !=`` (chained: ``1 < x < 3``);
    ``+ - * /`` and unary minus; numbers, strings, ``True``/``False``/``None``;
    ``x in (c1, c2)`` / ``x not in [...]`` with constants; ``x is None`` /
    ``x is not None`` (``x == None`` means the same); column names; and the functions in
    :data:`FUNCTIONS`.

Semantics are SQL's: a comparison with a null is null (a filter drops such rows and
counts them separately); ``/`` is true division, and dividing by zero gives ±inf (NaN for
``0/0``) as in DuckDB.

Anything else (attributes, subscripts, lambdas, comprehensions, other calls, names
starting with ``__``, ``%``, ``**``, …) raises :class:`PrefkitError` naming the offending
token and its 1-based line and column.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection
from dataclasses import dataclass

from prefkit.errors import PrefkitError

#: Whitelisted functions: Python-style name -> (SQL function, min args, max args).
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "abs": ("abs", 1, 1),
    "min": ("least", 2, 8),
    "max": ("greatest", 2, 8),
    "lower": ("lower", 1, 1),
    "upper": ("upper", 1, 1),
    "len": ("length", 1, 1),
    "round": ("round", 1, 2),
    "coalesce": ("coalesce", 2, 8),
    "log": ("ln", 1, 1),
    "sqrt": ("sqrt", 1, 1),
}

_COMPARE = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "=",
    ast.NotEq: "<>",
}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Expr:
    """A checked expression: its source ``text``, the DuckDB ``sql`` and the column
    ``names`` it reads (in order of first use)."""

    text: str
    sql: str
    names: tuple[str, ...]

    def check_names(self, available: Collection[str]) -> None:
        """Raise :class:`PrefkitError` when a name is not a column in ``available``."""
        unknown = [n for n in self.names if n not in available]
        if unknown:
            raise PrefkitError(
                f"filter expression {self.text!r}: unknown column(s) {', '.join(unknown)}; "
                f"available: {', '.join(sorted(available))}"
            )


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    """``value`` as a single-quoted SQL string literal."""
    if "\x00" in value:
        raise PrefkitError("filter expression: strings may not contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


class _Compiler:
    def __init__(self, text: str):
        self.text = text
        self.names: list[str] = []

    # --- errors ---------------------------------------------------------------------------
    def fail(self, node: ast.AST, what: str) -> PrefkitError:
        segment = ast.get_source_segment(self.text, node) or type(node).__name__
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        # col_offset counts UTF-8 bytes; report characters.
        src_line = self.text.splitlines()[line - 1] if self.text.splitlines() else ""
        col_chars = len(src_line.encode()[:col].decode(errors="ignore")) + 1
        where = f"column {col_chars}" if line == 1 else f"line {line}, column {col_chars}"
        return PrefkitError(
            f"filter expression {self.text!r}: {what} not allowed at {where}: {segment!r}"
        )

    # --- nodes ----------------------------------------------------------------------------
    def constant(self, node: ast.AST) -> str:
        if not isinstance(node, ast.Constant):
            raise self.fail(node, "a non-constant value in a list")
        value = node.value
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(node, "a non-finite number")
            return repr(value)
        if isinstance(value, str):
            return quote_str(value)
        raise self.fail(node, f"a {type(value).__name__} constant")

    def visit(self, node: ast.AST) -> str:
        if isinstance(node, ast.BoolOp):
            op = " AND " if isinstance(node.op, ast.And) else " OR "
            return "(" + op.join(self.visit(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"(NOT {self.visit(node.operand)})"
            if isinstance(node.op, ast.USub):
                return f"(-{self.visit(node.operand)})"
            if isinstance(node.op, ast.UAdd):
                return self.visit(node.operand)
            raise self.fail(node, "the operator ~")
        if isinstance(node, ast.BinOp):
            arith = _ARITH.get(type(node.op))
            if arith is None:
                raise self.fail(node, f"the operator {type(node.op).__name__}")
            return f"({self.visit(node.left)} {arith} {self.visit(node.right)})"
        if isinstance(node, ast.Compare):
            parts = []
            left = node.left
            for cmp, right in zip(node.ops, node.comparators, strict=True):
                parts.append(self.compare(node, left, cmp, right))
                left = right
            return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise self.fail(node, "a dunder name")
            if node.id not in self.names:
                self.names.append(node.id)
            return quote_ident(node.id)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        kind = {
            ast.Attribute: "attribute access",
            ast.Subscript: "subscript",
            ast.Lambda: "lambda",
            ast.IfExp: "conditional expression",
        }.get(type(node), type(node).__name__)
        raise self.fail(node, kind)

    def compare(self, node: ast.AST, left: ast.AST, op: ast.cmpop, right: ast.AST) -> str:
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.Tuple | ast.List | ast.Set):
                raise self.fail(right, "'in' with something other than a list of constants")
            items = [self.constant(e) for e in right.elts]
            lhs = self.visit(left)
            if not items:
                return "FALSE" if isinstance(op, ast.In) else "TRUE"
            neg = "NOT " if isinstance(op, ast.NotIn) else ""
            return f"({lhs} {neg}IN ({', '.join(items)}))"
        none_right = isinstance(right, ast.Constant) and right.value is None
        if isinstance(op, ast.Is | ast.IsNot) or (
            none_right and isinstance(op, ast.Eq | ast.NotEq)
        ):
            if not none_right:
                raise self.fail(right, "'is' with something other than None")
            neg = "NOT " if isinstance(op, ast.IsNot | ast.NotEq) else ""
            return f"({self.visit(left)} IS {neg}NULL)"
        sql_op = _COMPARE.get(type(op))
        if sql_op is None:
            raise self.fail(node, f"the comparison {type(op).__name__}")
        return f"({self.visit(left)} {sql_op} {self.visit(right)})"

    def call(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.fail(
                node.func, f"a call (functions: {', '.join(FUNCTIONS)}); this function is"
            )
        if node.keywords:
            raise self.fail(node.keywords[0].value, "a keyword argument")
        sql, lo, hi = FUNCTIONS[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise self.fail(node, f"{node.func.id}() with {len(node.args)} argument(s)")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, "a starred argument")
        return f"{sql}({', '.join(self.visit(a) for a in node.args)})"


def parse(text: str) -> Expr:
    """Check and compile a filter expression.

    Parameters
    ----------
    text
        The expression, e.g. ``"length_ratio < 3 and suspicion < 0.8"``.

    Returns
    -------
    Expr
        The source, the DuckDB SQL and the column names it reads.

    Raises
    ------
    PrefkitError
        On a syntax error or any construct outside the language, naming the token and
        its column.
    """
    if not isinstance(text, str) or not text.strip():
        raise PrefkitError("filter expression is empty")
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise PrefkitError(
            f"filter expression {text!r}: syntax error at column {exc.offset or 0}: {exc.msg}"
        ) from None
    compiler = _Compiler(text)
    sql = compiler.visit(tree.body)
    return Expr(text, sql, tuple(compiler.names))


__all__ = ["FUNCTIONS", "Expr", "parse", "quote_ident", "quote_str"]
