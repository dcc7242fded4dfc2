"""Small validators shared by the aggregates' command methods.

They run when a command is decided, never when an event is applied, so tightening a rule
never breaks the replay of history written under the old one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ordertrail.domain.errors import DomainError, InvalidValue

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]{0,2000}$")
#: Control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def text(
    value: object,
    field: str,
    *,
    max_length: int = 200,
    error: type[DomainError] = InvalidValue,
    allow_empty: bool = False,
) -> str:
    """``value`` as a stripped string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise error(f"{field} must be text", field=field)
    stripped = value.strip()
    if not stripped and not allow_empty:
        raise error(f"{field} must not be empty", field=field)
    if len(stripped) > max_length:
        raise error(f"{field} must be at most {max_length} characters", field=field)
    if _CONTROL.search(stripped):
        raise error(f"{field} must not contain control characters", field=field)
    return stripped


def sku(value: object, *, error: type[DomainError] = InvalidValue) -> str:
    if not isinstance(value, str) or not _SKU.fullmatch(value):
        raise error(
            "a SKU is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="sku",
            sku=value if isinstance(value, str) else None,
        )
    return value


def code(value: object, field: str, *, error: type[DomainError] = InvalidValue) -> str:
    """A short identifier chosen by a person (a warehouse code, a delivery group id)."""
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise error(f"{field} must be 1-64 letters, digits, '.', '_' or '-'", field=field)
    return value


def urls(
    values: Iterable[object],
    field: str,
    *,
    error: type[DomainError] = InvalidValue,
    limit: int = 20,
) -> tuple[str, ...]:
    checked = tuple(values)
    if len(checked) > limit:
        raise error(f"at most {limit} {field}", field=field)
    for url in checked:
        if not isinstance(url, str) or not _URL.fullmatch(url):
            raise error(f"{field} must be http(s) URLs", field=field)
    return tuple(str(url) for url in checked)


def string_pairs(
    values: Mapping[str, str],
    field: str,
    *,
    error: type[DomainError] = InvalidValue,
    limit: int = 50,
) -> tuple[tuple[str, str], ...]:
    """A mapping of short strings, frozen as sorted pairs (events must be immutable)."""
    if not isinstance(values, Mapping):
        raise error(f"{field} must be a mapping of names to values", field=field)
    if len(values) > limit:
        raise error(f"at most {limit} {field}", field=field)
    pairs = []
    for name, value in values.items():
        pairs.append(
            (
                text(name, f"{field} name", max_length=64, error=error),
                text(value, f"{field} value", max_length=200, error=error),
            )
        )
    return tuple(sorted(pairs))


def positive_quantity(
    value: object, field: str, *, error: type[DomainError], maximum: int = 1_000_000
) -> int:
    if type(value) is not int or value <= 0:
        raise error(f"{field} must be a positive whole number", field=field, value=value)
    if value > maximum:
        raise error(f"{field} must be at most {maximum}", field=field, value=value)
    return value
