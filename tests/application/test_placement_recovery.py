"""Place-order stays consistent if the process dies between any two of its steps:
no stock stays reserved for an order that will never exist, no order exists without
its stock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ordertrail.application.ordering import CancelOrder
from ordertrail.application.system import Ordertrail
from ordertrail.domain import AbandonedPlacement, ids
from ordertrail.domain.errors import PlacementAbandoned
from ordertrail.domain.orders import Order
from tests.support.builders import customer, order_of, stocked_product
from tests.support.clock import FakeClock


class Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` handler runs."""


def crash_at(step: str):
    def crashpoint(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    return crashpoint


@pytest.fixture
def stocked(ot: Ordertrail) -> Ordertrail:
    stocked_product(ot, "TEA-1", 100, 10)
    stocked_product(ot, "CUP-1", 50, 10)
    return ot


def reserved(ot: Ordertrail) -> tuple[int, int]:
    return (ot.inventory.stock_level("TEA-1").reserved, ot.inventory.stock_level("CUP-1").reserved)


def test_a_retry_after_dying_between_reserving_and_recording_completes_the_order(
    stocked: Ordertrail,
) -> None:
    ot = stocked
    ctx = customer()
    command = order_of(("TEA-1", 2), ("CUP-1", 1), total=250)
    ot.ordering.crashpoint = crash_at("reserved")
    with pytest.raises(Crash):
        ot.ordering.place_order(command, ctx)
    assert reserved(ot) == (2, 1)
    assert ot.orders.find(ids.order_id(ctx.command_id)) is None
    ot.ordering.crashpoint = crash_at("never")
    accepted = ot.ordering.place_order(command, ctx)
    assert not accepted.replayed
    assert reserved(ot) == (2, 1)  # held once, not twice
    assert isinstance(ot.orders.find(accepted.value.order_id), Order)


def test_an_orphaned_reservation_is_released_after_the_grace_period(
    stocked: Ordertrail, clock: FakeClock
) -> None:
    ot = stocked
    ctx = customer()
    command = order_of(("TEA-1", 2), ("CUP-1", 1), total=250)
    ot.ordering.crashpoint = crash_at("reserved")
    with pytest.raises(Crash):
        ot.ordering.place_order(command, ctx)
    ot.ordering.crashpoint = crash_at("never")
    ot.run_processes()
    assert reserved(ot) == (2, 1)  # the placement might still be running
    clock.advance(ot.config.placement_grace + timedelta(seconds=1))
    ot.run_processes()
    assert reserved(ot) == (0, 0)
    assert isinstance(ot.orders.find(ids.order_id(ctx.command_id)), AbandonedPlacement)
    with pytest.raises(PlacementAbandoned):
        ot.ordering.place_order(command, ctx)
    assert reserved(ot) == (0, 0)


def test_the_reaper_never_releases_the_stock_of_an_order_that_exists(
    stocked: Ordertrail, clock: FakeClock
) -> None:
    ot = stocked
    ot.ordering.crashpoint = crash_at("recorded")  # dies after recording, before replying
    ctx = customer()
    command = order_of(("TEA-1", 3), total=300)
    with pytest.raises(Crash):
        ot.ordering.place_order(command, ctx)
    ot.ordering.crashpoint = crash_at("never")
    clock.advance(ot.config.placement_grace + timedelta(seconds=1))
    ot.run_processes()
    assert reserved(ot) == (3, 0)
    assert ot.ordering.place_order(command, ctx).replayed


def test_a_placement_that_outlives_its_grace_period_loses_to_the_reaper(
    stocked: Ordertrail, clock: FakeClock
) -> None:
    """The slow placement and the reaper race on the order id; the reaper wins here, so
    the placement must fail and must not leave an order without stock."""
    ot = stocked
    ctx = customer()

    def reaper_runs_meanwhile(step: str) -> None:
        if step == "reserved":
            clock.advance(ot.config.placement_grace + timedelta(seconds=1))
            ot.run_processes()

    ot.ordering.crashpoint = reaper_runs_meanwhile
    with pytest.raises(PlacementAbandoned):
        ot.ordering.place_order(order_of(("TEA-1", 2), total=200), ctx)
    assert reserved(ot) == (0, 0)
    assert isinstance(ot.orders.find(ids.order_id(ctx.command_id)), AbandonedPlacement)


def test_stock_of_a_cancelled_order_is_released_even_if_the_canceller_died(
    stocked: Ordertrail,
) -> None:
    ot = stocked
    order = ot.ordering.place_order(order_of(("TEA-1", 2), total=200), customer()).value
    original_release = ot.inventory.release_for_order

    def dies(*args: object, **kwargs: object) -> None:
        raise Crash("released")

    ot.inventory.release_for_order = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):
        ot.ordering.cancel_order(CancelOrder(order.order_id, "changed mind"), customer())
    ot.inventory.release_for_order = original_release  # type: ignore[method-assign]
    assert reserved(ot) == (2, 0)
    ot.run_processes()
    assert reserved(ot) == (0, 0)
