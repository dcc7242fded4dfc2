"""ParcelHub: a generic JSON webhook carrier (domestic, Hong Kong/Macau and international,
with cash on delivery).

One event per request, or a batch ``{"events": [...]}``::

    {"event_id": "evt_01HX...", "tracking_number": "PH7K2M9Q4TXA",
     "occurred_at": "2026-11-12T09:30:00+08:00", "code": "DELIVERED",
     "location": {"facility": "Nanshan station", "city": "Shenzhen",
                  "region": "Guangdong", "country": "CN"},
     "description": "Delivered, signed by the recipient",
     "cod": {"amount": 12345, "currency": "CNY", "receipt": "R-889"}}

The body is signed with HMAC-SHA256 under our shared secret, sent in the header
``X-ParcelHub-Signature: sha256=<hex>``. ``event_id`` is the event's identity: a
re-delivered event has the same id and is recorded once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime

from ordertrail.adapters.carriers import base
from ordertrail.application.carriers import ParcelSpec, TrackingNotice
from ordertrail.domain.errors import CarrierSignatureInvalid, DomainError
from ordertrail.domain.money import Money
from ordertrail.domain.shipments import Milestone, Scan

SIGNATURE_HEADER = "X-ParcelHub-Signature"
MAX_EVENTS = 500
COD_COLLECTED = "COD_COLLECTED"

#: ParcelHub event codes and the milestone each is; COD_COLLECTED is cash, not a scan.
CODES: Mapping[str, Milestone | None] = {
    "PICKED_UP": Milestone.PICKED_UP,
    "IN_TRANSIT": Milestone.IN_TRANSIT,
    "OUT_FOR_DELIVERY": Milestone.OUT_FOR_DELIVERY,
    "DELIVERED": Milestone.DELIVERED,
    "DELIVERY_ATTEMPT_FAILED": Milestone.DELIVERY_FAILED,
    "RETURNED": Milestone.RETURNED_TO_SENDER,
    COD_COLLECTED: None,
}
_SCAN_CODES = {code: milestone for code, milestone in CODES.items() if milestone is not None}
_LOCATION_PARTS = ("facility", "city", "region", "country")
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")


class ParcelHubGateway:
    """ParcelHub. ``secret`` is the HMAC key shared with ParcelHub for its webhooks."""

    def __init__(self, secret: str, *, code: str = "parcelhub", sandbox: bool = True) -> None:
        if not isinstance(secret, str) or not secret:
            raise ValueError("ParcelHub needs a non-empty secret to authenticate its webhooks")
        self._key = secret.encode("utf-8")
        self._code = code
        self.sandbox = sandbox

    @property
    def code(self) -> str:
        return self._code

    # --- booking -----------------------------------------------------------------------------

    def book(self, parcel: ParcelSpec) -> str:
        """``PH`` + 10 base-32 characters derived from the shipment id (sandbox)."""
        if not self.sandbox:
            raise NotImplementedError("live booking with ParcelHub is not implemented")
        digest = hashlib.sha256(f"parcelhub\x1f{parcel.shipment_id}".encode()).digest()
        return "PH" + base64.b32encode(digest).decode("ascii")[:10]

    # --- callbacks ---------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        """The header value ParcelHub sends with ``body``."""
        return "sha256=" + hmac.new(self._key, bytes(body), hashlib.sha256).hexdigest()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        if not isinstance(body, bytes | bytearray):
            raise CarrierSignatureInvalid("a webhook body is bytes")
        given = base.header(headers, SIGNATURE_HEADER)
        if not given or not given.strip().lower().startswith("sha256="):
            raise CarrierSignatureInvalid(f"the webhook has no {SIGNATURE_HEADER} header")
        expected = self.sign(body).encode("ascii")
        received = given.strip().lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected, received):
            raise CarrierSignatureInvalid("the webhook signature does not match its body")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingNotice]:
        """One notice per event, in the order of the body."""
        base.check_size(body)
        document = base.mapping(
            base.decode_json(base.decode_utf8(body, "the webhook"), "the webhook"), "the webhook"
        )
        if "events" in document:
            events = base.items(document["events"], "events", limit=MAX_EVENTS)
            return [
                self._notice(base.mapping(event, f"events[{i}]"), f"events[{i}]")
                for i, event in enumerate(events)
            ]
        return [self._notice(document, "event")]

    def acknowledgement(self) -> tuple[str, bytes]:
        return "application/json", b'{"received":true}'

    # --- one event ---------------------------------------------------------------------------

    def _notice(self, event: Mapping[str, object], where: str) -> TrackingNotice:
        event_id = base.string(event, "event_id", where, limit=128).strip()
        if not _EVENT_ID.fullmatch(event_id):
            base.invalid(f"{where}.event_id must be visible ASCII", field=f"{where}.event_id")
        number = base.tracking_number(
            base.string(event, "tracking_number", where, limit=64), f"{where}.tracking_number"
        )
        code = base.string(event, "code", where, limit=64).strip()
        if code not in CODES:
            base.invalid(f"{where}.code {code[:64]!r} is not a ParcelHub event code", code=code)
        occurred = _rfc3339(base.string(event, "occurred_at", where, limit=64), where)
        description = base.clean_text(
            base.string(event, "description", where, required=False), base.MAX_DESCRIPTION
        )
        if code == COD_COLLECTED:
            cash, receipt = _cod(event.get("cod"), f"{where}.cod")
            return TrackingNotice(
                carrier=self.code,
                tracking_number=number,
                scans=(),
                cash_collected=cash,
                cash_reference=receipt,
                cash_collected_at=occurred,
            )
        scan = Scan(
            milestone=_SCAN_CODES[code],
            occurred_at=occurred,
            location=_location(event.get("location"), f"{where}.location"),
            description=description,
            carrier_event_id=event_id,
        )
        return TrackingNotice(carrier=self.code, tracking_number=number, scans=(scan,))

    def signed_body(self, payload: Mapping[str, object]) -> tuple[bytes, dict[str, str]]:
        """A webhook body and its headers as ParcelHub would send them (sandbox, tests)."""
        body = json.dumps(payload).encode("ascii")
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: self.sign(body)}


def _rfc3339(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        base.invalid(f"{where}.occurred_at is not an RFC 3339 time", field=f"{where}.occurred_at")
    if moment.tzinfo is None or moment.utcoffset() is None:
        base.invalid(f"{where}.occurred_at has no UTC offset", field=f"{where}.occurred_at")
    return base.plausible_utc(moment, f"{where}.occurred_at")


def _location(value: object, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return base.clean_text(value, base.MAX_LOCATION)
    place = base.mapping(value, where)
    parts = [base.string(place, part, where, required=False, limit=200) for part in _LOCATION_PARTS]
    return base.clean_text(", ".join(part.strip() for part in parts if part.strip()), 200)


def _cod(value: object, where: str) -> tuple[Money, str]:
    cod = base.mapping(value, where)
    amount = cod.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        base.invalid(f"{where}.amount must be a positive integer of minor units", field=where)
    currency = base.string(cod, "currency", where, limit=3)
    try:
        cash = Money(amount, currency)
    except DomainError as error:
        base.invalid(f"{where}: {error.message}", field=where)
    receipt = base.clean_text(base.string(cod, "receipt", where, limit=200), 200)
    if not receipt:
        base.invalid(f"{where}.receipt is empty", field=f"{where}.receipt")
    return cash, receipt
