from __future__ import annotations

import pytest

from ordertrail.application.catalog import (
    ChangePrice,
    DelistProduct,
    RegisterProduct,
    RelistProduct,
    ReviseProduct,
)
from ordertrail.application.errors import CommandIdReused
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Money
from ordertrail.domain.errors import (
    InvalidProduct,
    InvalidValue,
    ProductNotFound,
    SkuAlreadyRegistered,
)
from tests.support.builders import cny, heads, staff


def test_registers_a_product_under_its_sku(ot: Ordertrail) -> None:
    accepted = ot.catalog.register_product(
        RegisterProduct(
            "TEA-1",
            "Oolong",
            "tea",
            cny(2500),
            {"origin": "Fujian"},
            ("https://img.example/tea.png",),
        ),
        staff(),
    )
    product = ot.catalog.product("TEA-1")
    assert accepted.value.sku == "TEA-1"
    assert product.title == "Oolong"
    assert dict(product.attributes) == {"origin": "Fujian"}
    assert product.image_urls == ("https://img.example/tea.png",)
    assert product.price == cny(2500)
    assert accepted.positions["Catalog"] == ot.catalog.head()


def test_a_sku_can_be_registered_only_once(ot: Ordertrail) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    before = heads(ot)
    with pytest.raises(SkuAlreadyRegistered) as raised:
        ot.catalog.register_product(RegisterProduct("TEA-1", "Other", "tea", cny(1)), staff())
    assert raised.value.code == "catalog.sku_taken"
    assert heads(ot) == before


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (RegisterProduct("bad sku!", "Tea", "tea", cny(100)), InvalidProduct),
        (RegisterProduct("TEA-2", "", "tea", cny(100)), InvalidProduct),
        (RegisterProduct("TEA-2", "Tea", "tea", cny(0)), InvalidProduct),
        (RegisterProduct("TEA-2", "Tea", "tea", cny(-5)), InvalidProduct),
        (RegisterProduct("TEA-2", "Tea", "tea", cny(100), image_urls=("ftp://x",)), InvalidProduct),
    ],
)
def test_invalid_products_are_refused_and_nothing_is_written(
    ot: Ordertrail, command: RegisterProduct, error: type[Exception]
) -> None:
    before = heads(ot)
    with pytest.raises(error):
        ot.catalog.register_product(command, staff())
    assert heads(ot) == before


def test_money_must_be_integer_minor_units() -> None:
    with pytest.raises(InvalidValue):
        cny(1.5)  # type: ignore[arg-type]


def test_price_changes_keep_the_currency_and_same_price_records_nothing(
    ot: Ordertrail,
) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    ot.catalog.change_price(ChangePrice("TEA-1", cny(2800)), staff())
    assert ot.catalog.product("TEA-1").price == cny(2800)
    before = heads(ot)
    ot.catalog.change_price(ChangePrice("TEA-1", cny(2800)), staff())
    assert heads(ot) == before
    with pytest.raises(InvalidProduct):
        ot.catalog.change_price(ChangePrice("TEA-1", Money(2800, "USD")), staff())
    assert heads(ot) == before


def test_delisting_and_relisting(ot: Ordertrail) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    assert (
        ot.catalog.delist_product(DelistProduct("TEA-1", "out of season"), staff()).value.listed
        is False
    )
    assert ot.catalog.relist_product(RelistProduct("TEA-1"), staff()).value.listed is True


def test_revising_details(ot: Ordertrail) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    ot.catalog.revise_product(
        ReviseProduct("TEA-1", title="Tieguanyin", attributes={"grade": "A"}), staff()
    )
    product = ot.catalog.product("TEA-1")
    assert (product.title, product.category, dict(product.attributes)) == (
        "Tieguanyin",
        "tea",
        {"grade": "A"},
    )


def test_unknown_sku_is_not_found(ot: Ordertrail) -> None:
    with pytest.raises(ProductNotFound):
        ot.catalog.change_price(ChangePrice("NOPE", cny(1)), staff())


def test_the_same_command_id_replays_the_first_outcome(ot: Ordertrail) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    ctx = staff()
    first = ot.catalog.change_price(ChangePrice("TEA-1", cny(2600)), ctx)
    ot.catalog.change_price(ChangePrice("TEA-1", cny(2700)), staff())
    before = heads(ot)
    again = ot.catalog.change_price(ChangePrice("TEA-1", cny(2600)), ctx)
    assert again.replayed
    assert not first.replayed
    assert again.value == first.value
    assert heads(ot) == before
    assert ot.catalog.product("TEA-1").price == cny(2700)


def test_a_command_id_cannot_be_reused_for_another_command(ot: Ordertrail) -> None:
    ot.catalog.register_product(RegisterProduct("TEA-1", "Oolong", "tea", cny(2500)), staff())
    ctx = staff()
    ot.catalog.change_price(ChangePrice("TEA-1", cny(2600)), ctx)
    with pytest.raises(CommandIdReused):
        ot.catalog.change_price(ChangePrice("TEA-1", cny(9999)), ctx)
    assert ot.catalog.product("TEA-1").price == cny(2600)
