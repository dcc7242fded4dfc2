"""Carrier selection rules, read from a TOML file (``rules.toml`` next to this module).

::

    currency = "CNY"                 # every amount below is in minor units of it

    [[rule]]
    carrier = "kuaidi100"
    zone = "cn-east"                 # a label for people and error messages
    countries = ["CN"]               # empty or absent: any country
    regions = ["SH", "Shanghai", "上海"]   # empty or absent: any region of those countries
    max_weight_grams = 30000
    base_fee = 1200                  # the first kilogram
    fee_per_kg = 200                 # each started kilogram above the first
    promise_days = 1
    supports_cod = false
    max_cod = 500000                 # only with supports_cod; absent: no ceiling

Bad data raises :class:`RulesFileError` (a ``ValueError``) naming the file and the rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import NoReturn

from ordertrail.application.carriers import CarrierRule
from ordertrail.domain.errors import DomainError
from ordertrail.domain.money import Money

DEFAULT_FILE = "rules.toml"
MAX_PROMISE_DAYS = 90
#: A rule's weight limit is at most this (a parcel's own weight is checked by Shipment.book).
MAX_WEIGHT_GRAMS = 100_000

_CARRIER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_RULE_KEYS = frozenset(
    {
        "carrier",
        "zone",
        "countries",
        "regions",
        "max_weight_grams",
        "base_fee",
        "fee_per_kg",
        "promise_days",
        "supports_cod",
        "max_cod",
    }
)
_REQUIRED = ("carrier", "max_weight_grams", "base_fee", "fee_per_kg", "promise_days")


class RulesFileError(ValueError):
    """A rules file that cannot be used; says which file and which rule (1-based)."""

    def __init__(
        self, source: str, message: str, index: int | None = None, label: str = ""
    ) -> None:
        where = source if index is None else f"{source}: rule {index}"
        if label:
            where += f" ({label})"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.index = index


def default_rules() -> tuple[CarrierRule, ...]:
    """The rules shipped with ordertrail (``ordertrail/adapters/carriers/rules.toml``)."""
    return load_rules()


def load_rules(path: Path | None = None) -> tuple[CarrierRule, ...]:
    """Read and validate a rules file (the shipped defaults when ``path`` is None)."""
    if path is None:
        source = DEFAULT_FILE
        data = resources.files(__package__).joinpath(DEFAULT_FILE).read_bytes()
    else:
        source = Path(path).name
        data = Path(path).read_bytes()
    return parse_rules(data, source)


def parse_rules(data: bytes, source: str = DEFAULT_FILE) -> tuple[CarrierRule, ...]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RulesFileError(source, f"not a valid TOML file ({error})") from None
    unknown = sorted(set(document) - {"currency", "rule"})
    if unknown:
        raise RulesFileError(source, f"unknown top-level keys {unknown}")
    currency = document.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise RulesFileError(source, "'currency' must be an ISO 4217 code such as \"CNY\"")
    entries = document.get("rule")
    if not isinstance(entries, list) or not entries:
        raise RulesFileError(source, "there must be at least one [[rule]]")
    return tuple(
        _Reader(source, index, currency).rule(entry) for index, entry in enumerate(entries, 1)
    )


class _Reader:
    """Validates one ``[[rule]]`` table."""

    def __init__(self, source: str, index: int, currency: str) -> None:
        self.source = source
        self.index = index
        self.currency = currency
        self.label = ""

    def fail(self, message: str) -> NoReturn:
        raise RulesFileError(self.source, message, index=self.index, label=self.label)

    def rule(self, entry: object) -> CarrierRule:
        if not isinstance(entry, dict):
            self.fail("must be a table")
        self.label = "/".join(
            str(entry[key]) for key in ("carrier", "zone") if isinstance(entry.get(key), str)
        )
        unknown = sorted(set(entry) - _RULE_KEYS)
        if unknown:
            self.fail(f"unknown keys {unknown}")
        for key in _REQUIRED:
            if key not in entry:
                self.fail(f"'{key}' is missing")
        carrier = entry["carrier"]
        if not isinstance(carrier, str) or not _CARRIER.match(carrier):
            self.fail("'carrier' must be a lower-case carrier code such as \"parcelhub\"")
        if "zone" in entry and not isinstance(entry["zone"], str):
            self.fail("'zone' must be text")
        countries = self.strings(entry, "countries")
        if any(not _COUNTRY.match(country) for country in countries):
            self.fail("'countries' are ISO 3166-1 alpha-2 codes such as \"CN\"")
        regions = self.strings(entry, "regions")
        if regions and not countries:
            self.fail("'regions' need 'countries' (regions are within countries)")
        supports_cod = entry.get("supports_cod", False)
        if not isinstance(supports_cod, bool):
            self.fail("'supports_cod' must be true or false")
        max_cod = None
        if "max_cod" in entry:
            if not supports_cod:
                self.fail("'max_cod' is only for carriers that support cash on delivery")
            max_cod = self.money(entry, "max_cod", minimum=1)
        return CarrierRule(
            carrier=carrier,
            countries=frozenset(countries),
            regions=frozenset(regions),
            max_weight_grams=self.integer(entry, "max_weight_grams", 1, MAX_WEIGHT_GRAMS),
            base_fee=self.money(entry, "base_fee", minimum=0),
            fee_per_kg=self.money(entry, "fee_per_kg", minimum=0),
            promise_days=self.integer(entry, "promise_days", 1, MAX_PROMISE_DAYS),
            supports_cod=supports_cod,
            max_cod=max_cod,
        )

    def strings(self, entry: Mapping[str, object], key: str) -> list[str]:
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item.strip() for item in value
        ):
            self.fail(f"'{key}' must be a list of non-empty strings")
        return [item.strip() for item in value]

    def integer(self, entry: Mapping[str, object], key: str, low: int, high: int) -> int:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(f"'{key}' must be a whole number from {low} to {high}")
        return value

    def money(self, entry: Mapping[str, object], key: str, *, minimum: int) -> Money:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"'{key}' must be a whole number of minor units, at least {minimum}")
        try:
            return Money(value, self.currency)
        except DomainError as error:
            self.fail(f"'{key}': {error.message}")
