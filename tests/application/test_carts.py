"""A cart checks out into an order with the same guarantees as placing one: catalog
prices, stock reserved all-or-nothing, one order per cart however often it is retried."""

from __future__ import annotations

import pytest

from ordertrail.application.carts import (
    CheckOut,
    ChoosePayment,
    OpenCart,
    PutItem,
    SetDeliveryAddress,
)
from ordertrail.application.system import Ordertrail
from ordertrail.domain import PaymentMethod
from ordertrail.domain.cart import PaymentChoice
from ordertrail.domain.errors import (
    CartCheckedOut,
    InsufficientStock,
    InvalidCart,
    PaymentPlanMismatch,
    ProductNotFound,
)
from tests.support.builders import address, cny, customer, heads, stocked_product


def a_cart(ot: Ordertrail, *items: tuple[str, int, str]):
    cart = ot.carts.open_cart(OpenCart("cust-1"), customer()).value
    for sku, quantity, group in items:
        ot.carts.put_item(PutItem(cart.cart_id, sku, quantity, group), customer())
    return cart.cart_id


def test_a_cart_checks_out_into_an_order_priced_from_the_catalog(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 1000, 10)
    stocked_product(ot, "CUP-1", 300, 10)
    cart_id = a_cart(ot, ("TEA-1", 2, "home"), ("CUP-1", 1, "parents"))
    ot.carts.put_item(PutItem(cart_id, "TEA-1", 3, "home"), customer())  # change quantity
    for group, city in (("home", "Shanghai"), ("parents", "Hangzhou")):
        ot.carts.set_delivery_address(
            SetDeliveryAddress(cart_id, group, address(city=city)), customer()
        )
    ot.carts.choose_payment(
        ChoosePayment(cart_id, (PaymentChoice(PaymentMethod.ALIPAY),)), customer()
    )
    placed = ot.carts.check_out(CheckOut(cart_id), customer()).value
    order = ot.orders.order(placed.order_id)
    assert order.total == cny(3300)
    assert sorted((line.sku, line.quantity, line.delivery_group) for line in order.lines) == [
        ("CUP-1", 1, "parents"),
        ("TEA-1", 3, "home"),
    ]
    assert ot.inventory.stock_level("TEA-1").reserved == 3
    assert ot.carts.cart(cart_id).order_id == placed.order_id


def test_checking_out_twice_places_one_order(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 1000, 10)
    cart_id = a_cart(ot, ("TEA-1", 2, "home"))
    ot.carts.set_delivery_address(SetDeliveryAddress(cart_id, "home", address()), customer())
    ot.carts.choose_payment(
        ChoosePayment(cart_id, (PaymentChoice(PaymentMethod.CARD),)), customer()
    )
    first = ot.carts.check_out(CheckOut(cart_id), customer()).value
    again = ot.carts.check_out(CheckOut(cart_id), customer()).value
    assert again.order_id == first.order_id
    assert ot.inventory.stock_level("TEA-1").reserved == 2
    with pytest.raises(CartCheckedOut):
        ot.carts.put_item(PutItem(cart_id, "TEA-1", 5, "home"), customer())


def test_a_cart_that_is_not_ready_or_not_in_stock_checks_out_nothing(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 1000, 1)
    with pytest.raises(ProductNotFound):
        a_cart(ot, ("NOPE", 1, "home"))
    cart_id = a_cart(ot, ("TEA-1", 2, "home"))
    with pytest.raises(InvalidCart):  # no address, no payment
        ot.carts.check_out(CheckOut(cart_id), customer())
    ot.carts.set_delivery_address(SetDeliveryAddress(cart_id, "home", address()), customer())
    ot.carts.choose_payment(
        ChoosePayment(
            cart_id,
            (
                PaymentChoice(PaymentMethod.ALIPAY, cny(500)),
                PaymentChoice(PaymentMethod.CASH_ON_DELIVERY, cny(500)),
            ),
        ),
        customer(),
    )
    before = heads(ot)
    with pytest.raises((InsufficientStock, PaymentPlanMismatch)):
        ot.carts.check_out(CheckOut(cart_id), customer())
    assert heads(ot) == before
    ot.carts.put_item(PutItem(cart_id, "TEA-1", 1, "home"), customer())  # now 1000 in all
    placed = ot.carts.check_out(CheckOut(cart_id), customer()).value
    assert [p.amount for p in placed.payments] == [cny(500), cny(500)]
