"""Payments of an order: the plan (methods and amounts) and each payment's lifecycle.

A payment is pending until it is authorized or captured; captures may be partial and add
up to at most the planned amount; refunds add up to at most what was captured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from uuid import UUID

from ordertrail.domain.errors import (
    CaptureExceedsAmount,
    InvalidPaymentTransition,
    InvalidValue,
    RefundExceedsCaptured,
)
from ordertrail.domain.money import Money


class PaymentMethod(StrEnum):
    ALIPAY = "alipay"
    WECHAT_PAY = "wechat_pay"
    CARD = "card"
    CASH_ON_DELIVERY = "cash_on_delivery"

    @property
    def is_online(self) -> bool:
        return self is not PaymentMethod.CASH_ON_DELIVERY


class PaymentState(StrEnum):
    PENDING = "pending"  # nothing has happened yet
    AUTHORIZED = "authorized"  # funds held by the provider, not yet taken
    CAPTURED = "captured"  # some or all of the amount has been taken
    FAILED = "failed"  # the last attempt failed; a new attempt may follow
    VOIDED = "voided"  # an authorization was cancelled before capture


class ProviderAction(StrEnum):
    """What a provider reference was seen for: one reference may serve several actions
    (an authorization and its capture often share a transaction id)."""

    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    FAIL = "fail"
    REFUND = "refund"
    DISCREPANCY = "discrepancy"


@dataclass(frozen=True)
class PlannedPayment:
    """One entry of the payment plan that a customer chose at checkout."""

    method: PaymentMethod
    amount: Money


@dataclass(frozen=True)
class Payment:
    payment_id: UUID
    method: PaymentMethod
    amount: Money
    state: PaymentState
    authorized: Money
    captured: Money
    refunded: Money
    provider_refs: tuple[str, ...] = ()

    @classmethod
    def planned(cls, payment_id: UUID, plan: PlannedPayment) -> Payment:
        zero = Money.zero(plan.amount.currency)
        return cls(payment_id, plan.method, plan.amount, PaymentState.PENDING, zero, zero, zero)

    # --- derived -------------------------------------------------------------------------

    @property
    def net_captured(self) -> Money:
        """What the shop holds of this payment: captured minus refunded."""
        return self.captured - self.refunded

    @property
    def uncaptured(self) -> Money:
        """What is still due on this payment."""
        return self.amount - self.net_captured

    @property
    def refundable(self) -> Money:
        return self.net_captured

    @property
    def fully_captured(self) -> bool:
        return self.uncaptured.is_zero

    def has_seen(self, action: ProviderAction, provider_ref: str) -> bool:
        return bool(provider_ref) and f"{action.value}:{provider_ref}" in self.provider_refs

    # --- guards (raise; never called while applying events) ------------------------------

    def check_authorize(self, amount: Money) -> None:
        if self.state not in (PaymentState.PENDING, PaymentState.FAILED, PaymentState.VOIDED):
            raise InvalidPaymentTransition(
                f"a {self.state.value} payment cannot be authorized",
                payment_id=str(self.payment_id),
                state=self.state.value,
            )
        if not self.method.is_online:
            raise InvalidPaymentTransition(
                "cash on delivery is not authorized online", payment_id=str(self.payment_id)
            )
        if amount.amount <= 0 or amount > self.uncaptured:
            raise CaptureExceedsAmount(
                f"authorization of {amount.amount} exceeds the {self.uncaptured.amount} due",
                payment_id=str(self.payment_id),
                requested=amount.amount,
                due=self.uncaptured.amount,
            )

    def check_capture(self, amount: Money) -> None:
        """Money a provider says it took is recorded in any state (even after a void that
        we asked for): only the amount is limited, to what is still due."""
        if amount.amount <= 0:
            raise InvalidValue("a capture is a positive amount", field="amount")
        if amount > self.uncaptured:
            raise CaptureExceedsAmount(
                f"capture of {amount.amount} exceeds the {self.uncaptured.amount} still due",
                payment_id=str(self.payment_id),
                requested=amount.amount,
                due=self.uncaptured.amount,
            )

    def check_fail(self) -> None:
        if self.state not in (PaymentState.PENDING, PaymentState.AUTHORIZED, PaymentState.FAILED):
            raise InvalidPaymentTransition(
                f"a {self.state.value} payment cannot fail",
                payment_id=str(self.payment_id),
                state=self.state.value,
            )

    def check_void(self) -> None:
        if self.state is not PaymentState.AUTHORIZED:
            raise InvalidPaymentTransition(
                f"only an authorized payment can be voided, this one is {self.state.value}",
                payment_id=str(self.payment_id),
                state=self.state.value,
            )

    def check_refund(self, amount: Money) -> None:
        if amount.amount <= 0:
            raise InvalidValue("a refund is a positive amount", field="amount")
        if amount > self.refundable:
            raise RefundExceedsCaptured(
                f"refund of {amount.amount} exceeds the {self.refundable.amount} refundable",
                payment_id=str(self.payment_id),
                requested=amount.amount,
                refundable=self.refundable.amount,
            )

    # --- transitions (pure; used while applying events) ----------------------------------

    def _remember(self, action: ProviderAction, provider_ref: str) -> tuple[str, ...]:
        if not provider_ref:
            return self.provider_refs
        return (*self.provider_refs, f"{action.value}:{provider_ref}")

    def authorized_for(self, amount: Money, provider_ref: str) -> Payment:
        return replace(
            self,
            state=PaymentState.AUTHORIZED,
            authorized=amount,
            provider_refs=self._remember(ProviderAction.AUTHORIZE, provider_ref),
        )

    def captured_more(self, amount: Money, provider_ref: str) -> Payment:
        return replace(
            self,
            state=PaymentState.CAPTURED,
            captured=self.captured + amount,
            provider_refs=self._remember(ProviderAction.CAPTURE, provider_ref),
        )

    def failed(self, provider_ref: str) -> Payment:
        return replace(
            self,
            state=PaymentState.FAILED,
            authorized=Money.zero(self.amount.currency),
            provider_refs=self._remember(ProviderAction.FAIL, provider_ref),
        )

    def discrepancy_noted(self, provider_ref: str) -> Payment:
        return replace(self, provider_refs=self._remember(ProviderAction.DISCREPANCY, provider_ref))

    def voided(self) -> Payment:
        return replace(self, state=PaymentState.VOIDED, authorized=Money.zero(self.amount.currency))

    def refunded_more(self, amount: Money, refund_ref: str) -> Payment:
        return replace(
            self,
            refunded=self.refunded + amount,
            provider_refs=self._remember(ProviderAction.REFUND, refund_ref),
        )
