"""Orders: what a customer bought, where it goes, how it is paid, and where it stands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import (
    InvalidOrder,
    InvalidOrderTransition,
    OrderNotCancellable,
    OrderNotExpirable,
    OrderNotPayable,
    PaymentNotFound,
    PaymentPlanMismatch,
)
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money, total
from ordertrail.domain.order_parts import MAX_LINE_QUANTITY, DeliveryGroup, Discount, OrderLine
from ordertrail.domain.payments import Payment, PaymentMethod, PlannedPayment

MAX_LINES = 100
MAX_GROUPS = 10
MAX_PAYMENTS = 5
MAX_DISCOUNTS = 10


class OrderStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # placed; online payment or COD confirmation due
    PAID = "paid"  # every online payment captured in full, nothing on delivery
    COD_CONFIRMED = "cod_confirmed"  # online part captured, cash on delivery confirmed
    READY_TO_SHIP = "ready_to_ship"  # released to fulfilment
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not paid in time

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


CANCELLABLE = frozenset(
    {
        OrderStatus.AWAITING_PAYMENT,
        OrderStatus.PAID,
        OrderStatus.COD_CONFIRMED,
        OrderStatus.READY_TO_SHIP,
    }
)


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

        def apply(self, aggregate: Order) -> None:
            payment = aggregate.payments[self.payment_id]
            aggregate.payments[self.payment_id] = payment.refunded_more(
                self.amount, self.refund_ref
            )

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
        currency, and that the payment plan adds up to the total.
        """
        customer = rules.code(customer_id, "customer id", error=InvalidOrder)
        checked_lines, groups = _check_lines_and_groups(lines, delivery_groups)
        currency = checked_lines[0].unit_price.currency
        subtotal = total([line.line_total for line in checked_lines], currency)
        fee = _check_amount(shipping_fee, currency, "shipping fee")
        reductions = _check_discounts(discounts, currency)
        discount_total = total([d.amount for d in reductions], currency)
        grand_total = subtotal + fee - discount_total
        if grand_total.amount < 0:
            raise InvalidOrder("discounts exceed the order amount", field="discounts")
        payments = _check_payment_plan(order_id, payment_plan, grand_total)
        if payment_due_at <= now:
            raise InvalidOrder("the payment deadline must be in the future", field="payment_due_at")
        order = cls._create(
            cls.Placed,
            id=order_id,
            timestamp=now,
            meta=meta,
            customer_id=customer,
            currency=currency,
            lines=checked_lines,
            delivery_groups=groups,
            shipping_fee=fee,
            discounts=reductions,
            subtotal=subtotal,
            total=grand_total,
            payments=payments,
            payment_due_at=payment_due_at,
        )
        order._settle(meta=meta, now=now, auto_release=auto_release)
        return order

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
        if payment.has_seen(ref):
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
        if payment.has_seen(ref):
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
        if payment.has_seen(ref):
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
    ) -> bool:
        """Give money back, never more than was captured. A refund reference counts once."""
        payment = self._payment(payment_id)
        ref = rules.text(refund_ref, "refund reference", max_length=200, error=InvalidOrder)
        if payment.has_seen(ref):
            return False
        why = rules.text(reason, "reason", max_length=500, error=InvalidOrder)
        self._check_currency(amount)
        payment.check_refund(amount)
        self.trigger_event(
            self.PaymentRefunded,
            timestamp=now,
            meta=meta,
            payment_id=payment_id,
            amount=amount,
            refund_ref=ref,
            reason=why,
        )
        return True

    def confirm_cash_on_delivery(
        self, *, meta: EventMeta, now: datetime, auto_release: bool = True
    ) -> None:
        """The merchant confirms a COD order (after its online part, if any, is captured)."""
        cod = self._cod_payment()
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
        if self.status.is_terminal:
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

    # --- helpers -------------------------------------------------------------------------

    def _payment(self, payment_id: UUID) -> Payment:
        try:
            return self.payments[payment_id]
        except KeyError:
            raise PaymentNotFound(
                f"order has no payment {payment_id}", payment_id=str(payment_id)
            ) from None

    def _cod_payment(self) -> Payment | None:
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
            and self._cod_payment() is None
            and self._online_part_captured()
        ):
            self.trigger_event(self.Paid, timestamp=now, meta=meta, amount=self.captured)
            if auto_release:
                self.release_to_fulfilment(meta=meta, now=now)

    def _void_authorizations(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        for payment in list(self.payments.values()):
            if payment.state.value == "authorized":
                self.trigger_event(
                    self.PaymentVoided,
                    timestamp=now,
                    meta=meta,
                    payment_id=payment.payment_id,
                    reason=reason,
                )


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


def _provider_ref(value: str) -> str:
    return rules.text(
        value, "provider reference", max_length=200, error=InvalidOrder, allow_empty=True
    )


def _check_amount(amount: Money, currency: str, field: str) -> Money:
    if not isinstance(amount, Money) or amount.currency != currency:
        raise InvalidOrder(f"{field} must be in {currency}", field=field)
    if amount.amount < 0:
        raise InvalidOrder(f"{field} must not be negative", field=field)
    return amount


def _check_lines_and_groups(
    lines: Sequence[OrderLine], groups: Sequence[DeliveryGroup]
) -> tuple[tuple[OrderLine, ...], tuple[DeliveryGroup, ...]]:
    if not lines:
        raise InvalidOrder("an order needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise InvalidOrder(f"an order has at most {MAX_LINES} lines", field="lines")
    if not groups or len(groups) > MAX_GROUPS:
        raise InvalidOrder(
            f"an order has 1 to {MAX_GROUPS} delivery groups", field="delivery_groups"
        )
    group_ids = [g.group_id for g in groups]
    if len(set(group_ids)) != len(group_ids):
        raise InvalidOrder("delivery group ids must be unique", field="delivery_groups")
    currency = lines[0].unit_price.currency
    seen: set[tuple[str, str]] = set()
    used_groups: set[str] = set()
    for index, line in enumerate(lines, start=1):
        if line.line_no != index:
            raise InvalidOrder("lines are numbered 1, 2, 3, ...", field="lines")
        if type(line.quantity) is not int or not 0 < line.quantity <= MAX_LINE_QUANTITY:
            raise InvalidOrder(
                f"a line quantity is 1 to {MAX_LINE_QUANTITY}", field="lines", line_no=line.line_no
            )
        if line.unit_price.currency != currency:
            raise InvalidOrder("all lines must be priced in one currency", field="lines")
        if line.unit_price.amount <= 0:
            raise InvalidOrder("a unit price must be positive", field="lines")
        if line.delivery_group not in group_ids:
            raise InvalidOrder(
                f"line {line.line_no} names an unknown delivery group",
                field="lines",
                line_no=line.line_no,
            )
        key = (line.sku, line.delivery_group)
        if key in seen:
            raise InvalidOrder(
                f"{line.sku} appears twice in delivery group {line.delivery_group}",
                field="lines",
                sku=line.sku,
            )
        seen.add(key)
        used_groups.add(line.delivery_group)
    if used_groups != set(group_ids):
        raise InvalidOrder("every delivery group needs at least one line", field="delivery_groups")
    return tuple(lines), tuple(groups)


def _check_discounts(discounts: Sequence[Discount], currency: str) -> tuple[Discount, ...]:
    if len(discounts) > MAX_DISCOUNTS:
        raise InvalidOrder(f"at most {MAX_DISCOUNTS} discounts", field="discounts")
    codes = [d.code for d in discounts]
    if len(set(codes)) != len(codes):
        raise InvalidOrder("a discount code applies once", field="discounts")
    for discount in discounts:
        if discount.amount.currency != currency or discount.amount.amount <= 0:
            raise InvalidOrder(f"discounts are positive amounts in {currency}", field="discounts")
    return tuple(discounts)


def _check_payment_plan(
    order_id: UUID, plan: Sequence[PlannedPayment], grand_total: Money
) -> tuple[Payment, ...]:
    if len(plan) > MAX_PAYMENTS:
        raise PaymentPlanMismatch(f"at most {MAX_PAYMENTS} payments", field="payments")
    if grand_total.amount > 0 and not plan:
        raise PaymentPlanMismatch("a payment plan is needed", field="payments")
    cod = [p for p in plan if p.method is PaymentMethod.CASH_ON_DELIVERY]
    if len(cod) > 1:
        raise PaymentPlanMismatch("at most one cash-on-delivery payment", field="payments")
    for entry in plan:
        if entry.amount.currency != grand_total.currency or entry.amount.amount <= 0:
            raise PaymentPlanMismatch(
                f"each payment is a positive amount in {grand_total.currency}", field="payments"
            )
    planned = total([p.amount for p in plan], grand_total.currency)
    if planned != grand_total:
        raise PaymentPlanMismatch(
            f"the payments add up to {planned.amount}, the order total is {grand_total.amount}",
            field="payments",
            planned=planned.amount,
            total=grand_total.amount,
        )
    return tuple(
        Payment.planned(ids.payment_id(order_id, i), entry) for i, entry in enumerate(plan)
    )
