from __future__ import annotations

import pytest

from ordertrail.application.inventory import AdjustStock, ReceiveStock
from ordertrail.application.system import Ordertrail
from ordertrail.domain import AdjustmentReason
from ordertrail.domain.errors import (
    AdjustmentBelowReserved,
    InvalidQuantity,
    UnknownWarehouse,
)
from tests.support.builders import customer, heads, order_of, staff, stocked_product


def test_receiving_and_adjusting_stock(ot: Ordertrail) -> None:
    ot.inventory.receive_stock(ReceiveStock("TEA-1", 10, reference="PO-1"), staff())
    level = ot.inventory.adjust_stock(
        AdjustStock("TEA-1", -2, AdjustmentReason.DAMAGED, note="crushed box"), staff()
    ).value
    assert (level.on_hand, level.reserved, level.available) == (8, 0, 8)


def test_an_adjustment_may_not_take_stock_below_what_is_reserved(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 100, 5)
    ot.ordering.place_order(order_of(("TEA-1", 4), total=400), customer())
    before = heads(ot)
    with pytest.raises(AdjustmentBelowReserved) as raised:
        ot.inventory.adjust_stock(AdjustStock("TEA-1", -2, AdjustmentReason.LOST), staff())
    assert raised.value.details["reserved"] == 4
    assert heads(ot) == before
    assert ot.inventory.stock_level("TEA-1").available == 1


@pytest.mark.parametrize("quantity", [0, -1, 10**9])
def test_receipts_need_a_sensible_positive_quantity(ot: Ordertrail, quantity: int) -> None:
    before = heads(ot)
    with pytest.raises(InvalidQuantity):
        ot.inventory.receive_stock(ReceiveStock("TEA-1", quantity), staff())
    assert heads(ot) == before


def test_stock_goes_only_to_configured_warehouses(ot: Ordertrail) -> None:
    with pytest.raises(UnknownWarehouse):
        ot.inventory.receive_stock(ReceiveStock("TEA-1", 1, warehouse="moon"), staff())


def test_unknown_adjustment_reasons_are_refused(ot: Ordertrail) -> None:
    ot.inventory.receive_stock(ReceiveStock("TEA-1", 3), staff())
    with pytest.raises(InvalidQuantity):
        ot.inventory.adjust_stock(AdjustStock("TEA-1", -1, "whim"), staff())  # type: ignore[arg-type]
