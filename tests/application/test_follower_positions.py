"""A process manager that follows a few topics moves its position past the events it
does not want, up to the log's head when it asked, so that its next poll does not scan
them again; an event it wants that is committed later is still handled (SQLite and
PostgreSQL)."""

from __future__ import annotations

from ordertrail.application.followers import Follower
from ordertrail.application.system import Ordertrail
from tests.support.fulfilment import ready_order, ship
from tests.support.spies import counted


def follower(ot: Ordertrail, name: str) -> Follower:
    return next(f for f in ot.followers if f.name == name)


def test_a_follower_moves_past_what_it_does_not_want(ot: Ordertrail) -> None:
    booker = follower(ot, "parcel-booker")  # follows Order.ShipmentPlanned only
    orders = [ready_order(ot, ("TEA-1", 1)) for _ in range(3)]
    assert booker.run_once() == 0
    assert booker.position() == ot.orders.head()  # not at 0: past every order's events

    selects = counted(ot.orders, "select_notifications")
    assert booker.run_once() == 0
    assert selects[0] == 0  # nothing new: not even a query

    shipment = ship(ot, orders[1].order_id, (1, 1))  # books it, and plans it in the log
    assert booker.run_once() == 1  # the ShipmentPlanned committed after the old head
    assert booker.position() == ot.orders.head()
    assert shipment.tracking_number
