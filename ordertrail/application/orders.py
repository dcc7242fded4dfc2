"""Order commands that touch only the order: payments, COD confirmation, fulfilment release.

Commands that also move stock (place, cancel, expire) are in ``ordering``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ordertrail.application.base import DEFAULT_MAX_ATTEMPTS, Decision, OrdertrailApplication
from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.receipts import Accepted
from ordertrail.domain.errors import OrderNotFound
from ordertrail.domain.money import Money
from ordertrail.domain.orders import Order, OrderStatus
from ordertrail.domain.payments import Payment, PaymentMethod, PaymentState


@dataclass(frozen=True)
class AuthorizePayment:
    order_id: UUID
    payment_id: UUID
    amount: Money
    provider_ref: str = ""


@dataclass(frozen=True)
class CapturePayment:
    order_id: UUID
    payment_id: UUID
    amount: Money
    provider_ref: str = ""


@dataclass(frozen=True)
class FailPayment:
    order_id: UUID
    payment_id: UUID
    reason: str
    provider_ref: str = ""


@dataclass(frozen=True)
class RecordPaymentDiscrepancy:
    order_id: UUID
    payment_id: UUID
    reported: Money
    provider_ref: str


@dataclass(frozen=True)
class VoidPayment:
    order_id: UUID
    payment_id: UUID
    reason: str


@dataclass(frozen=True)
class RefundPayment:
    order_id: UUID
    payment_id: UUID
    amount: Money
    refund_ref: str
    reason: str


@dataclass(frozen=True)
class ConfirmCashOnDelivery:
    order_id: UUID


@dataclass(frozen=True)
class ReleaseToFulfilment:
    order_id: UUID


@dataclass(frozen=True)
class PaymentSnapshot:
    payment_id: UUID
    method: PaymentMethod
    amount: Money
    state: PaymentState
    captured: Money
    refunded: Money

    @classmethod
    def of(cls, payment: Payment) -> PaymentSnapshot:
        return cls(
            payment.payment_id,
            payment.method,
            payment.amount,
            payment.state,
            payment.captured,
            payment.refunded,
        )


@dataclass(frozen=True)
class OrderSnapshot:
    """An order as a command left it."""

    order_id: UUID
    customer_id: str
    status: OrderStatus
    total: Money
    captured: Money
    refunded: Money
    payment_due_at: datetime
    payments: tuple[PaymentSnapshot, ...]
    version: int

    @classmethod
    def of(cls, order: Order) -> OrderSnapshot:
        return cls(
            order_id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            total=order.total,
            captured=order.captured,
            refunded=order.refunded,
            payment_due_at=order.payment_due_at,
            payments=tuple(PaymentSnapshot.of(p) for p in order.payments.values()),
            version=order.version,
        )


class OrdersApplication(OrdertrailApplication):
    name = "Orders"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        auto_release: bool = True,
        clock: Clock = system_clock,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.auto_release = auto_release
        super().__init__(env, clock=clock, max_attempts=max_attempts)

    def order(self, order_id: UUID) -> Order:
        order = self.find_as(order_id, Order)
        if order is None:
            raise OrderNotFound(f"no order {order_id}", order_id=str(order_id))
        return order

    def authorize_payment(
        self, command: AuthorizePayment, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.authorize_payment(
                command.payment_id,
                command.amount,
                provider_ref=command.provider_ref,
                meta=ctx.meta,
                now=now,
            )
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def capture_payment(
        self, command: CapturePayment, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.capture_payment(
                command.payment_id,
                command.amount,
                provider_ref=command.provider_ref,
                meta=ctx.meta,
                now=now,
                auto_release=self.auto_release,
            )
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def fail_payment(self, command: FailPayment, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.fail_payment(
                command.payment_id,
                command.reason,
                provider_ref=command.provider_ref,
                meta=ctx.meta,
                now=now,
            )
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def record_payment_discrepancy(
        self, command: RecordPaymentDiscrepancy, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        """Keep a record of a provider notice whose amount the payment does not expect."""

        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.record_payment_discrepancy(
                command.payment_id,
                command.reported,
                provider_ref=command.provider_ref,
                meta=ctx.meta,
                now=now,
            )
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def void_payment(self, command: VoidPayment, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.void_payment(command.payment_id, command.reason, meta=ctx.meta, now=now)
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def refund_payment(
        self, command: RefundPayment, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.refund_payment(
                command.payment_id,
                command.amount,
                refund_ref=command.refund_ref,
                reason=command.reason,
                meta=ctx.meta,
                now=now,
            )
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def confirm_cash_on_delivery(
        self, command: ConfirmCashOnDelivery, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.confirm_cash_on_delivery(meta=ctx.meta, now=now, auto_release=self.auto_release)
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)

    def release_to_fulfilment(
        self, command: ReleaseToFulfilment, ctx: CommandContext
    ) -> Accepted[OrderSnapshot]:
        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.order(command.order_id)
            order.release_to_fulfilment(meta=ctx.meta, now=now)
            return Decision(OrderSnapshot.of(order), [order])

        return self.execute(command, ctx, decide, OrderSnapshot)
