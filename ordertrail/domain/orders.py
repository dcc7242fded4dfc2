"""Orders: what a customer bought, where it goes, how it is paid, and where it stands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import rules
from ordertrail.domain.errors import (
    InvalidOrder,
    InvalidOrderTransition,
    InvalidShipment,
    InvalidValue,
    OrderNotCancellable,
    OrderNotExpirable,
    OrderNotPayable,
    PaymentNotFound,
    RefundExceedsCase,
    ShipmentNotFound,
)
from ordertrail.domain.fulfilment import (
    MAX_PARCEL_WEIGHT_GRAMS,
    ParcelQuantity,
    ParcelRecord,
    ParcelState,
    allocated,
    check_parcel,
    fulfilment_status,
    quantities_in,
)
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money, total
from ordertrail.domain.order_parts import DeliveryGroup, Discount, OrderLine
from ordertrail.domain.order_rules import (
    check_amount,
    check_discounts,
    check_lines_and_groups,
    check_payment_plan,
)
from ordertrail.domain.order_rules import provider_ref as _provider_ref
from ordertrail.domain.order_status import CANCELLABLE, FULFILMENT, OrderStatus
from ordertrail.domain.payments import (
    Payment,
    PaymentMethod,
    PaymentState,
    PlannedPayment,
    ProviderAction,
)

__all__ = ["CANCELLABLE", "FULFILMENT", "AbandonedPlacement", "Order", "OrderStatus"]


def cod_capture_ref(shipment_id: UUID) -> str:
    """The provider reference of the capture of the cash a parcel collected."""
    return f"cod:{shipment_id}"


class Order(Aggregate):
    """One customer order. Its id derives from the id of the command that placed it."""

    TOPIC = "ordertrail.orders:Order"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Placed(Event, Aggregate.Created):
        TOPIC = "ordertrail.orders:Order.Placed"
        class_version = 1
        customer_id: str
        currency: str
        lines: tuple[OrderLine, ...]
        delivery_groups: tuple[DeliveryGroup, ...]
        shipping_fee: Money
        discounts: tuple[Discount, ...]
        subtotal: Money
        total: Money
        payments: tuple[Payment, ...]
        payment_due_at: datetime

    Created = Placed

    class PaymentAuthorized(Event):
        TOPIC = "ordertrail.orders:Order.PaymentAuthorized"
        class_version = 1
        payment_id: UUID
        amount: Money
        provider_ref: str

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.authorized_for(
                self.amount, self.provider_ref
            )

    class PaymentCaptured(Event):
        TOPIC = "ordertrail.orders:Order.PaymentCaptured"
        class_version = 1
        payment_id: UUID
        method: PaymentMethod
        amount: Money
        provider_ref: str

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.captured_more(
                self.amount, self.provider_ref
            )

    class PaymentFailed(Event):
        TOPIC = "ordertrail.orders:Order.PaymentFailed"
        class_version = 1
        payment_id: UUID
        reason: str
        provider_ref: str

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.failed(self.provider_ref)

    class PaymentVoided(Event):
        TOPIC = "ordertrail.orders:Order.PaymentVoided"
        class_version = 1
        payment_id: UUID
        reason: str

        def apply(self, aggregate: Order) -> None:
            aggregate.payments[self.payment_id] = aggregate.payments[self.payment_id].voided()

    class PaymentRefunded(Event):
        TOPIC = "ordertrail.orders:Order.PaymentRefunded"
        class_version = 1
        payment_id: UUID
        amount: Money
        refund_ref: str
        reason: str
        case_id: UUID | None = None  # the after-sales case this refund is for, if any

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.refunded_more(
                self.amount, self.refund_ref
            )
            if self.case_id is not None:
                before = aggregate.case_refunds.get(self.case_id, Money.zero(aggregate.currency))
                aggregate.case_refunds[self.case_id] = before + self.amount

    class PaymentDiscrepancyRecorded(Event):
        """A provider reported an amount this payment does not expect; nothing was
        captured, and staff must look into it."""

        TOPIC = "ordertrail.orders:Order.PaymentDiscrepancyRecorded"
        class_version = 1
        payment_id: UUID
        reported: Money
        expected: Money
        provider_ref: str

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.discrepancy_noted(self.provider_ref)

    class Paid(Event):
        """Every online payment is captured in full and nothing is due on delivery."""

        TOPIC = "ordertrail.orders:Order.Paid"
        class_version = 1
        amount: Money

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.PAID

    class CashOnDeliveryConfirmed(Event):
        """The merchant confirmed the order; its cash part is collected on delivery."""

        TOPIC = "ordertrail.orders:Order.CashOnDeliveryConfirmed"
        class_version = 1
        amount_due_on_delivery: Money

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.COD_CONFIRMED

    class ReleasedToFulfilment(Event):
        TOPIC = "ordertrail.orders:Order.ReleasedToFulfilment"
        class_version = 1

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.READY_TO_SHIP

    class Cancelled(Event):
        TOPIC = "ordertrail.orders:Order.Cancelled"
        class_version = 1
        reason: str
        previous_status: OrderStatus

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.CANCELLED

    class Expired(Event):
        TOPIC = "ordertrail.orders:Order.Expired"
        class_version = 1
        payment_due_at: datetime

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.EXPIRED

    # --- fulfilment (from the logistics context) ------------------------------------------

    class ShipmentPlanned(Event):
        """Units of one delivery group were allocated to a parcel."""

        TOPIC = "ordertrail.orders:Order.ShipmentPlanned"
        class_version = 1
        shipment_id: UUID
        delivery_group: str
        lines: tuple[ParcelQuantity, ...]
        carrier: str
        weight_grams: int
        cod_amount: Money | None  # cash this parcel collects on delivery

        def apply(self, aggregate: Order) -> None:
            aggregate.parcels[self.shipment_id] = ParcelRecord(
                self.shipment_id,
                self.delivery_group,
                self.lines,
                self.carrier,
                self.weight_grams,
                self.cod_amount,
            )

    class ShipmentDispatched(Event):
        TOPIC = "ordertrail.orders:Order.ShipmentDispatched"
        class_version = 1
        shipment_id: UUID
        carrier: str
        tracking_number: str
        status: OrderStatus  # the order's status once this parcel left

        def apply(self, aggregate: Order) -> None:
            parcel = aggregate.parcels[self.shipment_id]
            aggregate.parcels[self.shipment_id] = replace(
                parcel,
                state=ParcelState.DISPATCHED,
                tracking_number=self.tracking_number,
            )
            aggregate.status = self.status

    class ShipmentDelivered(Event):
        TOPIC = "ordertrail.orders:Order.ShipmentDelivered"
        class_version = 1
        shipment_id: UUID
        delivered_at: datetime
        status: OrderStatus

        def apply(self, aggregate: Order) -> None:
            parcel = aggregate.parcels[self.shipment_id]
            aggregate.parcels[self.shipment_id] = replace(
                parcel, state=ParcelState.DELIVERED, delivered_at=self.delivered_at
            )
            aggregate.status = self.status

    class ShipmentReturned(Event):
        """A parcel came back undelivered (refused, undeliverable): its units may ship again."""

        TOPIC = "ordertrail.orders:Order.ShipmentReturned"
        class_version = 1
        shipment_id: UUID
        reason: str
        status: OrderStatus

        def apply(self, aggregate: Order) -> None:
            parcel = aggregate.parcels[self.shipment_id]
            aggregate.parcels[self.shipment_id] = replace(parcel, state=ParcelState.RETURNED)
            aggregate.status = self.status

    class ShipmentCancelled(Event):
        TOPIC = "ordertrail.orders:Order.ShipmentCancelled"
        class_version = 1
        shipment_id: UUID
        reason: str

        def apply(self, aggregate: Order) -> None:
            parcel = aggregate.parcels[self.shipment_id]
            aggregate.parcels[self.shipment_id] = replace(parcel, state=ParcelState.CANCELLED)

    class Completed(Event):
        """The after-sales window closed on a delivered order."""

        TOPIC = "ordertrail.orders:Order.Completed"
        class_version = 1
        delivered_at: datetime

        def apply(self, aggregate: Order) -> None:
            aggregate.status = OrderStatus.COMPLETED

    def __init__(
        self,
        *,
        customer_id: str,
        currency: str,
        lines: tuple[OrderLine, ...],
        delivery_groups: tuple[DeliveryGroup, ...],
        shipping_fee: Money,
        discounts: tuple[Discount, ...],
        subtotal: Money,
        total: Money,
        payments: tuple[Payment, ...],
        payment_due_at: datetime,
    ) -> None:
        self.customer_id = customer_id
        self.currency = currency
        self.lines = lines
        self.delivery_groups = delivery_groups
        self.shipping_fee = shipping_fee
        self.discounts = discounts
        self.subtotal = subtotal
        self.total = total
        self.payments: dict[UUID, Payment] = {p.payment_id: p for p in payments}
        self.payment_due_at = payment_due_at
        self.status = OrderStatus.AWAITING_PAYMENT
        self.parcels: dict[UUID, ParcelRecord] = {}
        self.case_refunds: dict[UUID, Money] = {}

    # --- placing -------------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        customer_id: str,
        lines: Sequence[OrderLine],
        delivery_groups: Sequence[DeliveryGroup],
        shipping_fee: Money,
        discounts: Sequence[Discount],
        payment_plan: Sequence[PlannedPayment],
        payment_due_at: datetime,
        meta: EventMeta,
        now: datetime,
        auto_release: bool = True,
    ) -> Order:
        """Place an order whose lines are already priced from the catalog.

        Checks that every line belongs to a delivery group, that the amounts are in one
        currency, and that the payment plan adds up to the total (``placement_terms``).
        """
        terms = cls.placement_terms(
            order_id=order_id,
            customer_id=customer_id,
            lines=lines,
            delivery_groups=delivery_groups,
            shipping_fee=shipping_fee,
            discounts=discounts,
            payment_plan=payment_plan,
            payment_due_at=payment_due_at,
            now=now,
        )
        order = cls._create(cls.Placed, id=order_id, timestamp=now, meta=meta, **terms)
        order._settle(meta=meta, now=now, auto_release=auto_release)
        return order

    @classmethod
    def placement_terms(
        cls,
        *,
        order_id: UUID,
        customer_id: str,
        lines: Sequence[OrderLine],
        delivery_groups: Sequence[DeliveryGroup],
        shipping_fee: Money,
        discounts: Sequence[Discount],
        payment_plan: Sequence[PlannedPayment],
        payment_due_at: datetime,
        now: datetime,
    ) -> dict[str, object]:
        """Every rule of a placement, checked without creating the order (a caller can
        refuse a bad order early and cheaply); the ``Placed`` event's fields."""
        customer = rules.code(customer_id, "customer id", error=InvalidOrder)
        checked_lines, groups = check_lines_and_groups(lines, delivery_groups)
        currency = checked_lines[0].unit_price.currency
        fee = check_amount(shipping_fee, currency, "shipping fee")
        reductions = check_discounts(discounts, currency)
        try:
            subtotal = total([line.line_total for line in checked_lines], currency)
            discount_total = total([d.amount for d in reductions], currency)
            grand_total = subtotal + fee - discount_total
        except InvalidValue:
            raise InvalidOrder("the order amount is out of range", field="lines") from None
        if grand_total.amount < 0:
            raise InvalidOrder("discounts exceed the order amount", field="discounts")
        payments = check_payment_plan(order_id, payment_plan, grand_total)
        if payment_due_at <= now:
            raise InvalidOrder("the payment deadline must be in the future", field="payment_due_at")
        return {
            "customer_id": customer,
            "currency": currency,
            "lines": checked_lines,
            "delivery_groups": groups,
            "shipping_fee": fee,
            "discounts": reductions,
            "subtotal": subtotal,
            "total": grand_total,
            "payments": payments,
            "payment_due_at": payment_due_at,
        }

    # --- payments ------------------------------------------------------------------------

    def authorize_payment(
        self,
        payment_id: UUID,
        amount: Money,
        *,
        provider_ref: str = "",
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """A provider holds funds. The same provider reference twice records nothing."""
        payment = self._payment(payment_id)
        ref = _provider_ref(provider_ref)
        if payment.has_seen(ProviderAction.AUTHORIZE, ref):
            return False
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            raise OrderNotPayable(
                f"a {self.status.value} order takes no new authorizations", status=self.status.value
            )
        self._check_currency(amount)
        payment.check_authorize(amount)
        self.trigger_event(
            self.PaymentAuthorized,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            amount=amount,
            provider_ref=ref,
        )
        return True

    def capture_payment(
        self,
        payment_id: UUID,
        amount: Money,
        *,
        provider_ref: str = "",
        meta: EventMeta,
        now: datetime,
        auto_release: bool = True,
    ) -> bool:
        """Money was taken. Recorded even on a cancelled or expired order (it is then owed
        back, see ``refund_due``); the same provider reference twice records nothing."""
        payment = self._payment(payment_id)
        ref = _provider_ref(provider_ref)
        if payment.has_seen(ProviderAction.CAPTURE, ref):
            return False
        self._check_currency(amount)
        payment.check_capture(amount)
        self.trigger_event(
            self.PaymentCaptured,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            method=payment.method,
            amount=amount,
            provider_ref=ref,
        )
        self._settle(meta=meta, now=now, auto_release=auto_release)
        return True

    def record_payment_discrepancy(
        self,
        payment_id: UUID,
        reported: Money,
        *,
        provider_ref: str,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """Keep a record of a provider notification whose amount does not match what the
        payment expects (it is refused, not captured). Once per provider reference."""
        payment = self._payment(payment_id)
        ref = _provider_ref(provider_ref)
        if payment.has_seen(ProviderAction.DISCREPANCY, ref):
            return False
        self.trigger_event(
            self.PaymentDiscrepancyRecorded,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            reported=reported,
            expected=payment.uncaptured,
            provider_ref=ref,
        )
        return True

    def fail_payment(
        self,
        payment_id: UUID,
        reason: str,
        *,
        provider_ref: str = "",
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        payment = self._payment(payment_id)
        ref = _provider_ref(provider_ref)
        if payment.has_seen(ProviderAction.FAIL, ref):
            return False
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        payment.check_fail()
        self.trigger_event(
            self.PaymentFailed,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            reason=why,
            provider_ref=ref,
        )
        return True

    def void_payment(
        self, payment_id: UUID, reason: str, *, meta: EventMeta, now: datetime
    ) -> None:
        payment = self._payment(payment_id)
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        payment.check_void()
        self.trigger_event(
            self.PaymentVoided, timestamp=now, meta=meta, payment_id=payment_id, reason=why
        )

    def refund_payment(
        self,
        payment_id: UUID,
        amount: Money,
        *,
        refund_ref: str,
        reason: str,
        meta: EventMeta,
        now: datetime,
        for_case: UUID | None = None,
        case_limit: Money | None = None,
    ) -> bool:
        """Give money back, never more than was captured. A refund reference counts once.

        A refund for an after-sales case also stays within ``case_limit`` across all the
        case's refunds: the order is where both ceilings are decided, so concurrent refunds
        for one case cannot both pass."""
        payment = self._payment(payment_id)
        ref = rules.text(refund_ref, "refund reference", max_length=200, error=InvalidOrder)
        if payment.has_seen(ProviderAction.REFUND, ref):
            return False
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        self._check_currency(amount)
        payment.check_refund(amount)
        if for_case is not None:
            self._check_case_refund(for_case, amount, case_limit)
        self.trigger_event(
            self.PaymentRefunded,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            amount=amount,
            refund_ref=ref,
            reason=why,
            case_id=for_case,
        )
        return True

    def _check_case_refund(self, case_id: UUID, amount: Money, limit: Money | None) -> None:
        if limit is None:
            raise InvalidOrder("a refund for a case needs the case's limit", field="case_limit")
        self._check_currency(limit)
        already = self.case_refunds.get(case_id, Money.zero(self.currency))
        if already + amount > limit:
            raise RefundExceedsCase(
                f"case {case_id} may refund {limit.amount} in all; {already.amount} refunded",
                case_id=str(case_id),
                requested=amount.amount,
                refundable=(limit - already).amount,
            )

    def confirm_cash_on_delivery(
        self, *, meta: EventMeta, now: datetime, auto_release: bool = True
    ) -> None:
        """The merchant confirms a COD order (after its online part, if any, is captured)."""
        cod = self.cod_payment()
        if cod is None:
            raise InvalidOrderTransition("this order has no cash-on-delivery payment")
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            raise InvalidOrderTransition(
                f"a {self.status.value} order cannot be confirmed", status=self.status.value
            )
        if not self._online_part_captured():
            raise InvalidOrderTransition(
                "the online part of the payment must be captured before confirming COD"
            )
        self.trigger_event(
            self.CashOnDeliveryConfirmed,
            timestamp=now,
            meta=meta,
            amount_due_on_delivery=cod.uncaptured,
        )
        if auto_release:
            self.release_to_fulfilment(meta=meta, now=now)

    def _payment(self, payment_id: UUID) -> Payment:
        try:
            return self.payments[payment_id]
        except KeyError:
            raise PaymentNotFound(
                f"order has no payment {payment_id}", payment_id=str(payment_id)
            ) from None

    def cod_payment(self) -> Payment | None:
        for payment in self.payments.values():
            if payment.method is PaymentMethod.CASH_ON_DELIVERY:
                return payment
        return None

    def _online_part_captured(self) -> bool:
        return self.is_paid

    def _check_currency(self, amount: Money) -> None:
        if not isinstance(amount, Money) or amount.currency != self.currency:
            raise InvalidOrder(f"amounts on this order are in {self.currency}", field="amount")

    def _settle(self, *, meta: EventMeta, now: datetime, auto_release: bool) -> None:
        """Record ``Paid`` once every online payment is captured and nothing is due on delivery."""
        if (
            self.status is OrderStatus.AWAITING_PAYMENT
            and self.cod_payment() is None
            and self._online_part_captured()
        ):
            self.trigger_event(
                self.Paid, timestamp=now, meta=meta, amount=self.captured - self.refunded
            )
            if auto_release:
                self.release_to_fulfilment(meta=meta, now=now)

    def _void_authorizations(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        for payment in list(self.payments.values()):
            if payment.state is PaymentState.AUTHORIZED:
                self.trigger_event(
                    self.PaymentVoided,
                    timestamp=now,
                    meta=meta,
                    payment_id=payment.payment_id,
                    reason=reason,
                )

    # --- lifecycle -----------------------------------------------------------------------

    def release_to_fulfilment(self, *, meta: EventMeta, now: datetime) -> None:
        if self.status not in (OrderStatus.PAID, OrderStatus.COD_CONFIRMED):
            raise InvalidOrderTransition(
                f"a {self.status.value} order cannot be released to fulfilment",
                status=self.status.value,
            )
        self.trigger_event(self.ReleasedToFulfilment, timestamp=now, meta=meta)

    def cancel(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        """Cancel before shipping. Authorizations are voided; captured money becomes refund due."""
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        if self.status not in CANCELLABLE:
            raise OrderNotCancellable(
                f"a {self.status.value} order cannot be cancelled", status=self.status.value
            )
        if any(parcel.state.holds_units for parcel in self.parcels.values()):
            raise OrderNotCancellable(
                "cancel its parcels first: some of the order is booked, shipped or delivered",
                status=self.status.value,
            )
        self.trigger_event(
            self.Cancelled, timestamp=now, meta=meta, reason=why, previous_status=self.status
        )
        self._void_authorizations("order cancelled", meta=meta, now=now)

    def expire(self, *, meta: EventMeta, now: datetime) -> None:
        """An unpaid order whose payment deadline has passed ends; its stock is released."""
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            raise OrderNotExpirable(
                f"a {self.status.value} order does not expire", status=self.status.value
            )
        if now < self.payment_due_at:
            raise OrderNotExpirable(
                "the payment deadline has not passed",
                payment_due_at=self.payment_due_at.isoformat(),
            )
        self.trigger_event(
            self.Expired, timestamp=now, meta=meta, payment_due_at=self.payment_due_at
        )
        self._void_authorizations("order expired", meta=meta, now=now)

    # --- fulfilment ----------------------------------------------------------------------

    def plan_shipment(
        self,
        shipment_id: UUID,
        delivery_group: str,
        lines: Sequence[ParcelQuantity],
        *,
        carrier: str,
        weight_grams: int,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """Allocate units of one delivery group to a parcel: never more of a line than was
        ordered and is not already in a parcel. The same parcel twice records nothing.

        The cash still due on delivery is collected by the first parcel that is planned
        while no other parcel on its way carries it."""
        existing = self.parcels.get(shipment_id)
        if existing is not None:
            if existing.delivery_group == delivery_group and existing.lines == tuple(lines):
                return False
            raise InvalidOrderTransition(f"parcel {shipment_id} is already planned otherwise")
        if self.status not in FULFILMENT or self.status is OrderStatus.DELIVERED:
            raise InvalidOrderTransition(
                f"a {self.status.value} order is not shipped", status=self.status.value
            )
        check_parcel(self.lines, self.delivery_groups, self.parcels.values(), delivery_group, lines)
        if type(weight_grams) is not int or not 0 < weight_grams <= MAX_PARCEL_WEIGHT_GRAMS:
            raise InvalidShipment(
                f"weight is 1 to {MAX_PARCEL_WEIGHT_GRAMS} grams", field="weight_grams"
            )
        self.trigger_event(
            self.ShipmentPlanned,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            delivery_group=delivery_group,
            lines=tuple(lines),
            carrier=rules.code(carrier, "carrier", error=InvalidShipment),
            weight_grams=weight_grams,
            cod_amount=self.cash_for_next_parcel(),
        )
        return True

    def cash_for_next_parcel(self) -> Money | None:
        """What the next parcel collects: the cash still due, less what delivered parcels
        collected and the order has not recorded yet (their capture follows their
        delivery), so a customer is never asked for the same money twice."""
        cod = self.cod_payment()
        if cod is None or cod.uncaptured.is_zero:
            return None
        on_its_way = (ParcelState.PLANNED, ParcelState.DISPATCHED)
        if any(p.cod_amount and p.state in on_its_way for p in self.parcels.values()):
            return None
        due = cod.uncaptured
        for parcel in self.parcels.values():
            collected = parcel.cod_amount
            if (
                collected is not None
                and parcel.state is ParcelState.DELIVERED
                and not cod.has_seen(ProviderAction.CAPTURE, cod_capture_ref(parcel.shipment_id))
            ):
                due = due - collected if collected < due else Money.zero(due.currency)
        return None if due.is_zero else due

    def record_dispatch(
        self,
        shipment_id: UUID,
        *,
        carrier: str,
        tracking_number: str,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """The carrier has the parcel. A late or repeated notice records nothing."""
        parcel = self._parcel(shipment_id)
        if parcel.state is not ParcelState.PLANNED:
            return False
        after = {**self.parcels, shipment_id: replace(parcel, state=ParcelState.DISPATCHED)}
        self.trigger_event(
            self.ShipmentDispatched,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            carrier=carrier,
            tracking_number=tracking_number,
            status=self._fulfilment_status(after),
        )
        return True

    def record_delivery(
        self, shipment_id: UUID, *, delivered_at: datetime, meta: EventMeta, now: datetime
    ) -> bool:
        """The parcel was delivered (a delivery implies the dispatch, if that notice was
        lost). Repeated, or after the parcel came back, it records nothing."""
        parcel = self._parcel(shipment_id)
        if parcel.state not in (ParcelState.PLANNED, ParcelState.DISPATCHED):
            return False
        after = {**self.parcels, shipment_id: replace(parcel, state=ParcelState.DELIVERED)}
        self.trigger_event(
            self.ShipmentDelivered,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            delivered_at=delivered_at,
            status=self._fulfilment_status(after),
        )
        return True

    def record_return(
        self, shipment_id: UUID, reason: str, *, meta: EventMeta, now: datetime
    ) -> bool:
        """The parcel came back undelivered; its units may be shipped again (or the order
        cancelled). Repeated, or after delivery, it records nothing."""
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        parcel = self._parcel(shipment_id)
        if parcel.state not in (ParcelState.PLANNED, ParcelState.DISPATCHED):
            return False
        after = {**self.parcels, shipment_id: replace(parcel, state=ParcelState.RETURNED)}
        self.trigger_event(
            self.ShipmentReturned,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            reason=why,
            status=self._fulfilment_status(after),
        )
        return True

    def cancel_shipment(
        self, shipment_id: UUID, reason: str, *, meta: EventMeta, now: datetime
    ) -> bool:
        """A parcel cancelled before pickup gives its units back to the order."""
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        parcel = self._parcel(shipment_id)
        if parcel.state is ParcelState.CANCELLED:
            return False
        if parcel.state is not ParcelState.PLANNED:
            raise InvalidOrderTransition(
                f"a {parcel.state.value} parcel cannot be cancelled", state=parcel.state.value
            )
        self.trigger_event(
            self.ShipmentCancelled,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            reason=why,
        )
        return True

    def complete(self, *, after_sales_window: timedelta, meta: EventMeta, now: datetime) -> None:
        """Close a delivered order once its after-sales window has passed."""
        delivered_at = self.last_delivered_at
        if self.status is not OrderStatus.DELIVERED or delivered_at is None:
            raise InvalidOrderTransition(
                f"a {self.status.value} order is not completed", status=self.status.value
            )
        if now < delivered_at + after_sales_window:
            raise InvalidOrderTransition("the after-sales window is still open")
        self.trigger_event(self.Completed, timestamp=now, meta=meta, delivered_at=delivered_at)

    @property
    def last_delivered_at(self) -> datetime | None:
        times = [p.delivered_at for p in self.parcels.values() if p.delivered_at is not None]
        return max(times, default=None)

    def delivered_quantities(self) -> dict[int, int]:
        """Units delivered per order line."""
        return quantities_in(self.parcels.values(), ParcelState.DELIVERED)

    def unallocated_quantities(self) -> dict[int, int]:
        """Units per order line that are in no parcel yet."""
        taken = allocated(self.parcels.values())
        return {
            line.line_no: line.quantity - taken.get(line.line_no, 0)
            for line in self.lines
            if line.quantity > taken.get(line.line_no, 0)
        }

    def _parcel(self, shipment_id: UUID) -> ParcelRecord:
        try:
            return self.parcels[shipment_id]
        except KeyError:
            raise ShipmentNotFound(
                f"order has no parcel {shipment_id}", shipment_id=str(shipment_id)
            ) from None

    def _fulfilment_status(self, parcels: dict[UUID, ParcelRecord]) -> OrderStatus:
        return fulfilment_status(self.lines, parcels.values())

    # --- queries -------------------------------------------------------------------------

    @property
    def captured(self) -> Money:
        return total([p.captured for p in self.payments.values()], self.currency)

    @property
    def refunded(self) -> Money:
        return total([p.refunded for p in self.payments.values()], self.currency)

    @property
    def refund_due(self) -> Money:
        """Money that must go back: everything captured on an order that ended unfulfilled."""
        if self.status.ended_unfulfilled:
            return self.captured - self.refunded
        return Money.zero(self.currency)

    @property
    def is_paid(self) -> bool:
        return all(p.fully_captured for p in self.payments.values() if p.method.is_online)

    def reserved_quantities(self) -> dict[tuple[str, str], int]:
        """Units this order holds per (sku, warehouse)."""
        held: dict[tuple[str, str], int] = {}
        for line in self.lines:
            key = (line.sku, line.warehouse)
            held[key] = held.get(key, 0) + line.quantity
        return held


class AbandonedPlacement(Aggregate):
    """Marks an order id whose placement never finished, so it can never be placed later.

    It shares the order's id in the orders store: whichever of ``Order.Placed`` and this is
    written first wins, which is what makes releasing the orphaned stock safe.
    """

    TOPIC = "ordertrail.orders:AbandonedPlacement"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Recorded(Event, Aggregate.Created):
        TOPIC = "ordertrail.orders:AbandonedPlacement.Recorded"
        class_version = 1
        reason: str

    Created = Recorded

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @classmethod
    def record(
        cls, order_id: UUID, reason: str, *, meta: EventMeta, now: datetime
    ) -> AbandonedPlacement:
        return cls._create(cls.Recorded, id=order_id, timestamp=now, meta=meta, reason=reason)


# --- validation of a new order ---------------------------------------------------------------
