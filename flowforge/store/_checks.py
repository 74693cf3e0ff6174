"""Checks of the arguments given to a store's public methods.

Each raises :class:`StoreTypeError` (also a ``TypeError``) for a value of the
wrong type and :class:`StoreUsageError` (a ``ValueError``) for a value out of
range, saying what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from ._errors import StoreTypeError, StoreUsageError


def seconds(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as finite seconds, ``> 0`` if ``positive`` else ``>= 0``."""
    bound = "> 0" if positive else ">= 0"
    expected = f"a finite number of seconds {bound}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StoreTypeError(
            f"{name} must be {expected}, got {value!r} ({type(value).__name__}). "
            f"Pass a number such as {name}=1.5.",
            argument=name,
            expected=expected,
            got=value,
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise StoreUsageError(
            f"{name} must be {expected}, got {value!r}. Pass a finite number such as {name}=1.5.",
            argument=name,
            expected=expected,
            got=value,
        )
    return number


def count(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an ``int`` (not a bool) at least ``minimum``."""
    expected = f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        # A bool is an int to Python, but never a count anyone meant.
        kind = StoreUsageError if isinstance(value, bool) else StoreTypeError
        raise kind(
            f"{name} must be {expected}, got {value!r}.",
            argument=name,
            expected=expected,
            got=value,
        )
    if value < minimum:
        raise StoreUsageError(
            f"{name} must be {expected}, got {value!r}.",
            argument=name,
            expected=expected,
            got=value,
        )
    return value


def choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value``, which must be one of ``choices``."""
    expected = " or ".join(repr(c) for c in choices)
    if not isinstance(value, str) or value not in choices:
        error = StoreUsageError if isinstance(value, str) else StoreTypeError
        raise error(
            f"{name} must be {expected}, got {value!r}.",
            argument=name,
            expected=expected,
            got=value,
        )
    return value


def flag(name: str, value: object) -> bool:
    """``value``, which must be a bool."""
    if not isinstance(value, bool):
        raise StoreTypeError(
            f"{name} must be True or False, got {value!r}.",
            argument=name,
            expected="a bool",
            got=value,
        )
    return value


def identifier(name: str, value: object) -> str:
    """``value``, a non-empty string id."""
    if not isinstance(value, str) or not value:
        error = StoreUsageError if isinstance(value, str) else StoreTypeError
        raise error(
            f"{name} must be a non-empty string, got {value!r}. Pass the id as a string.",
            argument=name,
            expected="a non-empty string",
            got=value,
        )
    return value


def optional_identifier(name: str, value: object) -> str | None:
    """``value``, ``None`` or a non-empty string id."""
    return None if value is None else identifier(name, value)


def names(name: str, value: object) -> tuple[str, ...]:
    """``value``, a list or tuple of strings (a lone string is refused: it is no list)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise StoreTypeError(
            f"{name} must be a list of strings, got {value!r}. Wrap a single one in a list: "
            f"{name}=[{value!r}].",
            argument=name,
            expected="a list of strings",
            got=value,
        )
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise StoreTypeError(
            f"{name} must be a list of strings, got {items!r}.",
            argument=name,
            expected="a list of strings",
            got=value,
        )
    return items


def instance(name: str, value: object, kind: type, method: str) -> None:
    """Refuse ``value`` unless it is a ``kind``."""
    if not isinstance(value, kind):
        raise StoreTypeError(
            f"{method}() takes a {kind.__name__}, got {type(value).__name__} ({value!r}).",
            argument=name,
            expected=f"a {kind.__name__}",
            got=value,
        )
