"""Alipay (支付宝): the asynchronous notification (异步通知) and the page-pay request.

**Notification.** When a trade changes state, Alipay POSTs ``application/x-www-form-
urlencoded`` parameters to the ``notify_url`` of the payment request: ``notify_time``,
``notify_type`` (``trade_status_sync``), ``notify_id``, ``app_id``, ``charset``,
``version``, ``sign_type`` (``RSA2``), ``sign``, ``trade_no`` (Alipay's trade number, at
most 64 characters), ``out_trade_no`` (ours, at most 64), ``trade_status``,
``total_amount`` (yuan, ``Number(9,2)``), ``receipt_amount``, ``gmt_payment``,
``passback_params`` … — parameters without a value are not sent, and new parameters may
appear at any time, so every parameter received is verified, known or not.

To verify: take every parameter except ``sign`` and ``sign_type``, URL-decoded, skip empty
values, sort by name, join as ``name=value`` with ``&``; ``sign`` is the base64 of an
RSA-SHA256 (PKCS#1 v1.5) signature of that string, verified with *Alipay's* public key
(not the merchant's). Alipay re-sends a notification (8 times within 25 hours: 2m, 10m,
10m, 1h, 2h, 6h, 15h) until the notify URL answers exactly ``success``.

``trade_status``: ``WAIT_BUYER_PAY`` (trade created, not paid: nothing to record),
``TRADE_SUCCESS`` (paid; refunds still possible) and ``TRADE_FINISHED`` (paid, closed for
refunds) → capture of ``total_amount`` with ``trade_no`` as the provider reference (the
second of the two is a duplicate of the first), ``TRADE_CLOSED`` (closed unpaid, or fully
refunded) → the payment failed (stale, so ignored, when it had been captured). Alipay also
notifies refunds as ``TRADE_SUCCESS``/``TRADE_CLOSED`` with ``refund_fee``/``out_biz_no``;
refunds are made and recorded by the shop, so those fields are not read here.

**Which order.** ``out_trade_no`` is the payment id (36 characters, within Alipay's 64);
the order id travels in ``passback_params``, which Alipay returns only in the
asynchronous notification, unchanged (it must be URL-encoded when sent: a UUID's
characters need no encoding, so the sent, received and decoded values are the same).
Both are covered by the signature. (Encoding ``<order_id>.<payment_id>`` in
``out_trade_no`` would take 73 characters, beyond Alipay's limit.)

**Request.** The storefront sends the shopper to the gateway with the parameters of
``alipay.trade.page.pay`` (``app_id``, ``method``, ``format``, ``charset``, ``sign_type``,
``timestamp`` in China time, ``version``, ``notify_url``, ``return_url``,
``biz_content`` JSON with ``out_trade_no``, ``total_amount``, ``subject``,
``product_code`` ``FAST_INSTANT_TRADE_PAY``, ``passback_params``, ``time_expire``) signed
by the *merchant's* key the same way, except that only ``sign`` is left out of a request's
signing string.

Sources (read through third-party copies of the official pages):

* Alipay open platform, 异步通知说明 and 异步返回结果的验签 (opendocs.alipay.com/open/204/105301):
  parameter list, "除去sign、sign_type两个参数外…进行字典排序", RSA2 = SHA256withRSA —
  https://blog.csdn.net/xinzi11243094/article/details/84646183,
  https://blog.csdn.net/qq_39505065/article/details/84429592
* Antom (Alipay+) "Verifying the asynchronous notification": re-delivery schedule and the
  ``success`` answer — https://docs.antom.com/ac/web/async
* 签名 rules for requests: "剔除sign字段, 剔除值为空的参数", ASCII order; empty parameters are
  not sent — https://developer.alibaba.com/docs/doc.htm?articleId=103596&docType=1&treeId=58
* ``passback_params`` (公用回传参数, echoed only in the asynchronous notification, must be
  URL-encoded) — https://developer.aliyun.com/article/707512
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode
from uuid import UUID

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ordertrail.adapters.payments.errors import (
    PaymentSignatureInvalid,
    UnsupportedCurrency,
    invalid,
)
from ordertrail.adapters.payments.settlement import NoticeAction, PaymentNotice
from ordertrail.domain.money import Money
from ordertrail.domain.payments import PaymentMethod

log = logging.getLogger(__name__)

PROVIDER = "alipay"
METHODS = frozenset({PaymentMethod.ALIPAY})
CURRENCY = "CNY"
SIGN_TYPE = "RSA2"
#: Left out of the signing string of a notification / of a request.
NOTIFICATION_UNSIGNED = frozenset({"sign", "sign_type"})
REQUEST_UNSIGNED = frozenset({"sign"})
#: The sandbox gateway; building a URL for it sends nothing anywhere.
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
PAGE_PAY = "alipay.trade.page.pay"

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
MAX_SIGN_CHARS = 2048
#: Alipay's limit on one trade: 100,000,000.00 yuan.
MAX_FEN = 100_000_000_00

WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"
ACTIONS: Mapping[str, NoticeAction | None] = {
    WAIT_BUYER_PAY: None,
    TRADE_SUCCESS: NoticeAction.CAPTURE,
    TRADE_FINISHED: NoticeAction.CAPTURE,
    TRADE_CLOSED: NoticeAction.FAIL,
}

CHINA = timezone(timedelta(hours=8), "CST")  # UTC+8 all year since 1991
_YUAN = re.compile(r"(0|[1-9][0-9]{0,8})(?:\.([0-9]{1,2}))?")
_TRADE_NO = re.compile(r"[\x21-\x7e]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# --- amounts ---------------------------------------------------------------------------------


def yuan_to_fen(text: str) -> int:
    """``"136.00"`` → 13600, exactly: plain decimal text, at most two decimals."""
    found = _YUAN.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        invalid(
            "an amount is yuan with at most two decimals, such as 136.00",
            amount=text[:40] if isinstance(text, str) else None,
        )
    fen = int(found.group(1)) * 100 + int((found.group(2) or "0").ljust(2, "0"))
    if fen > MAX_FEN:
        invalid("the amount is beyond what one Alipay trade can be", amount=text)
    return fen


def fen_to_yuan(fen: int) -> str:
    if type(fen) is not int or not 0 <= fen <= MAX_FEN:
        raise ValueError("an Alipay amount is 0 to 100,000,000.00 yuan")
    return f"{fen // 100}.{fen % 100:02d}"


# --- signatures ------------------------------------------------------------------------------


def signing_string(params: Mapping[str, str], unsigned: Collection[str]) -> str:
    """``k=v`` pairs sorted by key and joined with ``&``, without ``unsigned`` keys and
    empty values."""
    return "&".join(
        f"{key}={value}"
        for key, value in sorted(params.items())
        if key not in unsigned and value != ""
    )


def _message(params: Mapping[str, str], unsigned: Collection[str]) -> bytes:
    return signing_string(params, unsigned).encode("utf-8", "surrogatepass")


def sign(
    params: Mapping[str, str],
    private_key: rsa.RSAPrivateKey | str,
    unsigned: Collection[str] = NOTIFICATION_UNSIGNED,
) -> str:
    """The base64 RSA2 signature of ``params`` (as Alipay signs a notification, or with
    ``REQUEST_UNSIGNED`` as a merchant signs a request)."""
    key = load_private_key(private_key) if isinstance(private_key, str) else private_key
    signature = key.sign(_message(params, unsigned), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(
    params: Mapping[str, str],
    public_key: rsa.RSAPublicKey | str,
    unsigned: Collection[str] = NOTIFICATION_UNSIGNED,
) -> None:
    """Raise ``PaymentSignatureInvalid`` unless ``params`` carry a valid RSA2 signature by
    the holder of ``public_key`` (a PEM, or Alipay's bare base64 key text)."""
    given = params.get("sign", "")
    if not isinstance(given, str) or not given:
        raise PaymentSignatureInvalid("the notification is not signed")
    if "sign_type" in unsigned and params.get("sign_type") != SIGN_TYPE:
        raise PaymentSignatureInvalid(f"only sign_type={SIGN_TYPE} is accepted")
    if len(given) > MAX_SIGN_CHARS:
        raise PaymentSignatureInvalid("the signature is too long")
    try:
        signature = base64.b64decode(given.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise PaymentSignatureInvalid("the signature is not base64") from None
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        key.verify(signature, _message(params, unsigned), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise PaymentSignatureInvalid("the signature does not match the notification") from None


@lru_cache(maxsize=8)
def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM, or from the bare base64 text Alipay's console shows."""
    body = text.strip() if isinstance(text, str) else ""
    if not body:
        log.warning("an Alipay notification arrived but no Alipay public key is configured")
        raise PaymentSignatureInvalid("no Alipay public key is configured to verify it")
    if "-----BEGIN" not in body:
        wrapped = "\n".join(textwrap.wrap("".join(body.split()), 64))
        body = f"-----BEGIN PUBLIC KEY-----\n{wrapped}\n-----END PUBLIC KEY-----\n"
    try:
        key = serialization.load_pem_public_key(body.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        log.error("the configured Alipay public key cannot be read")
        raise PaymentSignatureInvalid("the configured Alipay public key cannot be read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise PaymentSignatureInvalid("the configured Alipay public key is not an RSA key")
    return key


@lru_cache(maxsize=8)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("an Alipay key is an RSA key")
    return key


def generate_key_pair(bits: int = 2048) -> tuple[str, str]:
    """A new (private PEM, public PEM) pair: for the sandbox and for tests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private, public


@lru_cache(maxsize=1)
def sandbox_merchant_key() -> rsa.RSAPrivateKey:
    """The merchant key of the sandbox, made once per process (nothing verifies it)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- notifications ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlipayNotification:
    notify_id: str
    app_id: str
    trade_no: str
    trade_status: str
    payment_id: UUID  # out_trade_no
    order_id: UUID  # passback_params
    total_amount: Money | None

    def notice(self) -> PaymentNotice:
        return PaymentNotice(
            provider=PROVIDER,
            action=ACTIONS[self.trade_status],
            order_id=self.order_id,
            payment_id=self.payment_id,
            amount=self.total_amount,
            reference=self.trade_no,
            reason=f"Alipay closed trade {self.trade_no} ({self.trade_status})"
            if self.trade_status == TRADE_CLOSED
            else "",
        )


def parse_form(body: bytes) -> dict[str, str]:
    """The parameters of a form-encoded body (UTF-8); a repeated name is refused."""
    if not isinstance(body, bytes | bytearray):
        invalid("a notification body is bytes")
    if len(body) > MAX_BODY_BYTES:
        invalid(f"a notification is at most {MAX_BODY_BYTES} bytes", size=len(body))
    try:
        text = bytes(body).decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is one; so is "too many fields"
        invalid("the notification is not UTF-8 form data")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            invalid(f"the parameter {name[:64]!r} is repeated", field=name[:64])
        params[name] = value
    if not params:
        invalid("the notification has no parameters")
    return params


def parse_notification(
    params: Mapping[str, str], *, app_id: str | None = None
) -> AlipayNotification:
    """Read a *verified* notification. ``app_id``: refuse notifications of other apps."""
    charset = params.get("charset", "utf-8")
    if charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        invalid("notifications are requested in UTF-8", charset=charset[:20])
    if app_id is not None and params.get("app_id") != app_id:
        invalid("the notification is for another Alipay app")
    status = params.get("trade_status", "")
    if status not in ACTIONS:
        invalid(f"unknown trade_status {status[:40]!r}", trade_status=status[:40])
    trade_no = params.get("trade_no", "")
    if not _TRADE_NO.fullmatch(trade_no):
        invalid("trade_no is 1-64 visible characters", field="trade_no")
    payment_id = _uuid(params.get("out_trade_no", ""), "out_trade_no")
    order_id = _uuid(unquote(params.get("passback_params", "")), "passback_params")
    amount: Money | None = None
    if ACTIONS[status] is NoticeAction.CAPTURE:
        fen = yuan_to_fen(params.get("total_amount", ""))
        if fen <= 0:
            invalid("a paid trade has a positive total_amount", field="total_amount")
        amount = Money(fen, CURRENCY)
    return AlipayNotification(
        notify_id=params.get("notify_id", "")[:128],
        app_id=params.get("app_id", "")[:32],
        trade_no=trade_no,
        trade_status=status,
        payment_id=payment_id,
        order_id=order_id,
        total_amount=amount,
    )


def _uuid(text: str, field: str) -> UUID:
    if not _UUID.fullmatch(text):
        invalid(f"{field} is not one of our ids", field=field)
    return UUID(text)


def china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def signed_notification(
    private_key: rsa.RSAPrivateKey | str,
    *,
    order_id: UUID,
    payment_id: UUID,
    trade_no: str,
    total_fen: int | None,
    trade_status: str = TRADE_SUCCESS,
    notify_time: datetime,
    app_id: str = "sandbox",
    notify_id: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A notification as Alipay sends it, signed with ``private_key`` (sandbox, tests)."""
    params = {
        "notify_time": china_time(notify_time),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id or f"sandbox-{trade_no}-{trade_status.lower()}",
        "app_id": app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": SIGN_TYPE,
        "trade_no": trade_no,
        "out_trade_no": str(payment_id),
        "passback_params": str(order_id),
        "trade_status": trade_status,
        "gmt_payment": china_time(notify_time),
    }
    if total_fen is not None:
        params["total_amount"] = fen_to_yuan(total_fen)
        params["receipt_amount"] = fen_to_yuan(total_fen)
    params.update(extra or {})
    params["sign"] = sign(params, private_key)
    return params


def form_body(params: Mapping[str, str]) -> bytes:
    return urlencode(params).encode("ascii")


# --- the payment request -----------------------------------------------------------------------


def page_pay_request(
    merchant_key: rsa.RSAPrivateKey | str,
    *,
    app_id: str,
    order_id: UUID,
    payment_id: UUID,
    amount: Money,
    subject: str,
    notify_url: str,
    return_url: str,
    now: datetime,
    expires_at: datetime,
) -> dict[str, str]:
    """The signed parameters of ``alipay.trade.page.pay`` for one payment."""
    if amount.currency != CURRENCY:
        raise UnsupportedCurrency(
            f"Alipay takes {CURRENCY}, this payment is in {amount.currency}",
            currency=amount.currency,
        )
    biz_content = {
        "out_trade_no": str(payment_id),
        "total_amount": fen_to_yuan(amount.amount),
        "subject": subject[:256],
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "passback_params": str(order_id),
        "time_expire": china_time(expires_at),
    }
    params = {
        "app_id": app_id,
        "method": PAGE_PAY,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": SIGN_TYPE,
        "timestamp": china_time(now),
        "version": "1.0",
        "notify_url": notify_url,
        "return_url": return_url,
        "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
    }
    params["sign"] = sign(params, merchant_key, REQUEST_UNSIGNED)
    return params


def gateway_url(params: Mapping[str, str], gateway: str = SANDBOX_GATEWAY) -> str:
    return f"{gateway}?{urlencode(params)}"
