"""A Product keeps a positive price in the currency it was registered in, and its listed
flag, details and history always agree with a plain model of the commands it accepted."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ordertrail.domain import ids
from ordertrail.domain.catalog import MAX_PRICE_MINOR_UNITS, Product
from ordertrail.domain.errors import InvalidProduct
from ordertrail.domain.money import MAX_MINOR_UNITS, Money
from tests.domain.harness import (
    START,
    Accepted,
    EventLog,
    Outcome,
    Rejected,
    Text,
    new_meta,
    perform,
    texts,
    valid_texts,
)

INVALID = "catalog.invalid_product"
CURRENCIES = ("CNY", "USD", "EUR")

# --- strategies ---------------------------------------------------------------------------

valid_skus = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")

#: Prices in minor units: ordinary, non-positive, and around the plausibility limit.
price_amounts = st.one_of(
    st.integers(1, 100_000),
    st.integers(-1_000, 0),
    st.sampled_from(
        [1, MAX_PRICE_MINOR_UNITS - 1, MAX_PRICE_MINOR_UNITS, MAX_PRICE_MINOR_UNITS + 1]
    ),
    st.sampled_from([MAX_MINOR_UNITS, -MAX_MINOR_UNITS]),
    st.integers(1, MAX_PRICE_MINOR_UNITS),
)

_NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
_VALUES = st.text(alphabet="abcdefXYZ0123 ", min_size=1, max_size=12).filter(str.strip)


@dataclass(frozen=True)
class Attributes:
    value: Mapping[str, str]
    valid: bool

    @property
    def normalized(self) -> dict[str, str]:
        return {name.strip(): text.strip() for name, text in self.value.items()}


valid_attribute_maps = st.dictionaries(_NAMES, _VALUES, max_size=4).map(
    lambda d: Attributes(d, True)
)
attribute_maps = st.one_of(
    valid_attribute_maps,
    st.sampled_from(
        [
            {"n" * 65: "too long a name"},
            {"colour": "v" * 201},
            {"colour": "   "},
            {"": "nameless"},
            {"colour": "red\x00"},
            {f"k{i}": "v" for i in range(51)},
        ]
    ).map(lambda d: Attributes(d, False)),
)


@dataclass(frozen=True)
class Urls:
    value: tuple[str, ...]
    valid: bool


valid_image_url_lists = st.lists(st.integers(0, 5), max_size=3).map(
    lambda ns: Urls(tuple(f"https://img.example.com/{n}.png" for n in ns), True)
)
image_url_lists = st.one_of(
    valid_image_url_lists,
    st.sampled_from(
        [
            ("ftp://img.example.com/a.png",),
            ("not a url",),
            ("http://",),
            ("https://img.example.com/a b.png",),
            tuple(f"https://img.example.com/{n}.png" for n in range(21)),
        ]
    ).map(lambda urls: Urls(urls, False)),
)


# --- the model ----------------------------------------------------------------------------


@dataclass
class ProductModel:
    sku: str
    title: str
    category: str
    attributes: dict[str, str]
    image_urls: tuple[str, ...]
    price: int
    currency: str
    listed: bool
    prices: list[int] = field(default_factory=list)


class ProductMachine(RuleBasedStateMachine):
    """Registers one product and throws valid and invalid catalog commands at it."""

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = START
        self.log = EventLog()
        self.product: Product
        self.model: ProductModel

    @initialize(
        sku=valid_skus,
        title=valid_texts(200),
        category=valid_texts(100),
        attributes=valid_attribute_maps,
        image_urls=valid_image_url_lists,
        price=st.integers(1, MAX_PRICE_MINOR_UNITS),
        currency=st.sampled_from(CURRENCIES),
        listed=st.booleans(),
    )
    def register(
        self,
        sku: str,
        title: Text,
        category: Text,
        attributes: Attributes,
        image_urls: Urls,
        price: int,
        currency: str,
        listed: bool,
    ) -> None:
        self.product = Product.register(
            sku=sku,
            title=title.value,
            category=category.value,
            price=Money(price, currency),
            attributes=attributes.value,
            image_urls=image_urls.value,
            listed=listed,
            meta=new_meta(),
            now=self.now,
        )
        self.model = ProductModel(
            sku=sku,
            title=title.stripped,
            category=category.stripped,
            attributes=attributes.normalized,
            image_urls=image_urls.value,
            price=price,
            currency=currency,
            listed=listed,
            prices=[price],
        )
        assert [type(e).__name__ for e in self.log.collect(self.product)] == ["Registered"]

    # --- rules ------------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 60 * 24 * 30))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(
        amount=st.one_of(st.none(), price_amounts),
        currency=st.one_of(st.none(), st.sampled_from(CURRENCIES)),
    )
    def change_price(self, amount: int | None, currency: str | None) -> None:
        """``None`` means "the current one": the same price again, or the right currency."""
        model = self.model
        new_amount = model.price if amount is None else amount
        new_currency = model.currency if currency is None else currency
        expected: Outcome
        if not 0 < new_amount <= MAX_PRICE_MINOR_UNITS or new_currency != model.currency:
            expected = Rejected.of(INVALID)
        elif new_amount == model.price:
            expected = Accepted()
        else:
            expected = Accepted(("PriceChanged",))
        new_price = Money(new_amount, new_currency)
        events = perform(
            self.product,
            self.log,
            lambda: self.product.change_price(new_price, meta=new_meta(), now=self.now),
            expected,
            "change_price",
        )
        if events:
            (changed,) = events
            assert isinstance(changed, Product.PriceChanged)
            assert changed.old_price == Money(model.price, model.currency)
            assert changed.new_price == new_price
            model.price = new_amount
            model.prices.append(new_amount)

    @rule(reason=texts(500))
    def delist(self, reason: Text) -> None:
        expected: Outcome
        if not reason.valid:
            expected = Rejected.of(INVALID)
        elif not self.model.listed:
            expected = Accepted()
        else:
            expected = Accepted(("Delisted",))
        events = perform(
            self.product,
            self.log,
            lambda: self.product.delist(reason.value, meta=new_meta(), now=self.now),
            expected,
            "delist",
        )
        if events:
            (delisted,) = events
            assert isinstance(delisted, Product.Delisted)
            assert delisted.reason == reason.stripped
            self.model.listed = False

    @rule()
    def relist(self) -> None:
        expected = Accepted() if self.model.listed else Accepted(("Relisted",))
        perform(
            self.product,
            self.log,
            lambda: self.product.relist(meta=new_meta(), now=self.now),
            expected,
            "relist",
        )
        self.model.listed = True

    @rule(
        title=st.one_of(st.none(), texts(200)),
        category=st.one_of(st.none(), texts(100)),
        attributes=st.one_of(st.none(), attribute_maps),
        image_urls=st.one_of(st.none(), image_url_lists),
    )
    def revise_details(
        self,
        title: Text | None,
        category: Text | None,
        attributes: Attributes | None,
        image_urls: Urls | None,
    ) -> None:
        model = self.model
        given = [title, category, attributes, image_urls]
        new_title = model.title if title is None else title.stripped
        new_category = model.category if category is None else category.stripped
        new_attributes = model.attributes if attributes is None else attributes.normalized
        new_urls = model.image_urls if image_urls is None else image_urls.value
        expected: Outcome
        if not all(part is None or part.valid for part in given):
            expected = Rejected.of(INVALID)
        elif (new_title, new_category, new_attributes, new_urls) == (
            model.title,
            model.category,
            model.attributes,
            model.image_urls,
        ):
            expected = Accepted()
        else:
            expected = Accepted(("DetailsRevised",))
        events = perform(
            self.product,
            self.log,
            lambda: self.product.revise_details(
                meta=new_meta(),
                now=self.now,
                title=None if title is None else title.value,
                category=None if category is None else category.value,
                attributes=None if attributes is None else attributes.value,
                image_urls=None if image_urls is None else image_urls.value,
            ),
            expected,
            "revise_details",
        )
        if events:
            model.title, model.category = new_title, new_category
            model.attributes, model.image_urls = new_attributes, new_urls

    @precondition(lambda self: len(self.model.prices) > 1)
    @rule()
    def the_same_price_again_records_nothing(self) -> None:
        price = Money(self.model.price, self.model.currency)
        perform(
            self.product,
            self.log,
            lambda: self.product.change_price(price, meta=new_meta(), now=self.now),
            Accepted(),
            "change_price to the same price",
        )

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def price_is_positive_plausible_and_in_the_original_currency(self) -> None:
        price = self.product.price
        assert 0 < price.amount <= MAX_PRICE_MINOR_UNITS
        assert price.currency == self.model.currency

    @invariant()
    def listed_flag_matches_the_model(self) -> None:
        assert self.product.listed is self.model.listed

    @invariant()
    def state_matches_the_model(self) -> None:
        product, model = self.product, self.model
        assert product.id == ids.product_id(model.sku)
        assert product.sku == model.sku
        assert product.price == Money(model.price, model.currency)
        assert product.title == model.title
        assert product.category == model.category
        assert dict(product.attributes) == model.attributes
        assert product.attribute_pairs == tuple(sorted(model.attributes.items()))
        assert product.image_urls == model.image_urls

    @invariant()
    def history_replays_to_the_same_product(self) -> None:
        self.log.check_rebuilds(self.product)
        prices = [
            e.new_price.amount for e in self.log.events if isinstance(e, Product.PriceChanged)
        ]
        assert prices == self.model.prices[1:]
        flips = [
            type(e).__name__
            for e in self.log.events
            if isinstance(e, Product.Delisted | Product.Relisted)
        ]
        assert all(a != b for a, b in itertools.pairwise(flips)), "listing events alternate"


ProductMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30)
TestProductStateMachine = ProductMachine.TestCase


# --- plain specifications -------------------------------------------------------------------


@given(
    sku=st.one_of(valid_skus, st.sampled_from(["", "-lead", "has space", "x" * 65, "ü"])),
    title=texts(200),
    category=texts(100),
    price=price_amounts,
    attributes=attribute_maps,
    image_urls=image_url_lists,
)
def test_a_product_is_registered_only_with_valid_details(
    sku: str, title: Text, category: Text, price: int, attributes: Attributes, image_urls: Urls
) -> None:
    sku_ok = bool(sku) and sku[0].isascii() and sku[0].isalnum() and " " not in sku
    sku_ok = sku_ok and len(sku) <= 64 and sku.isascii()
    valid = (
        sku_ok
        and title.valid
        and category.valid
        and 0 < price <= MAX_PRICE_MINOR_UNITS
        and attributes.valid
        and image_urls.valid
    )

    def register() -> Product:
        return Product.register(
            sku=sku,
            title=title.value,
            category=category.value,
            price=Money(price, "CNY"),
            attributes=attributes.value,
            image_urls=image_urls.value,
            meta=new_meta(),
            now=START,
        )

    if not valid:
        with pytest.raises(InvalidProduct) as refused:
            register()
        assert refused.value.code == INVALID
        return
    product = register()
    assert product.id == ids.product_id(sku)
    assert product.price == Money(price, "CNY")
    assert product.title == title.stripped
    log = EventLog()
    log.collect(product)
    log.check_rebuilds(product)


@given(price=st.integers(1, MAX_PRICE_MINOR_UNITS), other=st.sampled_from(["USD", "EUR"]))
def test_a_price_never_changes_currency(price: int, other: str) -> None:
    product = Product.register(
        sku="TEA-1",
        title="Tea",
        category="tea",
        price=Money(price, "CNY"),
        meta=new_meta(),
        now=START,
    )
    product.collect_events()
    with pytest.raises(InvalidProduct):
        product.change_price(Money(price, other), meta=new_meta(), now=START)
    assert product.pending_events == []
    assert product.price == Money(price, "CNY")
