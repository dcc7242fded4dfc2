"""Choosing a carrier per parcel: prices, eligibility, preferences, tie-breaks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordertrail.adapters.carriers import Kuaidi100Gateway, ParcelHubGateway
from ordertrail.application.carriers import (
    CarrierDirectory,
    CarrierRule,
    ParcelSpec,
    Preference,
    Quote,
    eligible,
    extra_kilograms,
    normalize_region,
    quote,
    select_carrier,
)
from ordertrail.domain.errors import CurrencyMismatch, NoCarrierAvailable, UnknownCarrier
from ordertrail.domain.money import Money
from tests.adapters import cny, parcel


def rule(
    carrier: str = "alpha",
    *,
    countries: frozenset[str] = frozenset({"CN"}),
    regions: frozenset[str] = frozenset(),
    max_weight_grams: int = 30_000,
    base_fee: int = 1000,
    fee_per_kg: int = 500,
    promise_days: int = 3,
    supports_cod: bool = False,
    max_cod: int | None = None,
    currency: str = "CNY",
) -> CarrierRule:
    return CarrierRule(
        carrier=carrier,
        countries=countries,
        regions=regions,
        max_weight_grams=max_weight_grams,
        base_fee=Money(base_fee, currency),
        fee_per_kg=Money(fee_per_kg, currency),
        promise_days=promise_days,
        supports_cod=supports_cod,
        max_cod=Money(max_cod, currency) if max_cod is not None else None,
    )


# --- price -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "extra"),
    [(1, 0), (999, 0), (1000, 0), (1001, 1), (2000, 1), (2001, 2), (30_000, 29)],
)
def test_every_started_kilogram_above_the_first_is_charged(weight: int, extra: int) -> None:
    assert extra_kilograms(weight) == extra
    assert quote(rule(base_fee=1000, fee_per_kg=300), parcel(weight=weight)) == Quote(
        "alpha", cny(1000 + 300 * extra), 3
    )


# --- eligibility -----------------------------------------------------------------------------


def test_countries_and_regions_limit_a_rule() -> None:
    east = rule(regions=frozenset({"SH", "Shanghai", "上海", "ZJ", "Zhejiang", "浙江"}))
    assert eligible(east, parcel(region="Shanghai"))
    assert eligible(east, parcel(region="上海市"))
    assert eligible(east, parcel(region="浙江省"))
    assert eligible(east, parcel(region="CN-ZJ"))
    assert eligible(east, parcel(region="  zhejiang   province "))
    assert not eligible(east, parcel(region="Guangdong"))
    assert not eligible(east, parcel(region=""))  # a zoned rule needs the region
    assert not eligible(east, parcel(country="HK", region="Shanghai"))
    assert eligible(rule(countries=frozenset()), parcel(country="US", region="CA"))


def test_region_names_are_normalized() -> None:
    assert normalize_region("广东省") == normalize_region("广东")
    assert normalize_region("Guangdong Province") == "guangdong"
    assert normalize_region("CN-GD", "CN") == "gd"
    assert normalize_region("香港特别行政区") == "香港"
    assert normalize_region("市") == "市"  # never reduced to nothing


def test_weight_limits_a_rule() -> None:
    light = rule(max_weight_grams=5000)
    assert eligible(light, parcel(weight=5000))
    assert not eligible(light, parcel(weight=5001))
    assert not eligible(light, parcel(weight=0))


def test_cash_on_delivery_needs_a_carrier_that_collects_enough() -> None:
    assert not eligible(rule(supports_cod=False), parcel(cod=100))
    assert eligible(rule(supports_cod=True), parcel(cod=10**9))
    capped = rule(supports_cod=True, max_cod=50_000)
    assert eligible(capped, parcel(cod=50_000))
    assert not eligible(capped, parcel(cod=50_001))
    usd_cap = rule(supports_cod=True, max_cod=50_000, currency="USD")
    assert not eligible(usd_cap, parcel(cod=100))  # a ceiling in another currency
    assert eligible(rule(supports_cod=False), parcel(cod=None))


# --- selection -------------------------------------------------------------------------------


def test_cheapest_and_fastest() -> None:
    rules = [
        rule("slow", base_fee=800, promise_days=4),
        rule("quick", base_fee=2000, promise_days=1),
        rule("middle", base_fee=1200, promise_days=2),
    ]
    assert select_carrier(rules, parcel()).carrier == "slow"
    assert select_carrier(rules, parcel(), Preference.FASTEST).carrier == "quick"
    assert select_carrier(rules, parcel(), "fastest").carrier == "quick"  # type: ignore[arg-type]


def test_ties_break_on_the_other_criterion_then_on_the_carrier_code() -> None:
    rules = [
        rule("b", base_fee=1000, promise_days=2),
        rule("c", base_fee=1000, promise_days=1),
        rule("a", base_fee=1000, promise_days=1),
        rule("d", base_fee=900, promise_days=1),
    ]
    assert select_carrier(rules, parcel(), Preference.FASTEST).carrier == "d"  # days, then fee
    assert select_carrier(rules[:3], parcel()).carrier == "a"  # fee, days, then code
    assert select_carrier(rules[:3], parcel(), Preference.FASTEST).carrier == "a"
    assert select_carrier(list(reversed(rules[:3])), parcel()).carrier == "a"


def test_the_best_of_several_rules_of_one_carrier_is_used() -> None:
    rules = [
        rule("alpha", base_fee=2500, promise_days=2),
        rule("alpha", regions=frozenset({"Guangdong"}), base_fee=1100, promise_days=1),
        rule("beta", base_fee=1500, promise_days=3),
    ]
    assert select_carrier(rules, parcel(region="Guangdong")) == Quote("alpha", cny(1100), 1)
    assert select_carrier(rules, parcel(region="Hunan")) == Quote("beta", cny(1500), 3)
    assert select_carrier(rules, parcel(region="Hunan"), Preference.FASTEST) == Quote(
        "alpha", cny(2500), 2
    )


def test_weight_decides_between_rules() -> None:
    rules = [rule("small", max_weight_grams=5000), rule("big", base_fee=5000)]
    assert select_carrier(rules, parcel(weight=5000)).carrier == "small"
    assert select_carrier(rules, parcel(weight=5001)).carrier == "big"


def test_allowed_limits_the_carriers() -> None:
    rules = [rule("alpha", base_fee=100), rule("beta", base_fee=900)]
    assert select_carrier(rules, parcel(), allowed=frozenset({"beta"})).carrier == "beta"
    with pytest.raises(NoCarrierAvailable):
        select_carrier(rules, parcel(), allowed=frozenset())


def test_no_carrier_available_says_why() -> None:
    rules = [rule("alpha", max_weight_grams=1000), rule("beta", countries=frozenset({"HK"}))]
    with pytest.raises(NoCarrierAvailable) as caught:
        select_carrier(rules, parcel(weight=2500, cod=100))
    error = caught.value
    assert error.code == "logistics.no_carrier_available"
    assert error.details["weight_grams"] == 2500
    assert error.details["country"] == "CN"
    assert error.details["cod"] == 100
    assert set(error.details["refused"]) == {"alpha", "beta"}
    with pytest.raises(NoCarrierAvailable):
        select_carrier([], parcel())


def test_fees_in_different_currencies_are_not_compared() -> None:
    rules = [rule("alpha"), rule("beta", currency="USD")]
    with pytest.raises(CurrencyMismatch):
        select_carrier(rules, parcel())


# --- the property ----------------------------------------------------------------------------

CARRIERS = ("alpha", "beta", "gamma")
COUNTRIES = ("CN", "HK", "US")
REGIONS = ("Guangdong", "Shanghai", "Zhejiang")


def amounts(low: int, high: int) -> st.SearchStrategy[Money]:
    return st.integers(low, high).map(cny)


rules_strategy = st.builds(
    CarrierRule,
    carrier=st.sampled_from(CARRIERS),
    countries=st.frozensets(st.sampled_from(COUNTRIES), max_size=2),
    regions=st.frozensets(st.sampled_from(REGIONS), max_size=2),
    max_weight_grams=st.integers(1, 30_000),
    base_fee=amounts(0, 5000),
    fee_per_kg=amounts(0, 2000),
    promise_days=st.integers(1, 7),
    supports_cod=st.booleans(),
    max_cod=st.none() | amounts(1, 100_000),
)
parcels_strategy = st.builds(
    parcel,
    country=st.sampled_from(COUNTRIES),
    region=st.sampled_from((*REGIONS, "")),
    weight=st.integers(1, 40_000),
    cod=st.none() | st.integers(1, 100_000),
)


def accepts(candidate: CarrierRule, spec: ParcelSpec) -> bool:
    """An independent statement of eligibility for the generated (exact-name) data."""
    where = spec.destination
    cod = spec.cod_amount
    return (
        (not candidate.countries or where.country in candidate.countries)
        and (not candidate.regions or where.region in candidate.regions)
        and 0 < spec.weight_grams <= candidate.max_weight_grams
        and (
            cod is None
            or (
                candidate.supports_cod
                and (candidate.max_cod is None or cod.amount <= candidate.max_cod.amount)
            )
        )
    )


@given(
    rules=st.lists(rules_strategy, max_size=7),
    spec=parcels_strategy,
    preference=st.sampled_from(Preference),
    allowed=st.none() | st.frozensets(st.sampled_from(CARRIERS)),
)
def test_select_carrier_returns_the_best_eligible_quote_or_raises_when_none_fits(
    rules: list[CarrierRule],
    spec: ParcelSpec,
    preference: Preference,
    allowed: frozenset[str] | None,
) -> None:
    considered = [r for r in rules if allowed is None or r.carrier in allowed]
    fitting = [r for r in considered if accepts(r, spec)]
    assert [r for r in considered if eligible(r, spec)] == fitting

    if not fitting:
        with pytest.raises(NoCarrierAvailable):
            select_carrier(rules, spec, preference, allowed)
        return

    chosen = select_carrier(rules, spec, preference, allowed)
    assert chosen in [quote(r, spec) for r in fitting]  # an eligible carrier's own price

    def rank(q: Quote) -> tuple[int, int, str]:
        if preference is Preference.CHEAPEST:
            return (q.fee.amount, q.promise_days, q.carrier)
        return (q.promise_days, q.fee.amount, q.carrier)

    assert all(rank(chosen) <= rank(quote(r, spec)) for r in fitting)
    assert select_carrier(list(reversed(rules)), spec, preference, allowed) == chosen


# --- the directory ---------------------------------------------------------------------------


def test_the_directory_finds_gateways_by_code() -> None:
    kuaidi100, parcelhub = Kuaidi100Gateway("salt"), ParcelHubGateway("secret")
    directory = CarrierDirectory([kuaidi100, parcelhub])
    assert directory.codes == frozenset({"kuaidi100", "parcelhub"})
    assert directory.get("parcelhub") is parcelhub
    assert "kuaidi100" in directory
    assert len(directory) == 2
    assert [g.code for g in directory] == ["kuaidi100", "parcelhub"]
    with pytest.raises(UnknownCarrier) as caught:
        directory.get("dhl")
    assert caught.value.code == "logistics.unknown_carrier"
    with pytest.raises(ValueError, match="twice"):
        directory.register(ParcelHubGateway("other"))


def test_select_then_book_is_idempotent_per_shipment() -> None:
    directory = CarrierDirectory([Kuaidi100Gateway("salt"), ParcelHubGateway("secret")])
    rules = [rule("kuaidi100", promise_days=1, base_fee=2000), rule("parcelhub", base_fee=900)]
    spec = parcel()
    for preference in Preference:
        chosen = select_carrier(rules, spec, preference, allowed=directory.codes)
        gateway = directory.get(chosen.carrier)
        assert gateway.book(spec) == gateway.book(spec)
