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


_CARRIER_ACCOUNT = uuid5(NAMESPACE, "logistics.carrier-account")
_TRACKING_NUMBER = uuid5(NAMESPACE, "logistics.tracking-number")
_SHIPMENT = uuid5(NAMESPACE, "logistics.shipment")
_CASE = uuid5(NAMESPACE, "aftersales.case")
_RETURN_LEDGER = uuid5(NAMESPACE, "aftersales.return-ledger")
_ARTICLE = uuid5(NAMESPACE, "knowledge.article")


def carrier_account_id(carrier: str) -> UUID:
    return uuid5(_CARRIER_ACCOUNT, carrier)


def tracking_number_id(carrier: str, tracking_number: str) -> UUID:
    """The one index entry of a carrier's tracking number, pointing at its shipment."""
    return uuid5(_TRACKING_NUMBER, f"{carrier}\x1f{tracking_number}")


def shipment_id(create_command_id: UUID) -> UUID:
    return uuid5(_SHIPMENT, str(create_command_id))


def case_id(request_command_id: UUID) -> UUID:
    return uuid5(_CASE, str(request_command_id))


def return_ledger_id(order: UUID) -> UUID:
    return uuid5(_RETURN_LEDGER, str(order))


def article_id(draft_command_id: UUID) -> UUID:
    return uuid5(_ARTICLE, str(draft_command_id))


_CART = uuid5(NAMESPACE, "carts.cart")


def cart_id(open_command_id: UUID) -> UUID:
    return uuid5(_CART, str(open_command_id))


def checkout_command_id(cart: UUID) -> UUID:
    """The place-order command of a cart's checkout: one order per cart, however often
    checkout is retried."""
    return uuid5(_CART, f"{cart}\x1fcheckout")
