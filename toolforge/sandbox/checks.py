"""Evaluate a TestCase ``check`` expression safely, and compare ``expect`` values.

A check is written by a model, so it is data: it is parsed with :mod:`ast` and walked by a
small interpreter that knows a whitelist of node types, names and functions. Nothing is
compiled or ``eval``'d; attribute access exists only as calls of a few methods of str,
dict and list values; sizes are bounded so a check cannot exhaust memory or time.

    evaluate("len(result['items']) == 3 and all(x > 0 for x in result['items'])", result)
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from toolforge.errors import UsageError

MAX_SIZE = 1_000_000  # elements / characters a check may build
MAX_STEPS = 200_000  # nodes a check may evaluate (comprehensions included)


class CheckError(UsageError):
    """A check expression uses something outside the whitelist, or failed to evaluate."""


_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "set": set,
    "tuple": tuple,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "all": all,
    "any": any,
    "isinstance": isinstance,
    **_TYPES,
}
_METHODS: dict[type, set[str]] = {
    str: {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "splitlines",
        "join",
        "replace",
        "count",
        "find",
        "isdigit",
        "isalpha",
        "isalnum",
        "isspace",
        "islower",
        "isupper",
        "title",
        "capitalize",
    },
    dict: {"get", "keys", "values", "items"},
    list: {"count", "index"},
    tuple: {"count", "index"},
}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def evaluate(expression: str, result: Any) -> bool:
    """True if the check holds for ``result``; CheckError if it is not allowed or fails."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as e:
        raise CheckError(f"check is not a Python expression: {e.msg}") from None
    interp = _Interpreter({"result": result})
    try:
        return bool(interp.eval(tree.body))
    except CheckError:
        raise
    except RecursionError:
        raise CheckError("check is nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - any evaluation failure is the check's failure
        raise CheckError(f"check raised {type(e).__name__}: {e}") from None


class _Interpreter:
    def __init__(self, names: dict[str, Any]) -> None:
        self.scopes = [names]
        self.steps = 0

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        if name in _FUNCTIONS:
            return _FUNCTIONS[name]
        raise CheckError(
            f"check uses the unknown name {name!r} (only result and a few builtins are allowed)"
        )

    def eval(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise CheckError("check takes too many steps")
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise CheckError(f"check uses {type(node).__name__}, which is not allowed")
        return method(node)

    # -- literals and names --------------------------------------------------------------
    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id)

    def _List(self, node: ast.List) -> list[Any]:
        return [self.eval(e) for e in node.elts]

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.eval(e) for e in node.elts)

    def _Set(self, node: ast.Set) -> set[Any]:
        return {self.eval(e) for e in node.elts}

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        if any(k is None for k in node.keys):
            raise CheckError("check uses **-unpacking, which is not allowed")
        return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=False)}  # type: ignore[arg-type]

    # -- operators -----------------------------------------------------------------------
    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for expr in node.values:
            value = self.eval(expr)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise CheckError(f"check uses {type(node.op).__name__}, which is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise CheckError(f"check uses {type(node.op).__name__}, which is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 1000:
            raise CheckError("check raises to too large a power")
        if isinstance(node.op, ast.Mult):
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(n, int)
                    and len(seq) * n > MAX_SIZE
                ):
                    raise CheckError("check builds too large a value")
        return _bounded(op(left, right))

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=False):
            right = self.eval(comparator)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    # -- subscripts, calls, methods ------------------------------------------------------
    def _Subscript(self, node: ast.Subscript) -> Any:
        value = self.eval(node.value)
        return value[self.eval(node.slice)]

    def _Slice(self, node: ast.Slice) -> slice:
        part = [None if n is None else self.eval(n) for n in (node.lower, node.upper, node.step)]
        return slice(*part)

    def _Call(self, node: ast.Call) -> Any:
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise CheckError("check uses *-unpacking, which is not allowed")
            args.append(self.eval(a))
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None or kw.arg == "key":
                raise CheckError("check uses a keyword argument that is not allowed")
            kwargs[kw.arg] = self.eval(kw.value)
        if isinstance(node.func, ast.Attribute):
            target = self.eval(node.func.value)
            allowed = next((names for t, names in _METHODS.items() if isinstance(target, t)), set())
            if node.func.attr not in allowed:
                raise CheckError(
                    f"check calls .{node.func.attr}() on a {type(target).__name__}, which is not allowed"
                )
            return _bounded(getattr(target, node.func.attr)(*args, **kwargs))
        if isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in _FUNCTIONS or any(name in scope for scope in self.scopes):
                raise CheckError(
                    f"check calls {name!r}, which is not an allowed function (allowed: {', '.join(_FUNCTIONS)})"
                )
            return _bounded(_FUNCTIONS[name](*args, **kwargs))
        raise CheckError(f"check calls a {type(node.func).__name__}, which is not allowed")

    # -- comprehensions (simple names as targets) ----------------------------------------
    def _comprehension(self, node: Any, make: Callable[[], Any]) -> Any:
        out: list[Any] = []

        def loop(i: int) -> None:
            if i == len(node.generators):
                out.append(make())
                if len(out) > MAX_SIZE:
                    raise CheckError("check builds too large a value")
                return
            gen = node.generators[i]
            if gen.is_async:
                raise CheckError("check uses async comprehension, which is not allowed")
            for item in self.eval(gen.iter):
                self.scopes.append(_bind(gen.target, item))
                try:
                    if all(self.eval(cond) for cond in gen.ifs):
                        loop(i + 1)
                finally:
                    self.scopes.pop()

        loop(0)
        return out

    def _GeneratorExp(self, node: ast.GeneratorExp) -> list[Any]:
        return self._comprehension(node, lambda: self.eval(node.elt))

    def _ListComp(self, node: ast.ListComp) -> list[Any]:
        return self._comprehension(node, lambda: self.eval(node.elt))

    def _SetComp(self, node: ast.SetComp) -> set[Any]:
        return set(self._comprehension(node, lambda: self.eval(node.elt)))

    def _DictComp(self, node: ast.DictComp) -> dict[Any, Any]:
        return dict(self._comprehension(node, lambda: (self.eval(node.key), self.eval(node.value))))


def _bind(target: ast.AST, item: Any) -> dict[str, Any]:
    if isinstance(target, ast.Name):
        return {target.id: item}
    if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
        values = list(item)
        if len(values) != len(target.elts):
            raise CheckError("check unpacks the wrong number of values")
        return {e.id: v for e, v in zip(target.elts, values, strict=False)}  # type: ignore[attr-defined]
    raise CheckError("check loops with a target that is not a name or a tuple of names")


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, set, dict)) and len(value) > MAX_SIZE:
        raise CheckError("check builds too large a value")
    return value


# -- expect: equality with sensible number tolerance ------------------------------------
def equal(expected: Any, got: Any) -> bool:
    """Deep equality where ints and floats compare with a small tolerance (1 == 1.0,
    0.1 + 0.2 == 0.3) but booleans stay booleans (True != 1)."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(expected, bool) and isinstance(got, bool) and expected == got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        if isinstance(expected, int) and isinstance(got, int):
            return expected == got
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(equal(expected[k], got[k]) for k in expected)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(expected) == len(got) and all(
            equal(a, b) for a, b in zip(expected, got, strict=False)
        )
    return bool(expected == got)
