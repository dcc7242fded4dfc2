"""What a payment provider told us, in one shape for every provider, and how it lands on
the order.

Every provider adapter turns a (verified) callback into a ``PaymentNotice``; ``settle``
records it through the orders application as the provider (``Actor.of("provider", ...)``)
and says what became of it:

* ``recorded`` — the order took it;
* ``duplicate`` — the same action with the same provider reference was recorded before
  (the ``Order`` remembers references per action, so a re-delivered notice writes nothing);
* ``ignored`` — nothing to record: a status that moves no money (Alipay
  ``WAIT_BUYER_PAY``), or a notice the order can no longer take because a later fact is
  already recorded — an authorization arriving after its capture, a failure after a
  capture, an authorization on an order no longer awaiting payment. Such notices are
  acknowledged (the provider would otherwise re-deliver them for a day) and the order's
  history keeps the fact that decided.

An amount that is not what the payment expects — a capture or authorization of anything
but exactly what is still due (in the payment's currency), a refund of more than is
refundable — is refused: the notice is recorded on the order as a
``PaymentDiscrepancyRecorded`` (once per provider reference) and ``PaymentAmountMismatch``
is raised, so the provider is told it failed and staff can look into it.

Commands get ids derived from the whole notice, so a re-delivered notice is answered from
its command receipt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn
from uuid import UUID, uuid5

from ordertrail.adapters.payments.errors import PaymentAmountMismatch, PaymentMethodMismatch
from ordertrail.application.context import CommandContext
from ordertrail.application.orders import (
    AuthorizePayment,
    CapturePayment,
    FailPayment,
    OrdersApplication,
    OrderSnapshot,
    RecordPaymentDiscrepancy,
    RefundPayment,
)
from ordertrail.application.receipts import Accepted
from ordertrail.domain.errors import (
    CaptureExceedsAmount,
    InvalidOrderTransition,
    InvalidPaymentTransition,
    OrderNotPayable,
    PaymentNotFound,
    RefundExceedsCaptured,
)
from ordertrail.domain.ids import NAMESPACE
from ordertrail.domain.meta import Actor
from ordertrail.domain.money import Money
from ordertrail.domain.orders import Order, OrderStatus
from ordertrail.domain.payments import Payment, PaymentMethod, PaymentState, ProviderAction

_NOTICES = uuid5(NAMESPACE, "adapters.payment-notice")

#: A refusal that means "a later fact is already recorded": the notice is stale.
STALE = (InvalidPaymentTransition, OrderNotPayable, InvalidOrderTransition)
#: Payment states in which a new authorization is still possible.
AUTHORIZABLE = frozenset({PaymentState.PENDING, PaymentState.FAILED, PaymentState.VOIDED})
#: Every method a provider can settle online.
ONLINE_METHODS = frozenset(m for m in PaymentMethod if m.is_online)


class NoticeAction(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    FAIL = "fail"
    REFUND = "refund"


_PROVIDER_ACTION = {
    NoticeAction.AUTHORIZE: ProviderAction.AUTHORIZE,
    NoticeAction.CAPTURE: ProviderAction.CAPTURE,
    NoticeAction.FAIL: ProviderAction.FAIL,
    NoticeAction.REFUND: ProviderAction.REFUND,
}


@dataclass(frozen=True)
class PaymentNotice:
    """One thing a provider reports about one payment of one order.

    ``action`` None: the notice reports nothing to record. ``amount`` is given for every
    action but ``FAIL``; ``reference`` is the provider's id of the transaction (or, for a
    refund, of the refund).
    """

    provider: str
    action: NoticeAction | None
    order_id: UUID
    payment_id: UUID
    amount: Money | None
    reference: str
    reason: str = ""


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Settlement:
    outcome: Outcome
    positions: dict[str, int] = field(default_factory=dict)


def settle(
    orders: OrdersApplication,
    notice: PaymentNotice,
    methods: frozenset[PaymentMethod] = ONLINE_METHODS,
) -> Settlement:
    """Record ``notice`` on its order. Raises ``OrderNotFound``/``PaymentNotFound`` for a
    payment we do not have, ``PaymentMethodMismatch`` for a payment not paid through
    ``methods``, ``PaymentAmountMismatch`` (after recording it) for an unexpected amount."""
    if notice.action is None:
        return Settlement(Outcome.IGNORED)
    order = orders.order(notice.order_id)
    payment = order.payments.get(notice.payment_id)
    if payment is None:
        raise PaymentNotFound(
            f"order has no payment {notice.payment_id}", payment_id=str(notice.payment_id)
        )
    if payment.method not in methods:
        raise PaymentMethodMismatch(
            f"payment {payment.payment_id} is paid by {payment.method.value}, "
            f"not through {notice.provider}",
            payment_id=str(payment.payment_id),
            method=payment.method.value,
        )
    if payment.has_seen(_PROVIDER_ACTION[notice.action], notice.reference):
        return Settlement(Outcome.DUPLICATE)
    try:
        result = _record(orders, notice, order, payment)
    except (CaptureExceedsAmount, RefundExceedsCaptured):
        # Another notice changed what is due between our check and the command.
        _mismatch(orders, notice, orders.order(notice.order_id).payments[payment.payment_id])
    except STALE:
        return Settlement(Outcome.IGNORED)
    if result is None:
        return Settlement(Outcome.IGNORED)
    outcome = Outcome.DUPLICATE if result.replayed else Outcome.RECORDED
    return Settlement(outcome, dict(result.positions))


def _record(
    orders: OrdersApplication, notice: PaymentNotice, order: Order, payment: Payment
) -> Accepted[OrderSnapshot] | None:
    ctx = _context(notice, notice.action)
    amount = notice.amount
    match notice.action:
        case NoticeAction.CAPTURE:
            if amount is None or amount != payment.uncaptured or not amount.is_positive:
                _mismatch(orders, notice, payment)
            return orders.capture_payment(
                CapturePayment(order.id, payment.payment_id, amount, notice.reference), ctx
            )
        case NoticeAction.AUTHORIZE:
            if (
                payment.state not in AUTHORIZABLE
                or order.status is not OrderStatus.AWAITING_PAYMENT
            ):
                return None  # stale: captured, authorized by another reference, or settled
            if amount is None or amount != payment.uncaptured or not amount.is_positive:
                _mismatch(orders, notice, payment)
            return orders.authorize_payment(
                AuthorizePayment(order.id, payment.payment_id, amount, notice.reference), ctx
            )
        case NoticeAction.FAIL:
            reason = notice.reason or f"the payment failed at {notice.provider}"
            return orders.fail_payment(
                FailPayment(order.id, payment.payment_id, reason, notice.reference), ctx
            )
        case NoticeAction.REFUND:
            if (
                amount is None
                or amount.currency != payment.amount.currency
                or not amount.is_positive
                or amount > payment.refundable
            ):
                _mismatch(orders, notice, payment)
            reason = notice.reason or f"refunded at {notice.provider}"
            return orders.refund_payment(
                RefundPayment(order.id, payment.payment_id, amount, notice.reference, reason), ctx
            )
    return None  # pragma: no cover - every action is handled above


def _mismatch(orders: OrdersApplication, notice: PaymentNotice, payment: Payment) -> NoReturn:
    reported = notice.amount or Money.zero(payment.amount.currency)
    orders.record_payment_discrepancy(
        RecordPaymentDiscrepancy(notice.order_id, payment.payment_id, reported, notice.reference),
        _context(notice, "discrepancy"),
    )
    expected = payment.refundable if notice.action is NoticeAction.REFUND else payment.uncaptured
    raise PaymentAmountMismatch(
        f"{notice.provider} reported {reported.amount} {reported.currency} for payment "
        f"{payment.payment_id}, which expects {expected.amount} {expected.currency}",
        payment_id=str(payment.payment_id),
        reported=reported.amount,
        reported_currency=reported.currency,
        expected=expected.amount,
        expected_currency=expected.currency,
    )


def _context(notice: PaymentNotice, what: str | None) -> CommandContext:
    amount = "" if notice.amount is None else f"{notice.amount.amount} {notice.amount.currency}"
    key = "\x1f".join(
        (
            notice.provider,
            str(what),
            str(notice.order_id),
            str(notice.payment_id),
            amount,
            notice.reference,
        )
    )
    return CommandContext(
        actor=Actor.of("provider", notice.provider), command_id=uuid5(_NOTICES, key)
    )
