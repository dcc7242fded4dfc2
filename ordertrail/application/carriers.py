"""Carriers: the port every carrier adapter implements, and the choice of a carrier.

Everything here is pure (no I/O, no clock). A carrier is chosen *per parcel* from rules
that are data (the adapters load them from a file): each rule says where a carrier goes
(countries, regions), how heavy a parcel may be, what it costs (a base fee for the first
kilogram plus a fee per started kilogram above it), how many days it promises, and
whether and up to what amount it collects cash on delivery.

Carrier adapters translate the carrier's callbacks into :class:`TrackingNotice` values
made of domain :class:`~ordertrail.domain.shipments.Scan` objects; the ``Shipment``
aggregate makes duplicates and out-of-order scans harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from ordertrail.domain.errors import CurrencyMismatch, NoCarrierAvailable, UnknownCarrier
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address
from ordertrail.domain.shipments import Scan

GRAMS_PER_KG = 1000

# Suffixes that name the kind of a region rather than the region ("广东省", "Guangdong
# Province", "上海市"): ignored when a parcel's region is matched against a rule.
_REGION_SUFFIXES = ("特别行政区", "自治区", "省", "市", " province", " sheng", " shi")


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParcelSpec:
    """What a carrier needs to know to price, accept and book one parcel."""

    shipment_id: UUID
    destination: Address
    weight_grams: int
    cod_amount: Money | None
    declared_value: Money

    @property
    def needs_cod(self) -> bool:
        return self.cod_amount is not None


@dataclass(frozen=True)
class CarrierRule:
    """One service zone of one carrier, with its limits and prices.

    ``countries`` empty means any country; ``regions`` (province or state names or codes
    within those countries) empty means any region. A carrier may have several rules.
    """

    carrier: str
    countries: frozenset[str]
    regions: frozenset[str]
    max_weight_grams: int
    base_fee: Money
    fee_per_kg: Money
    promise_days: int
    supports_cod: bool
    max_cod: Money | None


class Preference(StrEnum):
    """What matters most when several carriers can take a parcel."""

    CHEAPEST = "cheapest"
    FASTEST = "fastest"


@dataclass(frozen=True)
class Quote:
    carrier: str
    fee: Money
    promise_days: int


@dataclass(frozen=True)
class TrackingNotice:
    """What one carrier callback says about one parcel, in domain terms.

    ``scans`` are oldest first. ``cash_collected`` is set when the courier reports the
    cash collected on delivery (with the carrier's receipt in ``cash_reference``).
    """

    carrier: str
    tracking_number: str
    scans: tuple[Scan, ...]
    cash_collected: Money | None = None
    cash_reference: str = ""
    cash_collected_at: datetime | None = None


# --- the port --------------------------------------------------------------------------------


class CarrierGateway(Protocol):
    """A carrier, as the application sees it. Implemented by ``ordertrail.adapters.carriers``."""

    @property
    def code(self) -> str:
        """The carrier code the rules, shipments and tracking numbers use."""
        ...

    def book(self, parcel: ParcelSpec) -> str:
        """Book the parcel and return its tracking number.

        Idempotent: the same ``shipment_id`` always gives the same tracking number.
        """
        ...

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise ``CarrierSignatureInvalid`` unless the callback is signed by the carrier."""
        ...

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingNotice]:
        """The notices in a callback body; ``InvalidCarrierNotification`` if malformed."""
        ...

    def acknowledgement(self) -> tuple[str, bytes]:
        """The content type and body the carrier expects in reply to a callback."""
        ...


class CarrierDirectory:
    """The carriers of one deployment, by code."""

    def __init__(self, gateways: Iterable[CarrierGateway] = ()) -> None:
        self._gateways: dict[str, CarrierGateway] = {}
        for gateway in gateways:
            self.register(gateway)

    def register(self, gateway: CarrierGateway) -> None:
        if gateway.code in self._gateways:
            raise ValueError(f"carrier {gateway.code!r} is registered twice")
        self._gateways[gateway.code] = gateway

    def get(self, code: str) -> CarrierGateway:
        try:
            return self._gateways[code]
        except KeyError:
            raise UnknownCarrier(
                f"no carrier {code!r}", carrier=code, known=list(self.codes)
            ) from None

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self._gateways)

    def __contains__(self, code: object) -> bool:
        return code in self._gateways

    def __iter__(self) -> Iterator[CarrierGateway]:
        return iter(self._gateways[code] for code in sorted(self._gateways))

    def __len__(self) -> int:
        return len(self._gateways)


# --- choosing a carrier ----------------------------------------------------------------------


def normalize_region(region: str, country: str = "") -> str:
    """A region name or code reduced for comparison: case, spacing, the country prefix of
    ISO 3166-2 codes ("CN-GD") and suffixes such as "省" or " Province" do not matter."""
    text = " ".join(region.split()).casefold()
    prefix = f"{country.casefold()}-"
    if country and text.startswith(prefix):
        text = text[len(prefix) :]
    for suffix in _REGION_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)].rstrip()
            break
    return text


def extra_kilograms(weight_grams: int) -> int:
    """Started kilograms above the first: 1000 g → 0, 1001 g → 1, 2000 g → 1, 2001 g → 2."""
    return max(0, (weight_grams - 1) // GRAMS_PER_KG)


def quote(rule: CarrierRule, parcel: ParcelSpec) -> Quote:
    """What the rule charges for the parcel (whether or not the rule accepts it)."""
    fee = rule.base_fee + rule.fee_per_kg * extra_kilograms(parcel.weight_grams)
    return Quote(carrier=rule.carrier, fee=fee, promise_days=rule.promise_days)


def refusal(rule: CarrierRule, parcel: ParcelSpec) -> str | None:
    """Why the rule does not accept the parcel, or None when it does."""
    address = parcel.destination
    if rule.countries and address.country not in rule.countries:
        return f"does not serve {address.country}"
    if rule.regions:
        wanted = normalize_region(address.region, address.country)
        served = {normalize_region(region, address.country) for region in rule.regions}
        if not wanted or wanted not in served:
            return f"does not serve region {address.region!r}"
    if parcel.weight_grams <= 0:
        return "the parcel has no weight"
    if parcel.weight_grams > rule.max_weight_grams:
        return f"takes at most {rule.max_weight_grams} g"
    cod = parcel.cod_amount
    if cod is not None:
        if not rule.supports_cod:
            return "does not collect cash on delivery"
        if rule.max_cod is not None and (
            cod.currency != rule.max_cod.currency or cod.amount > rule.max_cod.amount
        ):
            return f"collects at most {rule.max_cod.amount} {rule.max_cod.currency}"
    return None


def eligible(rule: CarrierRule, parcel: ParcelSpec) -> bool:
    return refusal(rule, parcel) is None


def _rank(candidate: Quote, preference: Preference) -> tuple[int, int, str]:
    if preference is Preference.FASTEST:
        return (candidate.promise_days, candidate.fee.amount, candidate.carrier)
    return (candidate.fee.amount, candidate.promise_days, candidate.carrier)


def select_carrier(
    rules: Iterable[CarrierRule],
    parcel: ParcelSpec,
    preference: Preference = Preference.CHEAPEST,
    allowed: frozenset[str] | None = None,
) -> Quote:
    """The best quote among the rules that accept the parcel.

    Cheapest: lowest fee, then fewest days, then carrier code. Fastest: fewest days, then
    lowest fee, then carrier code. ``allowed`` limits the carriers considered (e.g. to
    those configured). Raises ``NoCarrierAvailable`` when no rule accepts the parcel.
    """
    preference = Preference(preference)
    quotes: list[Quote] = []
    refused: dict[str, list[str]] = {}
    for rule in rules:
        if allowed is not None and rule.carrier not in allowed:
            refused.setdefault(rule.carrier, []).append("not allowed")
            continue
        reason = refusal(rule, parcel)
        if reason is None:
            quotes.append(quote(rule, parcel))
        else:
            refused.setdefault(rule.carrier, []).append(reason)
    if not quotes:
        address = parcel.destination
        raise NoCarrierAvailable(
            f"no carrier takes a {parcel.weight_grams} g parcel to "
            f"{address.country}{'/' + address.region if address.region else ''}"
            f"{' with cash on delivery' if parcel.needs_cod else ''}",
            shipment_id=str(parcel.shipment_id),
            country=address.country,
            region=address.region,
            weight_grams=parcel.weight_grams,
            cod=parcel.cod_amount.amount if parcel.cod_amount is not None else None,
            refused=refused,
        )
    currencies = {candidate.fee.currency for candidate in quotes}
    if len(currencies) > 1:
        raise CurrencyMismatch(
            "carrier fees in different currencies cannot be compared",
            currencies=sorted(currencies),
        )
    return min(quotes, key=lambda candidate: _rank(candidate, preference))
