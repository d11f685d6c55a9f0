"""Validation helpers shared by every configuration reader (slot instances, scenarios,
training arguments and hyperparameters).

Each ``check_*`` returns the value (normalised: an integral float as ``int``, a list as a
tuple) or raises ``error`` (an :class:`~edgellm.errors.EdgeLLMError` class) with one
message naming the key, the rule and the value: ``"<where>: must be <rule>, got <value>"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from edgellm.errors import EdgeLLMError


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_integer(v: Any) -> bool:
    """An int (not a bool) or an integral finite float."""
    return is_number(v) and (isinstance(v, int) or float(v).is_integer())


def fail(where: str, rule: str, value: Any, error: type[EdgeLLMError] = EdgeLLMError):
    """The one error format: ``<where>: must be <rule>, got <value!r>``."""
    return error(f"{where}: must be {rule}, got {value!r}")


def check_number(value: Any, where: str, *, lo: float | None = 0.0, lo_open: bool = False,
                 hi: float | None = None, integer: bool = False,
                 error: type[EdgeLLMError] = EdgeLLMError) -> float | int:
    """A finite number within [lo, hi] (or (lo, hi] when ``lo_open``); an integral float
    comes back as int when ``integer``."""
    rule = "an integer" if integer else "a finite number"
    bound = ""
    if lo is not None:
        bound = f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        bound += f"{' and' if bound else ''} <= {hi:g}"
    if not (is_integer(value) if integer else is_number(value)):
        raise fail(where, rule + bound, value, error)
    if integer:
        value = int(value)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise fail(where, rule + bound, value, error)
    if hi is not None and value > hi:
        raise fail(where, rule + bound, value, error)
    return value


def check_choice(value: Any, where: str, allowed: Sequence[str],
                 error: type[EdgeLLMError] = EdgeLLMError) -> str:
    """One of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise fail(where, f"one of {', '.join(allowed)}", value, error)
    return value


def check_bool(value: Any, where: str, error: type[EdgeLLMError] = EdgeLLMError) -> bool:
    if not isinstance(value, bool):
        raise fail(where, "true or false", value, error)
    return value


def check_interval(value: Any, where: str,
                   error: type[EdgeLLMError] = EdgeLLMError) -> tuple[float, float]:
    """A pair (lo, hi) of finite numbers with 0 < lo <= hi."""
    rule = "a pair (lo, hi) of finite numbers with 0 < lo <= hi"
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise fail(where, rule, value, error) from None
    if not (math.isfinite(a) and math.isfinite(b) and 0 < a <= b):
        raise fail(where, rule, value, error)
    return a, b


def check_numbers(value: Any, where: str,
                  error: type[EdgeLLMError] = EdgeLLMError) -> tuple[float, ...]:
    """A non-empty list of finite numbers >= 0 (a single number counts as a list of one)."""
    rule = "a non-empty list of finite numbers >= 0"
    items = (value,) if isinstance(value, (int, float)) else value
    try:
        out = tuple(float(x) for x in items)
    except (TypeError, ValueError):
        raise fail(where, rule, value, error) from None
    if not out or not all(math.isfinite(x) and x >= 0 for x in out):
        raise fail(where, rule, value, error)
    return out
