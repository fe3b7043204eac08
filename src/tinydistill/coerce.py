"""Turn YAML / command-line values into a field's type, with one clear error when they do not fit.

One home for number parsing: PyYAML (YAML 1.1) reads ``1e-4`` as the *string* ``'1e-4'``, so every
number read from a config or a recipe goes through here.
"""

from __future__ import annotations

from typing import Any

from tinydistill.errors import TinyDistillError


def to_number(value: Any, what: str) -> float:
    """A float from a YAML/CLI value (numbers and numeric strings; not bools)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TinyDistillError(f"{what} must be a number, got {value!r}")
    return float(value)


def split_list(value: Any, split: bool = True) -> list[str]:
    """``'a,b'`` or ``['a', 'b,c']`` -> ``['a', 'b', 'c']`` (items split on commas when ``split``)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        parts = str(item).split(",") if split else [str(item)]
        out += [p.strip() for p in parts if p.strip()]
    return out


def coerce(name: str, value: Any, annotation: str, split: bool = True) -> Any:
    """Convert ``value`` to the type named by ``annotation`` (a dataclass field's string annotation)."""
    if value is None:
        return None
    kinds = [k.strip() for k in annotation.split("|")]
    try:
        if "float" in kinds and not isinstance(value, bool):
            return to_number(value, f"config option {name}")
        if "int" in kinds and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if "bool" in kinds:
            return _bool(value)
        if "str" in kinds:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if annotation.startswith("list[str]"):
            return split_list(value, split)
        if annotation.startswith("list") and not isinstance(value, list):
            raise ValueError(value)
        if annotation.startswith("dict"):
            if not isinstance(value, dict):
                raise ValueError(value)
            if annotation == "dict[str, float]":
                return {str(k): to_number(v, f"config option {name}.{k}") for k, v in value.items()}
    except (TypeError, ValueError, TinyDistillError):
        raise TinyDistillError(f"config option {name}: {value!r} is not a valid {annotation}") from None
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "yes", "1", "on"}:
        return True
    if str(value).lower() in {"false", "no", "0", "off"}:
        return False
    raise ValueError(value)
