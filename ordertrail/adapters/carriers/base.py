"""Shared helpers of the carrier adapters: defensive reading of untrusted callback bodies.

Every reader raises ``InvalidCarrierNotification`` (a ``DomainError``) on anything it does
not expect, so no ``KeyError``/``ValueError``/``TypeError`` ever leaks out of a parser.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NoReturn

from ordertrail.domain.errors import InvalidCarrierNotification

#: Callback bodies larger than this are refused before they are decoded.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Scan texts are cut to what ``Shipment.record_scan`` accepts.
MAX_LOCATION = 200
MAX_DESCRIPTION = 500
#: Scan times outside these years are refused as implausible.
EARLIEST_YEAR = 2000
LATEST_YEAR = 2100

_TRACKING_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def invalid(message: str, **details: object) -> NoReturn:
    raise InvalidCarrierNotification(message, **details)


def check_size(body: bytes) -> None:
    if not isinstance(body, bytes | bytearray):
        invalid("a callback body is bytes")
    if len(body) > MAX_BODY_BYTES:
        invalid(f"a callback body is at most {MAX_BODY_BYTES} bytes", size=len(body))


def decode_utf8(body: bytes, what: str) -> str:
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        invalid(f"{what} is not UTF-8 text")


def decode_json(text: str | bytes, what: str) -> object:
    """Parse JSON, refusing anything the standard parser would raise on."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError, TypeError):  # JSONDecodeError is a ValueError
        invalid(f"{what} is not valid JSON")


def mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        invalid(f"{where} must be a JSON object", field=where)
    return value


def items(value: object, where: str, *, limit: int) -> list[object]:
    if not isinstance(value, list):
        invalid(f"{where} must be a JSON array", field=where)
    if len(value) > limit:
        invalid(f"{where} has more than {limit} entries", field=where)
    return value


def string(
    obj: Mapping[str, object], key: str, where: str, *, required: bool = True, limit: int = 2000
) -> str:
    """A string member (numbers are accepted as their decimal text: some carriers send
    codes as numbers); missing or null is ``""`` unless required."""
    value = obj.get(key)
    if value is None:
        if required:
            invalid(f"{where}.{key} is missing", field=f"{where}.{key}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        invalid(f"{where}.{key} must be text", field=f"{where}.{key}")
    text = str(value) if isinstance(value, int) else value
    if len(text) > limit:
        invalid(f"{where}.{key} is longer than {limit} characters", field=f"{where}.{key}")
    if required and not text.strip():
        invalid(f"{where}.{key} is empty", field=f"{where}.{key}")
    return text


def tracking_number(value: str, where: str) -> str:
    number = value.strip()
    if not _TRACKING_NUMBER.fullmatch(number):
        invalid(f"{where} is not a tracking number", field=where)
    return number


def clean_text(value: str, limit: int) -> str:
    """Text fit for a scan: control characters and runs of spaces become one space."""
    text = " ".join(_CONTROL.sub(" ", _SURROGATE.sub("\ufffd", value)).split())
    return text[:limit].rstrip()


def plausible_utc(moment: datetime, where: str) -> datetime:
    """An aware time as UTC, refused when it is implausible for a parcel scan."""
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        invalid(f"{where} is out of range", field=where)
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        invalid(f"{where} is out of range", field=where)
    return utc


def digest_id(prefix: str, *parts: str) -> str:
    """A stable id for a carrier event that carries none of its own."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-{digest[:32]}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, looked up without regard to case."""
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None
