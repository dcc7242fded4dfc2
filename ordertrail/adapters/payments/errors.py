"""Errors of the payment provider adapters, each with a stable code like the domain's.

They subclass ``DomainError`` so the HTTP layer maps them by code (``payment.bad_signature``
is 401 in ``problems.STATUS_BY_CODE``; the others fall back on their kind).
"""

from __future__ import annotations

from typing import NoReturn

from ordertrail.domain.errors import DomainError, ErrorKind


class PaymentSignatureInvalid(DomainError):
    """A provider callback is unsigned, or its signature does not match what it says."""

    code = "payment.bad_signature"


class InvalidPaymentNotification(DomainError):
    """A (signed) provider callback is not in the format its adapter expects."""

    code = "payment.invalid_notification"


class PaymentAmountMismatch(DomainError):
    """A provider reports an amount the payment does not expect: refused (and recorded)."""

    code = "payment.amount_mismatch"
    kind = ErrorKind.REJECTED


class PaymentMethodMismatch(DomainError):
    """A provider reports on a payment that is not paid through it."""

    code = "payment.method_mismatch"
    kind = ErrorKind.CONFLICT


class UnsupportedCurrency(DomainError):
    """A provider cannot take a payment in this currency."""

    code = "payment.unsupported_currency"
    kind = ErrorKind.CONFLICT


def invalid(message: str, **details: object) -> NoReturn:
    raise InvalidPaymentNotification(message, **details)
