"""Domain errors: one hierarchy, each with a stable machine-readable code.

Outer layers map ``code`` (never the message) to transport concerns such as HTTP
status codes. Codes are part of the public contract: never rename one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorKind(StrEnum):
    """The coarse category of an error, for a default mapping when a code has none."""

    INVALID = "invalid"  # the request itself is malformed or breaks a rule
    NOT_FOUND = "not_found"  # the thing it names does not exist
    CONFLICT = "conflict"  # the request is fine but the current state forbids it
    REJECTED = "rejected"  # a business limit says no (stock, amounts)


class DomainError(Exception):
    """Base of every error the domain and application layers raise on purpose."""

    code: ClassVar[str] = "domain.error"
    kind: ClassVar[ErrorKind] = ErrorKind.INVALID

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidValue(DomainError):
    """A value object was given something it cannot represent."""

    code = "value.invalid"


class CurrencyMismatch(DomainError):
    code = "money.currency_mismatch"


# --- catalog -----------------------------------------------------------------------------


class InvalidProduct(DomainError):
    code = "catalog.invalid_product"


class ProductNotFound(DomainError):
    code = "catalog.product_not_found"
    kind = ErrorKind.NOT_FOUND


class SkuAlreadyRegistered(DomainError):
    code = "catalog.sku_taken"
    kind = ErrorKind.CONFLICT


class ProductNotListed(DomainError):
    code = "catalog.product_not_listed"
    kind = ErrorKind.CONFLICT


class ProductAlreadyInState(DomainError):
    code = "catalog.no_change"
    kind = ErrorKind.CONFLICT


# --- inventory ---------------------------------------------------------------------------


class InvalidQuantity(DomainError):
    code = "inventory.invalid_quantity"


class InsufficientStock(DomainError):
    code = "inventory.insufficient_stock"
    kind = ErrorKind.REJECTED


class AdjustmentBelowReserved(DomainError):
    code = "inventory.adjustment_below_reserved"
    kind = ErrorKind.REJECTED


class ReservationConflict(DomainError):
    code = "inventory.reservation_conflict"
    kind = ErrorKind.CONFLICT


class ReservationNotFound(DomainError):
    code = "inventory.reservation_not_found"
    kind = ErrorKind.CONFLICT


class InventoryItemNotFound(DomainError):
    code = "inventory.item_not_found"
    kind = ErrorKind.NOT_FOUND


class UnknownWarehouse(DomainError):
    code = "inventory.unknown_warehouse"


class NoWarehouseServes(DomainError):
    code = "inventory.no_warehouse_serves"
    kind = ErrorKind.REJECTED


# --- orders ------------------------------------------------------------------------------


class InvalidOrder(DomainError):
    code = "order.invalid"


class PaymentPlanMismatch(DomainError):
    code = "order.payment_plan_mismatch"


class OrderNotFound(DomainError):
    code = "order.not_found"
    kind = ErrorKind.NOT_FOUND


class OrderNotCancellable(DomainError):
    code = "order.not_cancellable"
    kind = ErrorKind.CONFLICT


class OrderNotPayable(DomainError):
    code = "order.not_payable"
    kind = ErrorKind.CONFLICT


class OrderNotExpirable(DomainError):
    code = "order.not_expirable"
    kind = ErrorKind.CONFLICT


class InvalidOrderTransition(DomainError):
    code = "order.invalid_transition"
    kind = ErrorKind.CONFLICT


class PaymentNotFound(DomainError):
    code = "order.payment_not_found"
    kind = ErrorKind.NOT_FOUND


class InvalidPaymentTransition(DomainError):
    code = "payment.invalid_transition"
    kind = ErrorKind.CONFLICT


class CaptureExceedsAmount(DomainError):
    code = "payment.capture_exceeds_amount"
    kind = ErrorKind.REJECTED


class RefundExceedsCaptured(DomainError):
    code = "payment.refund_exceeds_captured"
    kind = ErrorKind.REJECTED


class PlacementAbandoned(DomainError):
    """The order's placement was abandoned (it did not finish in time) and cannot resume."""

    code = "order.placement_abandoned"
    kind = ErrorKind.CONFLICT


# --- logistics ---------------------------------------------------------------------------


class InvalidShipment(DomainError):
    code = "logistics.invalid_shipment"


class ShipmentNotFound(DomainError):
    code = "logistics.shipment_not_found"
    kind = ErrorKind.NOT_FOUND


class ShipmentExceedsOrder(DomainError):
    """A parcel would carry more of a line than was ordered and not yet shipped."""

    code = "logistics.exceeds_ordered"
    kind = ErrorKind.REJECTED


class InvalidShipmentTransition(DomainError):
    code = "logistics.invalid_transition"
    kind = ErrorKind.CONFLICT


class CashOnDeliveryMismatch(DomainError):
    code = "logistics.cod_amount_mismatch"
    kind = ErrorKind.REJECTED


class RemittanceExceedsCollected(DomainError):
    code = "logistics.remittance_exceeds_collected"
    kind = ErrorKind.REJECTED


class UnknownCarrier(DomainError):
    code = "logistics.unknown_carrier"


class NoCarrierAvailable(DomainError):
    code = "logistics.no_carrier_available"
    kind = ErrorKind.REJECTED


# --- after-sales -------------------------------------------------------------------------


class InvalidCase(DomainError):
    code = "aftersales.invalid_case"


class CaseNotFound(DomainError):
    code = "aftersales.case_not_found"
    kind = ErrorKind.NOT_FOUND


class InvalidCaseTransition(DomainError):
    code = "aftersales.invalid_transition"
    kind = ErrorKind.CONFLICT


class ReturnExceedsDelivered(DomainError):
    """More would come back than was delivered and not already returned."""

    code = "aftersales.exceeds_delivered"
    kind = ErrorKind.REJECTED


class AfterSalesWindowClosed(DomainError):
    code = "aftersales.window_closed"
    kind = ErrorKind.REJECTED


class RefundExceedsCase(DomainError):
    code = "aftersales.refund_exceeds_case"
    kind = ErrorKind.REJECTED


# --- knowledge ---------------------------------------------------------------------------


class InvalidArticle(DomainError):
    code = "knowledge.invalid_article"


class ArticleNotFound(DomainError):
    code = "knowledge.article_not_found"
    kind = ErrorKind.NOT_FOUND


class InvalidArticleTransition(DomainError):
    code = "knowledge.invalid_transition"
    kind = ErrorKind.CONFLICT


# --- carriers ----------------------------------------------------------------------------


class InvalidCarrierNotification(DomainError):
    """A carrier's callback could not be read: not the format its adapter expects."""

    code = "logistics.invalid_notification"


class CarrierSignatureInvalid(DomainError):
    """A carrier's callback is unsigned or its signature does not match its body."""

    code = "logistics.bad_signature"


# --- carts -------------------------------------------------------------------------------


class InvalidCart(DomainError):
    code = "cart.invalid"


class CartNotFound(DomainError):
    code = "cart.not_found"
    kind = ErrorKind.NOT_FOUND


class CartCheckedOut(DomainError):
    code = "cart.checked_out"
    kind = ErrorKind.CONFLICT
