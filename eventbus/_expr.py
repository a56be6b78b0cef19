"""Inngest expressions (a CEL subset) compiled to Python closures.

``compile_expression(source)`` parses once and returns a :class:`CompiledExpression`
whose ``matches(env)`` evaluates a tree of closures, never re-reading the source.

Semantics follow Inngest's CEL environment rather than strict CEL:

* A missing attribute is *unknown* and behaves like ``null``: ``unknown == null`` is
  true, ``unknown == x`` false, ``unknown < x`` and ``<=`` true, ``>``/``>=`` false,
  ``size(unknown)`` is 0, ``unknown + x`` is ``x``; any other call on it is false.
* ``null`` in ``<``/``>`` comparisons is replaced by the zero value of the other side.
* Mixed-type ``+`` with a string concatenates as strings (``"a" + 1 == "a1"``).
* ``&&``, ``||``, ``!`` and the ternary condition use JavaScript-like truthiness.
* An evaluation error or a non-bool final value makes the expression false.

Supported: literals (ints, floats, strings, ``true``/``false``/``null``, lists, maps),
the variables ``event``, ``async`` and ``vars``, ``.field`` and ``[index]`` access,
``! - * / % + - < <= > >= == != in && || ?:``, ``has(x.f)``, ``size(x)``/``x.size()``,
``x.contains(s)``, ``startsWith``, ``endsWith``, ``matches``, ``lowercase``,
``uppercase``, ``int``, ``uint``, ``double``, ``string``, ``bool`` and the macros
``all``, ``exists``, ``exists_one``, ``map``, ``filter``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

from ._errors import ExpressionError

__all__ = ["UNKNOWN", "CompiledExpression", "compile_expression"]


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = _Unknown()
VARIABLES: Final = frozenset({"event", "async", "vars"})

Env = Mapping[str, Any]
Node = Callable[[Env], Any]


class _EvalError(Exception):
    """Evaluation failed; the whole expression is then false (as on Inngest)."""


# --------------------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<hex>0[xX][0-9a-fA-F]+u?)
  | (?P<int>\d+u?)
  | (?P<str>[rR]?(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "`": "`",
    "?": "?",
}
_KEYWORDS = {"true": True, "false": False, "null": None}


def _unescape(body: str, source: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xu":
            width = 2 if nxt == "x" else 4
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ExpressionError("bad escape sequence", expression=source, position=pos)
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise ExpressionError(
                f"unknown escape \\{nxt} in string", expression=source, position=pos
            )
    return "".join(out)


def _tokenize(source: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise ExpressionError(
                f"unexpected character {source[pos]!r}", expression=source, position=pos
            )
        kind = match.lastgroup
        text = match.group()
        if kind == "float":
            tokens.append(("lit", float(text), pos))
        elif kind in ("int", "hex"):
            tokens.append(("lit", int(text.rstrip("u"), 0), pos))
        elif kind == "str":
            raw = text[0] in "rR"
            body = text[2:-1] if raw else text[1:-1]
            tokens.append(("lit", body if raw else _unescape(body, source, pos), pos))
        elif kind == "ident":
            if text in _KEYWORDS:
                tokens.append(("lit", _KEYWORDS[text], pos))
            elif text == "in":
                tokens.append(("op", "in", pos))
            else:
                tokens.append(("ident", text, pos))
        elif kind == "op":
            tokens.append(("op", text, pos))
        pos = match.end()
    tokens.append(("end", None, len(source)))
    return tokens


# --------------------------------------------------------------------------- value helpers


def _truthy(value: Any) -> bool:
    if value is UNKNOWN or value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    if left is UNKNOWN or right is UNKNOWN:
        other = right if left is UNKNOWN else left
        return other is None or other is UNKNOWN
    if left is None or right is None:
        return left is right
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_num(left) and _is_num(right):
        return bool(left == right)
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime):
        return left == right
    return False


def _zero_like(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, bool):
        return False
    if _is_num(value):
        return 0
    return None


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is UNKNOWN or right is UNKNOWN:
        # Inngest: unknown < x and unknown <= x are true, > and >= false.
        if left is UNKNOWN:
            return op in ("<", "<=")
        return op in (">", ">=")
    if left is None:
        left = _zero_like(right)
    if right is None:
        right = _zero_like(left)
    comparable = (
        (_is_num(left) and _is_num(right))
        or (isinstance(left, str) and isinstance(right, str))
        or (isinstance(left, bool) and isinstance(right, bool))
        or (isinstance(left, datetime.datetime) and isinstance(right, datetime.datetime))
    )
    if not comparable:
        raise _EvalError(f"cannot compare {left!r} {op} {right!r}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _to_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e16 else repr(value)
    return str(value)


def _add(left: Any, right: Any) -> Any:
    if left is UNKNOWN or left is None:
        return right
    if right is UNKNOWN or right is None:
        return left
    if _is_num(left) and _is_num(right):
        return left + right
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, str) or isinstance(right, str):
        return _to_text(left) + _to_text(right)
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    raise _EvalError(f"cannot add {left!r} and {right!r}")


def _arith(op: str, left: Any, right: Any) -> Any:
    if not (_is_num(left) and _is_num(right)):
        raise _EvalError(f"cannot compute {left!r} {op} {right!r}")
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        raise _EvalError("division by zero")
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)
        if (left < 0) != (right < 0):
            quotient = -quotient
        return quotient if op == "/" else left - right * quotient
    return left / right if op == "/" else left % right


def _select(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        return value.get(key, UNKNOWN)
    if isinstance(value, list) and _is_num(key):
        index = int(key)
        if index == key and 0 <= index < len(value):
            return value[index]
        return UNKNOWN
    if isinstance(value, Mapping):
        return value.get(key, UNKNOWN)
    return UNKNOWN


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return any(_equal(elem, item) for elem in container)
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    return False


def _size(value: Any) -> int:
    if value is UNKNOWN or value is None:
        return 0
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise _EvalError(f"size() of {value!r}")


def _string_method(name: str) -> Callable[[Any, Any], Any]:
    def method(target: Any, arg: Any) -> Any:
        if not isinstance(target, str) or not isinstance(arg, str):
            if name == "contains" and isinstance(target, list):
                return _contains(target, arg)
            return False
        if name == "contains":
            return arg in target
        if name == "startsWith":
            return target.startswith(arg)
        if name == "endsWith":
            return target.endswith(arg)
        try:
            return re.search(arg, target) is not None
        except re.error as exc:
            raise _EvalError(str(exc)) from None

    return method


def _convert(name: str, value: Any) -> Any:
    if value is UNKNOWN:
        raise _EvalError(f"{name}() of a missing value")
    try:
        if name in ("int", "uint"):
            if isinstance(value, str):
                result = int(value, 10)
            elif _is_num(value):
                result = int(value)
            else:
                raise _EvalError(f"{name}({value!r})")
            if name == "uint" and result < 0:
                raise _EvalError(f"uint({value!r}) is negative")
            return result
        if name == "double":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise _EvalError(f"double({value!r})")
            return float(value)
        if name == "string":
            return _to_text(value)
        if name == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "True", "TRUE", "t", "1"):
                return True
            if value in ("false", "False", "FALSE", "f", "0"):
                return False
            raise _EvalError(f"bool({value!r})")
        if name == "lowercase":
            return value.lower() if isinstance(value, str) else False
        if name == "uppercase":
            return value.upper() if isinstance(value, str) else False
    except ValueError as exc:
        raise _EvalError(str(exc)) from None
    raise AssertionError(name)  # pragma: no cover


_CONVERSIONS = frozenset({"int", "uint", "double", "string", "bool", "lowercase", "uppercase"})

# ------------------------------------------------------------- Inngest's extra functions

#: The env key under which the engine passes its clock, for now() and friends.
CLOCK_KEY = "\x00clock"
_UTC = datetime.timezone.utc


def _now(env: Env) -> datetime.datetime:
    clock = env.get(CLOCK_KEY)
    if clock is None:
        raise _EvalError("now() needs the engine's clock")
    return datetime.datetime.fromtimestamp(clock.now_ms() / 1000, _UTC)


def _date(value: Any, numbers: bool = False) -> datetime.datetime:
    """date(x), as Inngest's: a date string in a common format, or (``numbers``: an int
    literal in the expression) epoch seconds, milliseconds or nanoseconds told apart by
    size, nothing before 2000. A number from event data is not read: Inngest's JSON
    numbers are doubles, which its date() does not take."""
    if isinstance(value, str):
        text = value.strip()
        try:  # RFC 3339, "2006-01-02T15:04:05" and "2006-01-02"
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)  # RFC 1123, 822, 850
            except (TypeError, ValueError):
                raise _EvalError(f"date({value!r}): not a date format Inngest reads") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    if numbers and _is_num(value):
        number = int(value)
        if number < 946_684_800:
            raise _EvalError(f"date({value!r}): before 2000, not read as a time")
        if number < 9_999_999_999:
            seconds: float = number
        elif number < 9_999_999_999_999:
            seconds = number / 1000
        else:
            seconds = number / 1_000_000_000
        return datetime.datetime.fromtimestamp(seconds, _UTC)
    raise _EvalError(f"date({value!r})")


def _shifted(env: Env, text: Any, sign: int) -> datetime.datetime:
    from ._duration import parse_duration_ms

    if not isinstance(text, str):
        raise _EvalError(f"a duration string like '1h' is needed, got {text!r}")
    try:
        ms = parse_duration_ms(text)
    except ValueError as exc:
        raise _EvalError(str(exc)) from None
    return _now(env) + sign * datetime.timedelta(milliseconds=ms)


def _b64decode(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _json_parse(value: Any) -> Any:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


#: The functions a cancel rule's ``if`` may not call (Inngest's restrictive policy
#: allows only int(), uint() and double(), and no macros).
POLICY_ALLOWED_FUNCTIONS = frozenset({"int", "uint", "double"})
_METHODS = frozenset({"contains", "startsWith", "endsWith", "matches"})
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

# --------------------------------------------------------------------------- parser


class _Const:
    """Marks a compiled node whose value is known at compile time (for folding)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.bound: list[str] = []  # variables bound by enclosing macros
        self.called: set[str] = set()  # functions, methods and macros used (for policies)

    # -- token helpers
    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.index]

    def advance(self) -> tuple[str, Any, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, op: str) -> bool:
        kind, value, _ = self.tokens[self.index]
        if kind == "op" and value == op:
            self.index += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            kind, value, pos = self.peek()
            found = "end of expression" if kind == "end" else repr(value)
            self.fail(f"expected {op!r} but found {found}", pos)

    def fail(self, message: str, pos: int) -> NoReturn:
        raise ExpressionError(message, expression=self.source, position=pos)

    # -- grammar (CEL precedence, lowest first)
    def parse(self) -> Node | _Const:
        node = self.ternary()
        kind, value, pos = self.peek()
        if kind != "end":
            self.fail(f"unexpected {value!r}", pos)
        return node

    def ternary(self) -> Node | _Const:
        cond = self.logical_or()
        if not self.accept("?"):
            return cond
        then = self.ternary()
        self.expect(":")
        other = self.ternary()
        if isinstance(cond, _Const):
            return then if _truthy(cond.value) else other
        c, t, o = cond, _node(then), _node(other)
        return lambda env: t(env) if _truthy(c(env)) else o(env)

    def logical_or(self) -> Node | _Const:
        node = self.logical_and()
        while self.accept("||"):
            node = _or(node, self.logical_and())
        return node

    def logical_and(self) -> Node | _Const:
        node = self.relation()
        while self.accept("&&"):
            node = _and(node, self.relation())
        return node

    def relation(self) -> Node | _Const:
        node = self.addition()
        while True:
            kind, op, _ = self.peek()
            if kind == "op" and op in ("==", "!=", "<", "<=", ">", ">=", "in"):
                self.advance()
                node = _binary(op, node, self.addition())
            else:
                return node

    def addition(self) -> Node | _Const:
        node = self.multiplication()
        while True:
            kind, op, _ = self.peek()
            if kind == "op" and op in ("+", "-"):
                self.advance()
                node = _binary(op, node, self.multiplication())
            else:
                return node

    def multiplication(self) -> Node | _Const:
        node = self.unary()
        while True:
            kind, op, _ = self.peek()
            if kind == "op" and op in ("*", "/", "%"):
                self.advance()
                node = _binary(op, node, self.unary())
            else:
                return node

    def unary(self) -> Node | _Const:
        if self.accept("!"):
            operand = self.unary()
            if isinstance(operand, _Const):
                return _Const(not _truthy(operand.value))
            o = operand
            return lambda env: not _truthy(o(env))
        if self.accept("-"):
            operand = self.unary()
            if isinstance(operand, _Const) and _is_num(operand.value):
                return _Const(-operand.value)
            o = _node(operand)

            def negate(env: Env) -> Any:
                value = o(env)
                if not _is_num(value):
                    raise _EvalError(f"cannot negate {value!r}")
                return -value

            return negate
        return self.member()

    def member(self) -> Node | _Const:
        node = self.primary()
        while True:
            kind, op, pos = self.peek()
            if kind != "op":
                return node
            if op == ".":
                self.advance()
                kind, name, pos = self.advance()
                if kind != "ident":
                    self.fail("expected a field name after '.'", pos)
                node = self.method_call(node, name, pos) if self.accept("(") else _field(node, name)
            elif op == "[":
                self.advance()
                key = self.ternary()
                self.expect("]")
                node = _index(node, key)
            else:
                return node

    def arguments(self) -> list[Node | _Const]:
        args: list[Node | _Const] = []
        if self.accept(")"):
            return args
        while True:
            args.append(self.ternary())
            if self.accept(")"):
                return args
            self.expect(",")

    def method_call(self, target: Node | _Const, name: str, pos: int) -> Node | _Const:
        self.called.add(name)
        if name in _MACROS:
            return self.macro(target, name, pos)
        args = self.arguments()
        t = _node(target)
        if name == "size" and not args:
            return lambda env: _size(t(env))
        if name in _METHODS and len(args) == 1:
            method = _string_method(name)
            a = _node(args[0])
            return lambda env: method(t(env), a(env))
        self.fail(f"unknown method {name}() with {len(args)} argument(s)", pos)

    def macro(self, target: Node | _Const, name: str, pos: int) -> Node:
        kind, var, var_pos = self.advance()
        if kind != "ident":
            self.fail(f"{name}() needs a variable name as its first argument", var_pos)
        self.expect(",")
        self.bound.append(var)
        body = _node(self.ternary())
        self.bound.pop()
        self.expect(")")
        t = _node(target)

        def items(env: Env) -> list[Any]:
            value = t(env)
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                return list(value)
            raise _EvalError(f"{name}() over {value!r}")

        def each(env: Env) -> Any:
            for item in items(env):
                yield body({**env, var: item})

        if name == "all":
            return lambda env: all(_truthy(v) for v in each(env))
        if name == "exists":
            return lambda env: any(_truthy(v) for v in each(env))
        if name == "exists_one":
            return lambda env: sum(1 for v in each(env) if _truthy(v)) == 1
        if name == "map":
            return lambda env: list(each(env))

        def filtered(env: Env) -> list[Any]:
            return [item for item in items(env) if _truthy(body({**env, var: item}))]

        return filtered

    def primary(self) -> Node | _Const:
        kind, value, pos = self.advance()
        if kind == "lit":
            return _Const(value)
        if kind == "ident":
            if self.accept("("):
                return self.function_call(value, pos)
            if value in self.bound:
                name = value
                return lambda env: env[name]
            if value not in VARIABLES:
                self.fail(
                    f"unknown name {value!r}; expressions can use event, async and vars "
                    "(strings must be quoted)",
                    pos,
                )
            name = value
            return lambda env: env.get(name, UNKNOWN)
        if kind == "op" and value == "(":
            node = self.ternary()
            self.expect(")")
            return node
        if kind == "op" and value == "[":
            elements = self.arguments_until("]")
            if all(isinstance(e, _Const) for e in elements):
                return _Const([e.value for e in elements])  # type: ignore[union-attr]
            nodes = [_node(e) for e in elements]
            return lambda env: [n(env) for n in nodes]
        if kind == "op" and value == "{":
            return self.map_literal()
        found = "end of expression" if kind == "end" else repr(value)
        self.fail(f"expected a value but found {found}", pos)

    def arguments_until(self, close: str) -> list[Node | _Const]:
        items: list[Node | _Const] = []
        if self.accept(close):
            return items
        while True:
            items.append(self.ternary())
            if self.accept(close):
                return items
            self.expect(",")

    def map_literal(self) -> Node:
        pairs: list[tuple[Node, Node]] = []
        if not self.accept("}"):
            while True:
                key = _node(self.ternary())
                self.expect(":")
                pairs.append((key, _node(self.ternary())))
                if self.accept("}"):
                    break
                self.expect(",")
        return lambda env: {k(env): v(env) for k, v in pairs}

    def function_call(self, name: str, pos: int) -> Node | _Const:
        if name == "has":
            self.called.add("has")
            arg_pos = self.peek()[2]
            arg = self.ternary()
            self.expect(")")
            if not getattr(arg, "is_field", False):
                self.fail("has() takes a field selection, like has(event.data.id)", arg_pos)
            a = _node(arg)
            return lambda env: a(env) is not UNKNOWN
        self.called.add(name)
        if name == "now":
            self.expect(")")
            return _now
        args = self.arguments()
        if name in ("now_plus", "now_minus") and len(args) == 1:
            a = _node(args[0])
            sign = 1 if name == "now_plus" else -1
            return lambda env: _shifted(env, a(env), sign)
        if name == "date" and len(args) == 1:
            literal = isinstance(args[0], _Const) and type(args[0].value) is int
            a = _node(args[0])
            return lambda env: _date(a(env), literal)
        if name in ("b64decode", "json_parse") and len(args) == 1:
            a = _node(args[0])
            func = _b64decode if name == "b64decode" else _json_parse
            return lambda env: func(a(env))
        if name == "size" and len(args) == 1:
            a = _node(args[0])
            return lambda env: _size(a(env))
        if name in _CONVERSIONS and len(args) == 1:
            a = _node(args[0])
            return lambda env: _convert(name, a(env))
        self.fail(f"unknown function {name}() with {len(args)} argument(s)", pos)


def _node(value: Node | _Const) -> Node:
    if isinstance(value, _Const):
        constant = value.value
        return lambda env: constant
    return value


def _field(target: Node | _Const, name: str) -> Node:
    t = _node(target)

    def select(env: Env) -> Any:
        return _select(t(env), name)

    select.is_field = True  # type: ignore[attr-defined]
    return select


def _index(target: Node | _Const, key: Node | _Const) -> Node:
    t = _node(target)
    if isinstance(key, _Const):
        constant = key.value
        return lambda env: _select(t(env), constant)
    k = key
    return lambda env: _select(t(env), k(env))


def _or(left: Node | _Const, right: Node | _Const) -> Node | _Const:
    if isinstance(left, _Const) and isinstance(right, _Const):
        return _Const(_truthy(left.value) or _truthy(right.value))
    lf, rf = _node(left), _node(right)

    def either(env: Env) -> bool:
        try:
            if _truthy(lf(env)):
                return True
        except _EvalError:
            if _truthy(rf(env)):
                return True
            raise
        return _truthy(rf(env))

    return either


def _and(left: Node | _Const, right: Node | _Const) -> Node | _Const:
    if isinstance(left, _Const) and isinstance(right, _Const):
        return _Const(_truthy(left.value) and _truthy(right.value))
    lf, rf = _node(left), _node(right)

    def both(env: Env) -> bool:
        try:
            if not _truthy(lf(env)):
                return False
        except _EvalError:
            if not _truthy(rf(env)):
                return False
            raise
        return _truthy(rf(env))

    return both


def _binary(op: str, left: Node | _Const, right: Node | _Const) -> Node | _Const:
    func: Callable[[Any, Any], Any]
    if op == "==":
        func = _equal
    elif op == "!=":

        def func(a: Any, b: Any) -> bool:
            return not _equal(a, b)

    elif op in ("<", "<=", ">", ">="):

        def func(a: Any, b: Any) -> bool:
            return _compare(op, a, b)

    elif op == "in":

        def func(a: Any, b: Any) -> bool:
            return a is not UNKNOWN and _contains(b, a)

    elif op == "+":
        func = _add
    else:

        def func(a: Any, b: Any) -> Any:
            return _arith(op, a, b)

    if isinstance(left, _Const) and isinstance(right, _Const):
        try:
            return _Const(func(left.value, right.value))
        except _EvalError:
            pass  # keep it as a node: it fails at evaluation, making the expression false
    if isinstance(right, _Const):
        constant = right.value
        lf = _node(left)
        if op == "==" and isinstance(constant, str):
            # The common shape (event.data.x == "literal"): one string comparison.
            def equals_text(env: Env) -> bool:
                value = lf(env)
                return type(value) is str and value == constant

            return equals_text
        return lambda env: func(lf(env), constant)
    lf, rf = _node(left), _node(right)
    return lambda env: func(lf(env), rf(env))


class CompiledExpression:
    """A compiled expression; ``matches(env)`` is true only for a boolean ``true`` result."""

    __slots__ = ("_node", "calls", "source")

    def __init__(self, source: str, node: Node, calls: frozenset[str] = frozenset()) -> None:
        self.source = source
        self._node = node
        #: The functions, methods and macros it calls (``has``, ``size``, ``now``, ...).
        self.calls = calls

    def evaluate(self, env: Env) -> Any:
        """The expression's value, or ``UNKNOWN`` if evaluation failed."""
        try:
            return self._node(env)
        except _EvalError:
            return UNKNOWN
        except (TypeError, ValueError, RecursionError, OverflowError):
            return UNKNOWN

    def matches(self, env: Env) -> bool:
        """True when the expression evaluates to the boolean ``true``."""
        return self.evaluate(env) is True

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


def compile_expression(source: str) -> CompiledExpression:
    """Compile ``source`` once; raises :class:`ExpressionError` for a syntax error."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(
            f"an expression must be a non-empty string, got {source!r}",
            expression=str(source),
            position=0,
        )
    parser = _Parser(source)
    parsed = parser.parse()
    return CompiledExpression(source, _node(parsed), frozenset(parser.called))
