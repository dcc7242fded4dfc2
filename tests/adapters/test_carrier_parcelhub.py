"""ParcelHub JSON webhooks: single and batch events, COD, HMAC signatures, booking."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from ordertrail.adapters.carriers.parcelhub import CODES, SIGNATURE_HEADER, ParcelHubGateway
from ordertrail.application.carriers import ParcelSpec, TrackingNotice
from ordertrail.domain.errors import CarrierSignatureInvalid, InvalidCarrierNotification
from ordertrail.domain.money import Money
from ordertrail.domain.shipments import Milestone, Shipment, ShipmentStatus
from tests.adapters import NOW, booked, destination, fixture_json, meta

SECRET = "ph-test-secret"
GATEWAY = ParcelHubGateway(SECRET)


def body_of(name: str) -> bytes:
    return json.dumps(fixture_json(name), ensure_ascii=False).encode()


def signature(body: bytes, key: str = SECRET) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


# --- parsing ---------------------------------------------------------------------------------


def test_a_single_event_is_one_notice_with_one_scan() -> None:
    (notice,) = GATEWAY.parse(body_of("parcelhub_delivered.json"), {})
    assert notice.carrier == "parcelhub"
    assert notice.tracking_number == "PHK7Q2M9X4TA"
    (scan,) = notice.scans
    assert scan.milestone is Milestone.DELIVERED
    assert scan.occurred_at == datetime(2026, 11, 13, 7, 42, 10, tzinfo=UTC)
    assert scan.location == "Nanshan delivery station, Shenzhen, Guangdong, CN"
    assert scan.description == "Delivered, signed by the recipient"
    assert scan.carrier_event_id == "evt_01JCZ7W3K9M4Q2T8V6X0YB5N1D"


def test_a_batch_is_one_notice_per_event_in_order() -> None:
    notices = GATEWAY.parse(body_of("parcelhub_batch_cod.json"), {})
    assert [n.scans[0].milestone for n in notices[:-1]] == [
        Milestone.PICKED_UP,
        Milestone.IN_TRANSIT,
        Milestone.OUT_FOR_DELIVERY,
        Milestone.DELIVERY_FAILED,
        Milestone.OUT_FOR_DELIVERY,
        Milestone.DELIVERED,
    ]
    assert notices[1].scans[0].occurred_at == datetime(2026, 11, 11, 21, 30, tzinfo=UTC)  # "Z"


def test_cod_collected_is_cash_not_a_scan() -> None:
    cod = GATEWAY.parse(body_of("parcelhub_batch_cod.json"), {})[-1]
    assert cod.scans == ()
    assert cod.cash_collected == Money(13600, "CNY")
    assert cod.cash_reference == "PH-COD-20261113-0042"
    assert cod.cash_collected_at == datetime(2026, 11, 13, 7, 42, 30, tzinfo=UTC)


def test_every_event_code_is_mapped() -> None:
    assert set(CODES) == {
        "PICKED_UP",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
        "DELIVERY_ATTEMPT_FAILED",
        "RETURNED",
        "COD_COLLECTED",
    }
    event = fixture_json("parcelhub_delivered.json")
    event["code"] = "RETURNED"
    (notice,) = GATEWAY.parse(json.dumps(event).encode(), {})
    assert notice.scans[0].milestone is Milestone.RETURNED_TO_SENDER


def test_a_location_may_be_absent_or_plain_text() -> None:
    event = fixture_json("parcelhub_delivered.json")
    del event["location"]
    assert GATEWAY.parse(json.dumps(event).encode(), {})[0].scans[0].location == ""
    event["location"] = "Shenzhen"
    assert GATEWAY.parse(json.dumps(event).encode(), {})[0].scans[0].location == "Shenzhen"


def test_an_empty_batch_is_no_notices() -> None:
    assert GATEWAY.parse(b'{"events": []}', {}) == []


# --- duplicates, order, cash -----------------------------------------------------------------


def test_a_redelivered_webhook_gives_identical_notices() -> None:
    body = body_of("parcelhub_batch_cod.json")
    assert GATEWAY.parse(body, {}) == GATEWAY.parse(body, {})


def _feed(notices: list[TrackingNotice], shipment: Shipment) -> list[bool]:
    results: list[bool] = []
    for notice in notices:
        for scan in notice.scans:
            results.append(shipment.record_scan(scan, meta=meta(), now=NOW))
        if notice.cash_collected is not None:
            assert notice.cash_collected_at is not None
            results.append(
                shipment.record_cash_collected(
                    notice.cash_collected,
                    collected_at=notice.cash_collected_at,
                    reference=notice.cash_reference,
                    meta=meta(),
                    now=NOW,
                )
            )
    return results


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_events_end_delivered_with_cash_and_refeeding_records_nothing(
    seed: int,
) -> None:
    notices = GATEWAY.parse(body_of("parcelhub_batch_cod.json"), {})
    shipment = booked("parcelhub", "PHK7Q2M9X4TA", cod=Money(13600, "CNY"))
    shuffled = list(notices)
    random.Random(seed).shuffle(shuffled)

    assert all(_feed(shuffled, shipment))
    assert shipment.status is ShipmentStatus.DELIVERED
    assert shipment.cash_collected == Money(13600, "CNY")
    assert [s.milestone for s in shipment.timeline()][-1] is Milestone.DELIVERED

    version = shipment.version
    assert not any(_feed(GATEWAY.parse(body_of("parcelhub_batch_cod.json"), {}), shipment))
    assert shipment.version == version


# --- signatures ------------------------------------------------------------------------------


def test_a_signed_body_is_accepted_whatever_the_header_case() -> None:
    body = body_of("parcelhub_delivered.json")
    GATEWAY.verify(body, {SIGNATURE_HEADER: signature(body)})
    GATEWAY.verify(body, {"x-parcelhub-signature": signature(body).upper().replace("SHA", "sha")})


def test_signed_body_helper_matches_an_independent_hmac() -> None:
    body, headers = GATEWAY.signed_body(fixture_json("parcelhub_delivered.json"))
    assert headers[SIGNATURE_HEADER] == signature(body)
    GATEWAY.verify(body, headers)


@pytest.mark.parametrize(
    "headers_for",
    [
        lambda body: {},
        lambda body: {SIGNATURE_HEADER: ""},
        lambda body: {SIGNATURE_HEADER: signature(body)[len("sha256=") :]},  # no scheme
        lambda body: {SIGNATURE_HEADER: signature(body, key="another-secret")},
        lambda body: {SIGNATURE_HEADER: signature(body + b" ")},
        lambda body: {SIGNATURE_HEADER: "sha256=zz"},
        lambda body: {SIGNATURE_HEADER: "sha256=é"},
    ],
)
def test_missing_or_wrong_signatures_are_refused(
    headers_for: Callable[[bytes], dict[str, str]],
) -> None:
    body = body_of("parcelhub_delivered.json")
    with pytest.raises(CarrierSignatureInvalid) as caught:
        GATEWAY.verify(body, headers_for(body))
    assert caught.value.code == "logistics.bad_signature"


def test_a_tampered_body_is_refused() -> None:
    body = body_of("parcelhub_delivered.json")
    header = signature(body)
    tampered = body.replace(b"DELIVERED", b"RETURNED")
    with pytest.raises(CarrierSignatureInvalid):
        GATEWAY.verify(tampered, {SIGNATURE_HEADER: header})


def test_a_secret_is_required() -> None:
    with pytest.raises(ValueError, match="secret"):
        ParcelHubGateway("")


# --- malformed webhooks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("event_id"),
        lambda e: e.update(event_id="  "),
        lambda e: e.pop("tracking_number"),
        lambda e: e.update(tracking_number="PH 123"),
        lambda e: e.update(code="LOST_IN_SPACE"),
        lambda e: e.update(code=7),
        lambda e: e.update(occurred_at="2026-11-13 15:42:10"),  # no offset
        lambda e: e.update(occurred_at="yesterday"),
        lambda e: e.update(occurred_at=1731483730),
        lambda e: e.update(location=["Shenzhen"]),
        lambda e: e.update(location={"city": 12.5}),
        lambda e: e.update(code="COD_COLLECTED"),  # without cod
        lambda e: e.update(code="COD_COLLECTED", cod={"amount": 1.5, "currency": "CNY"}),
        lambda e: e.update(code="COD_COLLECTED", cod={"amount": True, "currency": "CNY"}),
        lambda e: e.update(
            code="COD_COLLECTED", cod={"amount": 100, "currency": "cny", "receipt": "R"}
        ),
        lambda e: e.update(code="COD_COLLECTED", cod={"amount": 100, "currency": "CNY"}),
        lambda e: e.update(
            code="COD_COLLECTED", cod={"amount": -5, "currency": "CNY", "receipt": "R"}
        ),
    ],
)
def test_malformed_events_raise_the_typed_error(mutate: Callable[[dict[str, Any]], object]) -> None:
    event = fixture_json("parcelhub_delivered.json")
    mutate(event)
    for body in (json.dumps(event), json.dumps({"events": [event]})):
        with pytest.raises(InvalidCarrierNotification) as caught:
            GATEWAY.parse(body.encode(), {})
        assert caught.value.code == "logistics.invalid_notification"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'"text"', b'{"events": {}}', b'{"events": [1]}', b"\xff"],
)
def test_malformed_bodies_raise_the_typed_error(body: bytes) -> None:
    with pytest.raises(InvalidCarrierNotification):
        GATEWAY.parse(body, {})


# --- booking ---------------------------------------------------------------------------------


def test_sandbox_booking_is_deterministic_and_parcelhub_shaped() -> None:
    shipment_id = uuid4()

    def parcel() -> ParcelSpec:
        return ParcelSpec(shipment_id, destination(), 800, None, Money(5000, "CNY"))

    number = GATEWAY.book(parcel())
    assert number == GATEWAY.book(parcel())
    assert re.fullmatch(r"PH[A-Z2-7]{10}", number)
    booked("parcelhub", number)


def test_the_acknowledgement_is_json() -> None:
    content_type, body = GATEWAY.acknowledgement()
    assert content_type == "application/json"
    assert json.loads(body) == {"received": True}
