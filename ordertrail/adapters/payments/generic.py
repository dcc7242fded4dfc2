"""A generic JSON payment provider (cards, WeChat Pay through an aggregator, …).

One event per request::

    {"event_id": "evt_01J9…", "type": "payment.captured",
     "order_id": "<uuid>", "payment_id": "<uuid>",
     "amount": {"amount": 13600, "currency": "CNY"}, "reference": "ch_3Q…"}

``type`` is ``payment.authorized``, ``payment.captured``, ``payment.failed`` or
``refund.succeeded``; ``amount`` is in minor units; ``reference`` is the provider's id of
the transaction (of the refund, for ``refund.succeeded``: when the shop asked for the
refund the provider echoes the shop's refund reference, so a refund the shop recorded is
not recorded twice). Members the adapter does not know are ignored (providers add
members); ``event_id`` identifies the delivery, not the fact.

The raw body is signed with HMAC-SHA256 under the secret shared with the provider
(``ApiSettings.generic_provider_secret``), sent as ``X-Ordertrail-Signature:
sha256=<hex>``, and compared in constant time before the body is even parsed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from msgspec import Meta

from ordertrail.adapters.payments.errors import PaymentSignatureInvalid, invalid
from ordertrail.adapters.payments.settlement import NoticeAction, PaymentNotice
from ordertrail.application.serialization import decode_json_as
from ordertrail.domain.errors import DomainError
from ordertrail.domain.money import MAX_MINOR_UNITS, Money

PROVIDER = "generic"
SIGNATURE_HEADER = "X-Ordertrail-Signature"
MAX_BODY_BYTES = 64 * 1024
MAX_SIGNATURE_CHARS = 200
#: Where the sandbox sends shoppers; building the URL sends nothing anywhere.
SANDBOX_CHECKOUT = "https://sandbox.pay.ordertrail.dev/checkout"


class EventType(StrEnum):
    AUTHORIZED = "payment.authorized"
    CAPTURED = "payment.captured"
    FAILED = "payment.failed"
    REFUNDED = "refund.succeeded"


ACTIONS = {
    EventType.AUTHORIZED: NoticeAction.AUTHORIZE,
    EventType.CAPTURED: NoticeAction.CAPTURE,
    EventType.FAILED: NoticeAction.FAIL,
    EventType.REFUNDED: NoticeAction.REFUND,
}

_Visible = Annotated[str, Meta(pattern=r"^[\x21-\x7e]{1,200}$")]


class _Amount(msgspec.Struct):
    amount: Annotated[int, Meta(gt=0, le=MAX_MINOR_UNITS)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]


class _Event(msgspec.Struct):
    event_id: Annotated[str, Meta(pattern=r"^[\x21-\x7e]{1,128}$")]
    type: EventType
    order_id: UUID
    payment_id: UUID
    amount: _Amount
    reference: _Visible


@dataclass(frozen=True)
class GenericEvent:
    event_id: str
    type: EventType
    order_id: UUID
    payment_id: UUID
    amount: Money
    reference: str

    def notice(self) -> PaymentNotice:
        return PaymentNotice(
            provider=PROVIDER,
            action=ACTIONS[self.type],
            order_id=self.order_id,
            payment_id=self.payment_id,
            amount=None if self.type is EventType.FAILED else self.amount,
            reference=self.reference,
        )


def sign(body: bytes, secret: str) -> str:
    """The header value the provider sends with ``body``."""
    digest = hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(body: bytes, signature: str | None, secret: str) -> None:
    """Raise ``PaymentSignatureInvalid`` unless ``signature`` is ``sha256=`` + the
    HMAC-SHA256 of ``body`` under ``secret`` (compared in constant time)."""
    if not isinstance(secret, str) or not secret:
        raise PaymentSignatureInvalid("no provider secret is configured to verify it")
    if not isinstance(body, bytes | bytearray):
        raise PaymentSignatureInvalid("a callback body is bytes")
    if not isinstance(signature, str) or not signature.strip():
        raise PaymentSignatureInvalid(f"the callback has no {SIGNATURE_HEADER} header")
    given = signature.strip().lower()
    if len(given) > MAX_SIGNATURE_CHARS or not given.startswith("sha256="):
        raise PaymentSignatureInvalid(f"{SIGNATURE_HEADER} must be sha256=<hex>")
    expected = sign(body, secret).encode("ascii")
    if not hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass")):
        raise PaymentSignatureInvalid("the signature does not match the callback body")


def parse(body: bytes) -> GenericEvent:
    """Read a *verified* callback body."""
    if not isinstance(body, bytes | bytearray):
        invalid("a callback body is bytes")
    if len(body) > MAX_BODY_BYTES:
        invalid(f"a callback is at most {MAX_BODY_BYTES} bytes", size=len(body))
    try:
        event = decode_json_as(bytes(body), _Event)
    except (msgspec.MsgspecError, RecursionError) as error:
        invalid(f"the callback is not a payment event: {str(error)[:200]}")
    try:
        amount = Money(event.amount.amount, event.amount.currency)
    except DomainError as error:  # pragma: no cover - the schema already bounds it
        invalid(error.message)
    return GenericEvent(
        event_id=event.event_id,
        type=event.type,
        order_id=event.order_id,
        payment_id=event.payment_id,
        amount=amount,
        reference=event.reference,
    )


def signed_event(
    secret: str,
    *,
    event_id: str,
    type: EventType | str,
    order_id: UUID,
    payment_id: UUID,
    amount: Money,
    reference: str,
) -> tuple[bytes, dict[str, str]]:
    """A callback body and its headers as the provider sends them (sandbox, tests)."""
    body = msgspec.json.encode(
        {
            "event_id": event_id,
            "type": str(type),
            "order_id": str(order_id),
            "payment_id": str(payment_id),
            "amount": {"amount": amount.amount, "currency": amount.currency},
            "reference": reference,
        }
    )
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)}


def checkout_request(
    secret: str,
    *,
    order_id: UUID,
    payment_id: UUID,
    amount: Money,
    notify_url: str,
    now: datetime,
    expires_at: datetime,
) -> dict[str, str]:
    """The parameters of the provider's hosted payment page, signed like a callback (the
    HMAC of the URL-encoded parameters, in ``signature``)."""
    params = {
        "merchant_reference": str(payment_id),
        "order_id": str(order_id),
        "amount": str(amount.amount),
        "currency": amount.currency,
        "notify_url": notify_url,
        "timestamp": now.isoformat(),
        "expires_at": expires_at.isoformat(),
    }
    params["signature"] = sign(urlencode(sorted(params.items())).encode("ascii"), secret)
    return params


def checkout_url(params: dict[str, str], base: str = SANDBOX_CHECKOUT) -> str:
    return f"{base}?{urlencode(params)}"
