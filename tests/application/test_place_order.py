from __future__ import annotations

from collections.abc import Callable

import pytest

from ordertrail.application.catalog import ChangePrice, DelistProduct
from ordertrail.application.errors import CommandIdReused
from ordertrail.application.ordering import PlaceOrder
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Config, Ordertrail
from ordertrail.application.warehouses import Warehouse
from ordertrail.domain import (
    DeliveryGroup,
    Discount,
    InventoryItem,
    Order,
    OrderStatus,
    PaymentMethod,
    PlannedPayment,
    ids,
)
from ordertrail.domain.errors import (
    InsufficientStock,
    InvalidOrder,
    NoWarehouseServes,
    PaymentPlanMismatch,
    ProductNotFound,
    ProductNotListed,
)
from tests.support.builders import (
    address,
    cny,
    customer,
    heads,
    home,
    order_of,
    staff,
    stocked_product,
)


def test_placing_an_order_prices_lines_from_the_catalog_and_reserves_stock(
    ot: Ordertrail,
) -> None:
    stocked_product(ot, "TEA-1", 2500, 10)
    accepted = ot.ordering.place_order(order_of(("TEA-1", 3), total=7500), customer())
    order = ot.orders.order(accepted.value.order_id)
    assert order.status is OrderStatus.AWAITING_PAYMENT
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("TEA-1", 3, cny(2500))
    ]
    assert order.total == cny(7500)
    level = ot.inventory.stock_level("TEA-1")
    assert (level.on_hand, level.reserved, level.available) == (10, 3, 7)
    assert set(accepted.positions) == {"Orders", "Inventory"}


def test_a_later_price_change_does_not_touch_placed_orders(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 2500, 10)
    first = ot.ordering.place_order(order_of(("TEA-1", 1), total=2500), customer())
    ot.catalog.change_price(ChangePrice("TEA-1", cny(3000)), staff())
    with pytest.raises(PaymentPlanMismatch):  # the client's idea of the price is not used
        ot.ordering.place_order(order_of(("TEA-1", 1), total=2500), customer())
    second = ot.ordering.place_order(order_of(("TEA-1", 1), total=3000), customer())
    assert ot.orders.order(first.value.order_id).lines[0].unit_price == cny(2500)
    assert ot.orders.order(second.value.order_id).lines[0].unit_price == cny(3000)


def test_reserving_several_skus_is_all_or_nothing(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    stocked_product(ot, "CUP-1", 50, 1)
    before = heads(ot)
    with pytest.raises(InsufficientStock) as raised:
        ot.ordering.place_order(order_of(("TEA-1", 2), ("CUP-1", 2), total=300), customer())
    assert raised.value.code == "inventory.insufficient_stock"
    assert raised.value.details == {"sku": "CUP-1", "requested": 2, "available": 1}
    assert heads(ot) == before
    assert ot.inventory.stock_level("TEA-1").available == 10


@pytest.mark.parametrize(
    "breaking",
    [
        lambda: order_of(("TEA-1", 1), total=99),  # plan does not add up
        lambda: order_of(("TEA-1", 0), total=0),  # zero quantity
        lambda: order_of(("NOPE", 1), total=100),  # unknown product
        lambda: PlaceOrder(
            "cust-1",
            (LineRequest("TEA-1", 1, "office"),),
            (home(),),
            (PlannedPayment(PaymentMethod.CARD, cny(100)),),
        ),  # unknown group
        lambda: PlaceOrder(
            "cust-1",
            (LineRequest("TEA-1", 1, "home"),),
            (home(), DeliveryGroup("spare", address())),
            (PlannedPayment(PaymentMethod.CARD, cny(100)),),
        ),  # empty group
        lambda: PlaceOrder(
            "cust-1",
            (LineRequest("TEA-1", 1, "home"),),
            (home(),),
            (
                PlannedPayment(PaymentMethod.CASH_ON_DELIVERY, cny(50)),
                PlannedPayment(PaymentMethod.CASH_ON_DELIVERY, cny(50)),
            ),
        ),
        lambda: PlaceOrder(
            "cust-1",
            (LineRequest("TEA-1", 1, "home"),),
            (home(),),
            (PlannedPayment(PaymentMethod.CARD, cny(0)),),
            discounts=(Discount.create("ALL", cny(100)),),
        ),
        lambda: PlaceOrder(
            "cust-1",
            (LineRequest("TEA-1", 1, "home"),),
            (home(),),
            (),
            discounts=(Discount.create("BIG", cny(500)),),
        ),
        lambda: PlaceOrder(
            "",
            (LineRequest("TEA-1", 1, "home"),),
            (home(),),
            (PlannedPayment(PaymentMethod.CARD, cny(100)),),
        ),
        lambda: PlaceOrder("cust-1", (), (home(),), ()),
    ],
)
def test_bad_orders_are_refused_with_a_typed_error_and_write_nothing(
    ot: Ordertrail, breaking: Callable[[], PlaceOrder]
) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    before = heads(ot)
    with pytest.raises((InvalidOrder, PaymentPlanMismatch, ProductNotFound)):
        ot.ordering.place_order(breaking(), customer())
    assert heads(ot) == before
    assert ot.inventory.stock_level("TEA-1").available == 10


def test_a_fully_discounted_order_needs_no_payment_and_is_paid_at_once(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    command = PlaceOrder(
        "cust-1",
        (LineRequest("TEA-1", 1, "home"),),
        (home(),),
        (),
        discounts=(Discount.create("FREE", cny(100)),),
    )
    accepted = ot.ordering.place_order(command, customer())
    assert accepted.value.status is OrderStatus.READY_TO_SHIP


def test_shipping_fee_and_discounts_are_explicit_amounts(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 1000, 10)
    command = PlaceOrder(
        "cust-1",
        (LineRequest("TEA-1", 2, "home"),),
        (home(),),
        (
            PlannedPayment(PaymentMethod.WECHAT_PAY, cny(1700)),
            PlannedPayment(PaymentMethod.CASH_ON_DELIVERY, cny(500)),
        ),
        shipping_fee=cny(500),
        discounts=(Discount.create("WELCOME", cny(300)),),
    )
    order = ot.orders.order(ot.ordering.place_order(command, customer()).value.order_id)
    assert (order.subtotal, order.shipping_fee, order.total) == (cny(2000), cny(500), cny(2200))
    assert [p.method for p in order.payments.values()] == [
        PaymentMethod.WECHAT_PAY,
        PaymentMethod.CASH_ON_DELIVERY,
    ]


def test_delisted_products_cannot_be_ordered(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    ot.catalog.delist_product(DelistProduct("TEA-1", "recalled"), staff())
    with pytest.raises(ProductNotListed):
        ot.ordering.place_order(order_of(("TEA-1", 1), total=100), customer())


def test_one_order_can_ship_to_several_addresses(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    command = PlaceOrder(
        "cust-1",
        (LineRequest("TEA-1", 2, "home"), LineRequest("TEA-1", 3, "parents")),
        (home(), DeliveryGroup("parents", address(city="Hangzhou"))),
        (PlannedPayment(PaymentMethod.CARD, cny(500)),),
    )
    order = ot.orders.order(ot.ordering.place_order(command, customer()).value.order_id)
    assert [(g.group_id, g.address.city) for g in order.delivery_groups] == [
        ("home", "Shanghai"),
        ("parents", "Hangzhou"),
    ]
    assert ot.inventory.stock_level("TEA-1").reserved == 5


def test_reservations_come_from_warehouses_that_serve_each_delivery_group(
    make_ot: Callable[..., Ordertrail],
) -> None:
    ot = make_ot(
        Config(
            warehouses=(
                Warehouse("sh", frozenset({"CN"}), priority=10),
                Warehouse("hk", frozenset({"HK", "CN"}), priority=20),
                Warehouse("eu", frozenset({"DE", "FR"}), priority=10),
            )
        )
    )
    stocked_product(ot, "TEA-1", 100, 2, warehouse="sh")
    from ordertrail.application.inventory import ReceiveStock

    ot.inventory.receive_stock(ReceiveStock("TEA-1", 5, "hk"), staff())
    ot.inventory.receive_stock(ReceiveStock("TEA-1", 5, "eu"), staff())
    command = PlaceOrder(
        "cust-1",
        (LineRequest("TEA-1", 3, "home"), LineRequest("TEA-1", 1, "berlin")),
        (home("CN"), DeliveryGroup("berlin", address("DE", "Berlin"))),
        (PlannedPayment(PaymentMethod.CARD, cny(400)),),
    )
    order = ot.orders.order(ot.ordering.place_order(command, customer()).value.order_id)
    # Shanghai (preferred for CN) has only 2 of the 3, so the whole group ships from HK.
    assert [(line.delivery_group, line.warehouse) for line in order.lines] == [
        ("home", "hk"),
        ("berlin", "eu"),
    ]
    assert ot.inventory.stock_level("TEA-1", "sh").reserved == 0
    assert ot.inventory.stock_level("TEA-1", "hk").reserved == 3
    assert ot.inventory.stock_level("TEA-1", "eu").reserved == 1
    with pytest.raises(NoWarehouseServes):
        ot.ordering.place_order(
            order_of(("TEA-1", 1), total=100, group=DeliveryGroup("x", address("US"))), customer()
        )


def test_placing_is_idempotent_per_command_id(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    ctx = customer()
    command = order_of(("TEA-1", 2), total=200)
    first = ot.ordering.place_order(command, ctx)
    before = heads(ot)
    again = ot.ordering.place_order(command, ctx)
    assert again.replayed
    assert again.value == first.value
    assert heads(ot) == before
    assert first.value.order_id == ids.order_id(ctx.command_id)
    assert ot.inventory.stock_level("TEA-1").reserved == 2
    with pytest.raises(CommandIdReused):
        ot.ordering.place_order(order_of(("TEA-1", 3), total=300), ctx)


def test_every_event_records_actor_correlation_and_causation(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 10)
    ctx = customer("cust-9")
    accepted = ot.ordering.place_order(order_of(("TEA-1", 1), total=100, customer_id="cust-9"), ctx)
    events = list(ot.orders.events.get(accepted.value.order_id))
    item_events = list(ot.inventory.events.get(ids.inventory_item_id("TEA-1", "main")))
    reserved = [e for e in item_events if isinstance(e, InventoryItem.StockReserved)]
    assert isinstance(events[0], Order.Placed)
    for event in [events[0], *reserved]:
        assert str(event.meta.actor) == "customer:cust-9"
        assert event.meta.correlation_id == ctx.command_id
        assert event.meta.causation_id == ctx.command_id
