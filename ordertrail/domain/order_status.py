"""Where an order stands, and which statuses allow what."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # placed; online payment or COD confirmation due
    PAID = "paid"  # every online payment captured in full, nothing on delivery
    COD_CONFIRMED = "cod_confirmed"  # online part captured, cash on delivery confirmed
    READY_TO_SHIP = "ready_to_ship"  # released to fulfilment
    PARTIALLY_SHIPPED = "partially_shipped"  # some units are with a carrier or delivered
    SHIPPED = "shipped"  # every unit is with a carrier or delivered
    DELIVERED = "delivered"  # every unit delivered
    COMPLETED = "completed"  # the after-sales window has closed
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not paid in time

    @property
    def is_terminal(self) -> bool:
        """No status follows a terminal one."""
        return self in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.COMPLETED)

    @property
    def ended_unfulfilled(self) -> bool:
        return self in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


FULFILMENT = frozenset(
    {
        OrderStatus.READY_TO_SHIP,
        OrderStatus.PARTIALLY_SHIPPED,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
    }
)


CANCELLABLE = frozenset(
    {
        OrderStatus.AWAITING_PAYMENT,
        OrderStatus.PAID,
        OrderStatus.COD_CONFIRMED,
        OrderStatus.READY_TO_SHIP,
    }
)
