"""A safe arithmetic calculator: Python's `ast` is walked over a whitelist, never evaluated."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from services.tools.base import Tool, ToolError

Number = int | float
MAX_INT_BITS = 4096  # ~1,200 digits: far past any business figure, yet cheap to multiply

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "floor": math.floor,
    "ceil": math.ceil, "exp": math.exp, "log": math.log, "log10": math.log10,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


class CalculatorArgs(BaseModel):
    """Arguments of calculator."""

    expression: str = Field(min_length=1, max_length=500,
                            description="Arithmetic such as (1200 - 950) / 950 * 100 or round(sqrt(2), 3).")


def calculator_tool() -> Tool:
    """The calculator tool."""

    async def run(args: CalculatorArgs) -> str:
        return format_number(evaluate(args.expression))

    names = ", ".join([*FUNCTIONS, *CONSTANTS])
    return Tool(name="calculator", args_model=CalculatorArgs, run=run, timeout_s=5.0,
                description=("Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and "
                             f"parentheses, plus {names}. Use it instead of doing arithmetic in your head."))


def evaluate(expression: str) -> Number:
    """The value of `expression`, or a ToolError that says what is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"Not a valid arithmetic expression ({exc.msg}). "
                        "Write numbers without thousands separators, e.g. 1234.5.") from exc
    except (RecursionError, MemoryError) as exc:
        raise ToolError("The expression is nested too deeply.") from exc
    try:
        return _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ToolError("Division by zero.") from exc
    except OverflowError as exc:
        raise ToolError("The result is too large to represent.") from exc
    except RecursionError as exc:
        raise ToolError("The expression is nested too deeply.") from exc
    except (ValueError, TypeError) as exc:
        raise ToolError(f"Cannot compute that: {exc}.") from exc


def format_number(value: Number) -> str:
    """Integers in full; floats to 15 significant digits (a double's precision) so 0.1 + 0.2 reads 0.3."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        raise ToolError("The result is not a finite number.")
    text = f"{value:.15g}"
    return text if "e" in text or "." in text else text + ".0"


def _eval(node: ast.AST) -> Number:
    """Recursively evaluate one whitelisted node."""
    if isinstance(node, ast.Constant):
        # bool is an int subclass and complex is a number; neither belongs in a business calculation.
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return _check(node.value)
        raise ToolError(f"Only numbers are allowed, not {node.value!r}.")
    if isinstance(node, ast.BinOp):
        op = BINARY.get(type(node.op))
        if op is None:
            hint = " Use ** for powers." if isinstance(node.op, ast.BitXor) else ""
            raise ToolError(f"The operator {type(node.op).__name__} is not allowed.{hint}")
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _check(op(left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return _check(UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Tuple):
        raise ToolError("Write numbers without thousands separators (1234567, not 1,234,567); "
                        "send one expression at a time.")
    if isinstance(node, ast.Name):
        raise ToolError(f"Unknown name '{node.id}'. Allowed: {', '.join([*FUNCTIONS, *CONSTANTS])}.")
    raise ToolError(f"{type(node).__name__} is not allowed in a calculation; use numbers, operators "
                    f"and {', '.join(FUNCTIONS)}.")


def _call(node: ast.Call) -> Number:
    """A call to a whitelisted function by bare name, with positional numeric arguments only."""
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        shown = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise ToolError(f"The function '{shown}' is not allowed. Allowed: {', '.join(FUNCTIONS)}.")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ToolError(f"{node.func.id}() takes plain positional numbers only.")
    name = node.func.id
    args = [_eval(a) for a in node.args]
    if name in ("min", "max") and len(args) < 2:
        raise ToolError(f"{name}() needs at least two numbers, e.g. {name}(3, 7).")
    if name == "round" and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > 20):
        raise ToolError("round() takes a whole number of digits between -20 and 20.")
    return _check(FUNCTIONS[name](*args))


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse powers whose result would be huge before computing them: 9**9**9 must not hang."""
    if not (isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1):
        return  # float powers overflow to an error on their own, quickly
    # bit_length - 1 = floor(log2 |base|), so this underestimates: what passes stays below 2 * MAX_INT_BITS.
    if exponent * (abs(base).bit_length() - 1) > MAX_INT_BITS:
        raise ToolError(f"{base} ** {exponent} is too large to compute.")


def _check(value: Any) -> Number:
    """Keep integers bounded so repeated multiplication cannot grow without limit."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("The result is too large to compute (more than about 1,200 digits).")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ToolError("The result is not a real number.")
