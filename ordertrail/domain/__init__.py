"""The domain model: aggregates, their events, value objects and domain errors.

Imports only the standard library and ``eventsourcing``; does no I/O and reads no clock
(commands are given ``now``).
"""

from ordertrail.domain.catalog import Product
from ordertrail.domain.errors import DomainError, ErrorKind
from ordertrail.domain.inventory import (
    AdjustmentReason,
    InventoryItem,
    ReleaseReason,
    Reservation,
)
from ordertrail.domain.meta import Actor, ActorKind, EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address, DeliveryGroup, Discount, OrderLine
from ordertrail.domain.orders import AbandonedPlacement, Order, OrderStatus
from ordertrail.domain.payments import Payment, PaymentMethod, PaymentState, PlannedPayment

__all__ = [
    "AbandonedPlacement",
    "Actor",
    "ActorKind",
    "Address",
    "AdjustmentReason",
    "DeliveryGroup",
    "Discount",
    "DomainError",
    "ErrorKind",
    "EventMeta",
    "InventoryItem",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Payment",
    "PaymentMethod",
    "PaymentState",
    "PlannedPayment",
    "Product",
    "ReleaseReason",
    "Reservation",
]
