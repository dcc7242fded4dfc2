"""The carrier rules file: the shipped defaults, and clear errors for bad files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ordertrail.adapters.carriers.rules import (
    RulesFileError,
    default_rules,
    load_rules,
    parse_rules,
)
from ordertrail.application.carriers import (
    CarrierRule,
    ParcelSpec,
    Preference,
    Quote,
    eligible,
    quote,
    select_carrier,
)
from ordertrail.domain.errors import NoCarrierAvailable
from ordertrail.domain.money import Money
from tests.adapters import parcel

RULES = default_rules()


def best(spec: ParcelSpec, preference: Preference = Preference.CHEAPEST) -> Quote:
    return select_carrier(RULES, spec, preference)


# --- the defaults ----------------------------------------------------------------------------


def test_the_default_rules_load() -> None:
    assert len(RULES) == 8
    assert {r.carrier for r in RULES} == {"kuaidi100", "parcelhub"}
    assert all(r.base_fee.currency == "CNY" for r in RULES)
    assert load_rules(Path(__file__).parents[2] / "ordertrail/adapters/carriers/rules.toml") == (
        RULES
    )


def test_east_china_is_next_day_with_kuaidi100_and_cheapest_with_parcelhub() -> None:
    shanghai = parcel(region="上海")
    assert best(shanghai) == Quote("parcelhub", Money(1000, "CNY"), 3)
    assert best(shanghai, Preference.FASTEST) == Quote("kuaidi100", Money(1200, "CNY"), 1)
    assert best(parcel(region="Zhejiang Province"), Preference.FASTEST).promise_days == 1


def test_the_rest_of_the_mainland() -> None:
    assert best(parcel(region="Guangdong"), Preference.FASTEST) == Quote(
        "kuaidi100", Money(2300, "CNY"), 2
    )
    assert best(parcel(region="")).carrier == "parcelhub"  # no region: any-region rules


def test_heavy_parcels_go_by_freight_and_the_heaviest_cannot_go() -> None:
    assert best(parcel(weight=25_000)) == Quote("parcelhub", Money(4000 + 24 * 300, "CNY"), 5)
    assert best(parcel(weight=40_000), Preference.FASTEST).promise_days == 5
    with pytest.raises(NoCarrierAvailable):
        best(parcel(weight=60_001))


def test_cash_on_delivery_goes_to_parcelhub_within_its_ceiling() -> None:
    assert best(parcel(region="Shanghai", cod=13_600), Preference.FASTEST).carrier == "parcelhub"
    assert best(parcel(country="HK", region="", cod=150_000)).carrier == "parcelhub"
    with pytest.raises(NoCarrierAvailable):
        best(parcel(country="HK", region="", cod=250_000))  # above 2,000 CNY
    with pytest.raises(NoCarrierAvailable):
        best(parcel(country="JP", region="", cod=100))  # no COD abroad


def test_abroad() -> None:
    assert best(parcel(country="HK", region="")).carrier == "parcelhub"
    assert best(parcel(country="MO", region=""), Preference.FASTEST).carrier == "kuaidi100"
    assert best(parcel(country="JP", region="Tokyo")).promise_days == 6
    assert best(parcel(country="US", region="CA")).promise_days == 10
    with pytest.raises(NoCarrierAvailable):
        best(parcel(country="BR", region="SP"))


def test_every_default_rule_is_chosen_for_some_parcel() -> None:
    places = [
        ("CN", "Shanghai"),
        ("CN", "Jiangsu"),
        ("CN", "Guangdong"),
        ("CN", "Sichuan"),
        ("CN", ""),
        ("HK", ""),
        ("MO", ""),
        ("JP", ""),
        ("SG", ""),
        ("US", ""),
        ("DE", ""),
    ]
    used: set[CarrierRule] = set()
    for (country, region), weight, cod, preference in itertools.product(
        places, (500, 1500, 12_000, 25_000, 45_000), (None, 9_900), Preference
    ):
        spec = parcel(country=country, region=region, weight=weight, cod=cod)
        try:
            chosen = select_carrier(RULES, spec, preference)
        except NoCarrierAvailable:
            continue
        used |= {r for r in RULES if eligible(r, spec) and quote(r, spec) == chosen}
    assert set(RULES) <= used, [r for r in RULES if r not in used]


# --- bad files -------------------------------------------------------------------------------

GOOD_RULE = """
[[rule]]
carrier = "parcelhub"
zone = "cn"
countries = ["CN"]
max_weight_grams = 20000
base_fee = 1000
fee_per_kg = 500
promise_days = 3
supports_cod = true
max_cod = 500000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carriers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    (only,) = load_rules(write(tmp_path, 'currency = "CNY"\n' + GOOD_RULE))
    assert only.max_cod == Money(500000, "CNY")
    assert only.regions == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('carrier = "parcelhub"', 'carrier = "Parcel Hub"'), "carrier"),
        (('countries = ["CN"]', 'countries = ["china"]'), "countries"),
        (('countries = ["CN"]', 'countries = []\nregions = ["GD"]'), "regions"),
        (('countries = ["CN"]', 'countries = ["CN"]\nregions = [""]'), "regions"),
        (("max_weight_grams = 20000", "max_weight_grams = 0"), "max_weight_grams"),
        (("max_weight_grams = 20000", "max_weight_grams = 200000"), "max_weight_grams"),
        (("max_weight_grams = 20000", "max_weight_grams = 2.5"), "max_weight_grams"),
        (("base_fee = 1000", "base_fee = -1"), "base_fee"),
        (("base_fee = 1000", 'base_fee = "10 yuan"'), "base_fee"),
        (("fee_per_kg = 500", "fee_per_kg = true"), "fee_per_kg"),
        (("promise_days = 3", "promise_days = 0"), "promise_days"),
        (("promise_days = 3", ""), "promise_days"),
        (("supports_cod = true", 'supports_cod = "yes"'), "supports_cod"),
        (("supports_cod = true", "supports_cod = false"), "max_cod"),
        (("max_cod = 500000", "max_cod = 0"), "max_cod"),
        (('zone = "cn"', 'zone = "cn"\nspeed = "fast"'), "speed"),
    ],
)
def test_a_bad_rule_names_the_file_and_the_rule(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    bad = GOOD_RULE.replace(*change)
    path = write(tmp_path, 'currency = "CNY"\n' + GOOD_RULE + bad)
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.index == 2
    assert "carriers.toml: rule 2" in str(error)
    assert message in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is = not [toml", "TOML"),
        (GOOD_RULE, "currency"),
        ('currency = "yuan"\n' + GOOD_RULE, "currency"),
        ('currency = "CNY"\n', "at least one"),
        ('currency = "CNY"\nrules = 1\n' + GOOD_RULE, "rules"),
        ('currency = "CNY"\nrule = 1\n', "at least one"),
    ],
)
def test_a_bad_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RulesFileError) as caught:
        load_rules(write(tmp_path, text))
    assert str(caught.value).startswith("carriers.toml")
    assert message in str(caught.value)


def test_non_utf8_data_is_a_rules_error() -> None:
    with pytest.raises(RulesFileError):
        parse_rules(b"\xff\xfe", "x.toml")


def test_a_table_that_is_not_a_rule_is_refused() -> None:
    with pytest.raises(RulesFileError, match="rule 1"):
        parse_rules(b'currency = "CNY"\nrule = [1]\n', "x.toml")
