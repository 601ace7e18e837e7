"""A label's value against its verdict field: what each type takes, as a researcher types it
in the terminal (`parse`) and as a labels file gives it in JSON (`check`). Both refuse what the
evaluators' `submit_verdicts` would refuse, with a message that says what the field takes."""

from __future__ import annotations

import math
from typing import Any

from orchestrator.protocol.schema import VerdictField


class BadValue(ValueError):
    """A value the field does not take; the message says what it takes."""


def choices(spec: VerdictField) -> list[str]:
    """An enum's values or an ordinal's levels (lowest first); empty for other types."""
    return spec.levels if spec.type == "ordinal" else spec.values


def takes(spec: VerdictField) -> str:
    """What the field takes, in words."""
    if spec.type == "bool":
        return "true or false"
    if spec.type in ("enum", "ordinal"):
        return "one of " + ", ".join(choices(spec))
    if spec.type == "int":
        low = "" if spec.min is None else f" ≥ {spec.min}"
        high = "" if spec.max is None else f" ≤ {spec.max}"
        return f"a whole number{low}{' and' if low and high else ''}{high}"
    if spec.type == "float":
        return "a number"
    return "text" + (f" of at most {spec.max_length} characters" if spec.max_length else "")


def check(name: str, spec: VerdictField, value: Any) -> Any:
    """`value` as the field types it (a JSON value from a labels file); raises BadValue."""
    if not _fits(spec, value):
        shown = repr(value)
        if len(shown) > 40:
            shown = f"{len(value)} characters" if isinstance(value, str) else shown[:37] + "..."
        raise BadValue(f"`{name}` takes {takes(spec)}, not {shown}")
    return value


def _fits(spec: VerdictField, value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if spec.type == "bool":
        return isinstance(value, bool)
    if spec.type in ("enum", "ordinal"):
        return value in choices(spec)
    if spec.type == "int":
        low = spec.min is None or (number and value >= spec.min)
        high = spec.max is None or (number and value <= spec.max)
        return number and isinstance(value, int) and low and high
    if spec.type == "float":
        return number and math.isfinite(value)
    # empty text is a value, as it is for the evaluators ("nothing to quote")
    return isinstance(value, str) and (spec.max_length is None or len(value) <= spec.max_length)


YES = {"y", "yes", "true", "t"}
NO = {"n", "no", "false", "f"}


def parse(name: str, spec: VerdictField, text: str) -> Any:
    """What the researcher typed, as the field types it; raises BadValue. Enum and ordinal
    values are typed by their number (`keys`), or by name."""
    text = text.strip()
    if spec.type == "bool":
        if text.lower() in YES | NO:
            return text.lower() in YES
        raise BadValue(f"`{name}`: type y or n")
    if spec.type in ("enum", "ordinal"):
        options = choices(spec)
        if text.isdigit() and 1 <= int(text) <= len(options):
            return options[int(text) - 1]
        return check(name, spec, text)
    if spec.type in ("int", "float"):
        number = _number(int if spec.type == "int" else float, text)
        if number is None:
            raise BadValue(f"`{name}` takes {takes(spec)}")
        return check(name, spec, number)
    return check(name, spec, text)


def _number(kind: type[int] | type[float], text: str) -> int | float | None:
    try:
        return kind(text)
    except ValueError:
        return None


def keys(spec: VerdictField) -> str:
    """The answers the terminal prompt offers for the field, e.g. `y/n` or `1 a · 2 b`."""
    if spec.type == "bool":
        return "y/n"
    if spec.type in ("enum", "ordinal"):
        return " · ".join(f"{k} {v}" for k, v in enumerate(choices(spec), 1))
    return takes(spec)
