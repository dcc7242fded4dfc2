"""Identifiers derived from business keys and command ids (uuid5).

A retried command derives the same ids, so it finds its own earlier result instead of
doing the work twice; a business key (a SKU) maps to exactly one aggregate.
The namespaces are part of the stored data: never change them.
"""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6a1c3b0e-8f43-5c0e-9d0a-0b7e3c4f1a2d")
_PRODUCT = uuid5(NAMESPACE, "catalog.product")
_INVENTORY_ITEM = uuid5(NAMESPACE, "inventory.item")
_ORDER = uuid5(NAMESPACE, "orders.order")
_PAYMENT = uuid5(NAMESPACE, "orders.payment")


def product_id(sku: str) -> UUID:
    """The one Product id for a SKU; registering a SKU twice collides on it."""
    return uuid5(_PRODUCT, sku)


def inventory_item_id(sku: str, warehouse: str) -> UUID:
    return uuid5(_INVENTORY_ITEM, f"{warehouse}\x1f{sku}")


def order_id(place_command_id: UUID) -> UUID:
    """The id of the order that a place-order command creates."""
    return uuid5(_ORDER, str(place_command_id))


def payment_id(order: UUID, index: int) -> UUID:
    return uuid5(_PAYMENT, f"{order}\x1f{index}")
