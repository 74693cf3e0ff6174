"""Checks of the values that define a flow, shared by the classes and the loader.

Each raises :class:`~flowforge.errors.DefinitionTypeError` for a value of the
wrong type and :class:`~flowforge.errors.DefinitionError` for one out of
range, saying what was expected, what was given and how to fix it.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

from .errors import DefinitionError, DefinitionTypeError

#: Routine ids, slot names and event names: they are written ``id.name`` in
#: flow files and connection keys, so they hold no '.', space or arrow.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
NAME_RULE = "letters, digits, '_' and '-', starting with a letter or '_'"
FLOW_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def plain_name(value: Any) -> TypeGuard[str]:
    """True for an ASCII identifier: the usual name, valid without the pattern."""
    return value.__class__ is str and value.isascii() and value.isidentifier()


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a valid routine id, slot or event name."""
    if plain_name(value):
        return value
    if not isinstance(value, str):
        raise DefinitionTypeError(
            f"{what} must be a non-empty string of {NAME_RULE}, got {type(value).__name__} "
            f"{value!r}."
        )
    if not NAME.fullmatch(value):
        raise DefinitionError(
            f"{what} {value!r} is not valid: it must be a non-empty string of {NAME_RULE} "
            "(no '.', spaces, '->' or line breaks: flow files and connection keys use them "
            "as separators)."
        )
    return value


def check_flow_id(value: Any) -> str:
    """``value`` if it is a valid flow id."""
    rule = "letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"
    if not isinstance(value, str):
        raise DefinitionTypeError(
            f"Flow id must be a string of {rule} (or None for a random one), got "
            f"{type(value).__name__} {value!r}."
        )
    if not FLOW_ID.fullmatch(value):
        raise DefinitionError(
            f"Flow id {value!r} is not valid: use {rule}, or pass None for a random id."
        )
    return value


def check_param_name(value: Any, what: str) -> str:
    """``value`` if it is a valid parameter name (a Python identifier)."""
    if not isinstance(value, str):
        raise DefinitionTypeError(
            f"{what}: parameter names must be strings, got {type(value).__name__} {value!r}. "
            "Write params=['name', ...]."
        )
    if not value.isidentifier():
        raise DefinitionError(
            f"{what}: parameter name {value!r} is not a Python identifier, so no handler "
            "parameter could receive it. Use letters, digits and '_'."
        )
    return value


def check_int(value: Any, what: str, *, minimum: int, optional: bool = False) -> Any:
    """``value`` if it is an int >= ``minimum`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return value
    expected = f"an int >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionTypeError(
            f"{what} must be {expected}, got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise DefinitionError(f"{what} must be {expected}, got {value!r}.")
    return value


def check_number(value: Any, what: str, *, positive: bool = False) -> float:
    """``value`` if it is a finite real number, >= 0 (> 0 when ``positive``)."""
    expected = "a finite number " + ("> 0" if positive else ">= 0")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DefinitionTypeError(
            f"{what} must be {expected}, got {type(value).__name__} {value!r}."
        )
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise DefinitionError(f"{what} must be {expected}, got {value!r}.")
    return float(value)
