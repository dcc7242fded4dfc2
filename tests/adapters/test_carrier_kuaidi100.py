"""Kuaidi100 subscription pushes: parsing, time zones, stable ids, signatures, booking."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

import pytest

from ordertrail.adapters.carriers.kuaidi100 import (
    STATES,
    Kuaidi100Gateway,
    china_time,
    milestone_for_code,
    milestone_for_name,
)
from ordertrail.application.carriers import ParcelSpec, TrackingNotice
from ordertrail.domain.errors import CarrierSignatureInvalid, InvalidCarrierNotification
from ordertrail.domain.money import Money
from ordertrail.domain.shipments import Milestone, ShipmentStatus
from tests.adapters import NOW, booked, destination, fixture_json, meta

SALT = "k100-test-salt"
Tamper = Callable[[str, str], dict[str, str]]
Mutation = Callable[[dict[str, Any]], object]
GATEWAY = Kuaidi100Gateway(SALT)


def push(name: str) -> bytes:
    return GATEWAY.signed_push(fixture_json(name))


def only_notice(body: bytes) -> TrackingNotice:
    notices = GATEWAY.parse(body, {})
    assert len(notices) == 1
    return notices[0]


# --- parsing ---------------------------------------------------------------------------------


def test_a_delivered_history_becomes_scans_oldest_first() -> None:
    notice = only_notice(push("kuaidi100_sf_delivered.json"))

    assert notice.carrier == "kuaidi100"
    assert notice.tracking_number == "SF142857000123"
    assert notice.cash_collected is None
    assert [scan.milestone for scan in notice.scans] == [
        Milestone.PICKED_UP,  # 1 揽收 (the 102 待揽收 entry before it is no scan)
        Milestone.IN_TRANSIT,  # 0 在途
        Milestone.IN_TRANSIT,  # 1002 干线
        Milestone.IN_TRANSIT,  # 1002 干线
        Milestone.IN_TRANSIT,  # 1001 到达派件城市
        Milestone.OUT_FOR_DELIVERY,  # 5 派件
        Milestone.OUT_FOR_DELIVERY,  # 501 投柜或驿站
        Milestone.DELIVERED,  # 304 投柜或站签收
    ]
    times = [scan.occurred_at for scan in notice.scans]
    assert times == sorted(times)
    assert all(scan.occurred_at.tzinfo is UTC for scan in notice.scans)


def test_china_local_times_become_utc() -> None:
    notice = only_notice(push("kuaidi100_sf_delivered.json"))
    delivered = notice.scans[-1]
    # "2026-11-13 18:52:32" in Asia/Shanghai (UTC+8, no daylight saving)
    assert delivered.occurred_at == datetime(2026, 11, 13, 10, 52, 32, tzinfo=UTC)
    assert china_time("2026-07-01 00:30:00") == datetime(2026, 6, 30, 16, 30, tzinfo=UTC)


def test_descriptions_and_locations_come_from_context_and_area() -> None:
    notice = only_notice(push("kuaidi100_sf_delivered.json"))
    picked_up = notice.scans[0]
    assert picked_up.description == "顺丰速运 已收取快件"
    assert picked_up.location == "广东,深圳市,南山区"
    assert notice.scans[-1].location == ""  # areaName null


def test_status_names_are_read_when_there_is_no_status_code() -> None:
    notice = only_notice(push("kuaidi100_sf_returned.json"))
    assert [scan.milestone for scan in notice.scans] == [
        Milestone.PICKED_UP,  # 揽收
        Milestone.IN_TRANSIT,  # 在途
        Milestone.OUT_FOR_DELIVERY,  # 派件
        Milestone.DELIVERY_FAILED,  # 疑难 (refused)
        Milestone.DELIVERY_FAILED,  # 退回 (on its way back)
        Milestone.RETURNED_TO_SENDER,  # 退签
    ]


def test_without_entry_statuses_the_newest_entry_takes_the_parcel_state() -> None:
    notice = only_notice(push("kuaidi100_basic_polling.json"))
    assert [scan.milestone for scan in notice.scans] == [
        Milestone.IN_TRANSIT,
        Milestone.IN_TRANSIT,
        Milestone.OUT_FOR_DELIVERY,  # state 5 派件
    ]


def test_every_documented_state_has_a_mapping() -> None:
    for state in STATES:
        assert milestone_for_code(state.code) is state.milestone
        assert milestone_for_name(state.name) is state.milestone
    assert milestone_for_code("3") is Milestone.DELIVERED
    assert milestone_for_code("4") is Milestone.RETURNED_TO_SENDER
    assert milestone_for_code("101") is None  # waybill created: not picked up yet
    # unknown advanced codes fall back to their base state
    assert milestone_for_code("305") is Milestone.DELIVERED
    assert milestone_for_code("1004") is Milestone.IN_TRANSIT
    assert milestone_for_code("99") is Milestone.IN_TRANSIT


def test_an_end_of_monitoring_push_without_result_is_empty() -> None:
    body = GATEWAY.signed_push({"status": "abort", "message": "3天查询无记录"})
    assert GATEWAY.parse(body, {}) == []


def test_an_abort_with_an_empty_history_has_no_scans() -> None:
    param = {"status": "abort", "message": "60天无变化", "lastResult": {"nu": "SF1", "data": []}}
    (notice,) = GATEWAY.parse(GATEWAY.signed_push(param), {})
    assert notice.scans == ()


# --- duplicates and order --------------------------------------------------------------------


def test_a_re_pushed_history_gives_identical_scans_and_ids() -> None:
    first = only_notice(push("kuaidi100_sf_delivered.json"))
    again = only_notice(push("kuaidi100_sf_delivered.json"))
    assert first == again
    ids = [scan.carrier_event_id for scan in first.scans]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("k100-") for i in ids)


def test_ids_do_not_depend_on_status_fields_or_on_later_entries() -> None:
    full = fixture_json("kuaidi100_sf_delivered.json")
    earlier = json.loads(json.dumps(full))
    earlier["lastResult"]["data"] = earlier["lastResult"]["data"][3:]  # an earlier push
    for entry in earlier["lastResult"]["data"]:
        entry.pop("statusCode")  # and without the advanced statuses
    ids_full = {s.carrier_event_id for s in only_notice(GATEWAY.signed_push(full)).scans}
    ids_earlier = {s.carrier_event_id for s in only_notice(GATEWAY.signed_push(earlier)).scans}
    assert ids_earlier <= ids_full


def test_an_entry_repeated_within_one_push_is_one_scan() -> None:
    param = fixture_json("kuaidi100_basic_polling.json")
    param["lastResult"]["data"].append(param["lastResult"]["data"][-1])
    assert len(only_notice(GATEWAY.signed_push(param)).scans) == 3


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        ("kuaidi100_sf_delivered.json", ShipmentStatus.DELIVERED),
        ("kuaidi100_sf_returned.json", ShipmentStatus.RETURNED_TO_SENDER),
    ],
)
@pytest.mark.parametrize("seed", range(5))
def test_shuffled_scans_reach_the_same_status_and_refeeding_records_nothing(
    fixture: str, status: ShipmentStatus, seed: int
) -> None:
    notice = only_notice(push(fixture))
    shipment = booked(notice.carrier, notice.tracking_number)
    scans = list(notice.scans)
    random.Random(seed).shuffle(scans)

    recorded = [shipment.record_scan(scan, meta=meta(), now=NOW) for scan in scans]
    assert all(recorded)
    assert shipment.status is status
    assert len(shipment.scans) == len(notice.scans)

    version = shipment.version
    again = only_notice(push(fixture))  # Kuaidi100 pushes the whole history again
    assert not any(shipment.record_scan(scan, meta=meta(), now=NOW) for scan in again.scans)
    assert shipment.version == version
    assert shipment.status is status


# --- signatures ------------------------------------------------------------------------------


def test_a_signed_push_is_accepted() -> None:
    GATEWAY.verify(push("kuaidi100_sf_delivered.json"), {})


def test_the_signature_is_upper_case_md5_of_param_and_salt() -> None:
    # md5('{"nu":"SF1"}' + "s3cret"), computed independently
    assert Kuaidi100Gateway("s3cret").sign('{"nu":"SF1"}') == "E2A64DAD4758D97FC52F38CB510F221D"


def test_a_lower_case_signature_is_accepted() -> None:
    param = json.dumps(fixture_json("kuaidi100_basic_polling.json"), ensure_ascii=False)
    body = urlencode({"param": param, "sign": GATEWAY.sign(param).lower()}).encode()
    GATEWAY.verify(body, {})


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p, s: {"param": p.replace("SF300011112222", "SF300011112223"), "sign": s},
        lambda p, s: {"param": p, "sign": s[:-1] + ("0" if s[-1] != "0" else "1")},
        lambda p, s: {"param": p},
        lambda p, s: {"param": p, "sign": ""},
        lambda p, s: {"param": p, "sign": Kuaidi100Gateway("other-salt").sign(p)},
        lambda p, s: {"sign": s},
    ],
)
def test_tampered_or_unsigned_pushes_are_refused(tamper: Tamper) -> None:
    param = json.dumps(fixture_json("kuaidi100_basic_polling.json"), ensure_ascii=False)
    body = urlencode(tamper(param, GATEWAY.sign(param))).encode()
    with pytest.raises(CarrierSignatureInvalid) as caught:
        GATEWAY.verify(body, {})
    assert caught.value.code == "logistics.bad_signature"


def test_an_unreadable_body_fails_verification_as_a_bad_signature() -> None:
    with pytest.raises(CarrierSignatureInvalid):
        GATEWAY.verify(b"\xff\xfe", {})


def test_a_salt_is_required() -> None:
    with pytest.raises(ValueError, match="salt"):
        Kuaidi100Gateway("")


# --- malformed pushes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"sign=ABC",
        b"param=not-json",
        b"param=%5B%5D",  # []
        b"param=%7B%7D",  # {}: no lastResult
        b"param=1&param=2",
        b"param=%ff",
    ],
)
def test_malformed_pushes_raise_the_typed_error(body: bytes) -> None:
    with pytest.raises(InvalidCarrierNotification) as caught:
        GATEWAY.parse(body, {})
    assert caught.value.code == "logistics.invalid_notification"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.pop("nu"),
        lambda r: r.update(nu="no spaces allowed"),
        lambda r: r.update(data="not a list"),
        lambda r: r["data"].append("not an object"),
        lambda r: r["data"][0].update(ftime="yesterday", time="just now"),
        lambda r: r["data"][0].update(ftime="1899-01-01 00:00:00"),
        lambda r: r["data"][0].update(context=["a", "list"]),
        lambda r: r["data"][0].update(statusCode={"x": 1}),
    ],
)
def test_malformed_results_raise_the_typed_error(mutate: Mutation) -> None:
    param = fixture_json("kuaidi100_basic_polling.json")
    mutate(param["lastResult"])
    with pytest.raises(InvalidCarrierNotification):
        GATEWAY.parse(GATEWAY.signed_push(param), {})


def test_long_or_dirty_texts_are_cleaned_to_fit_a_scan() -> None:
    param = fixture_json("kuaidi100_basic_polling.json")
    param["lastResult"]["data"][0]["context"] = "派件\x00中\n" + "长" * 900
    param["lastResult"]["data"][0]["areaName"] = "浙江," * 100
    notice = only_notice(GATEWAY.signed_push(param))
    newest = notice.scans[-1]
    assert len(newest.description) <= 500
    assert "\x00" not in newest.description
    assert "\n" not in newest.description
    assert len(newest.location) <= 200
    booked("kuaidi100", notice.tracking_number).record_scan(newest, meta=meta(), now=NOW)


# --- booking and acknowledgement --------------------------------------------------------------


def _parcel(shipment_id: UUID | None = None) -> ParcelSpec:
    return ParcelSpec(
        shipment_id=shipment_id or uuid4(),
        destination=destination(),
        weight_grams=1200,
        cod_amount=None,
        declared_value=Money(13600, "CNY"),
    )


def test_sandbox_booking_is_deterministic_and_sf_shaped() -> None:
    parcel = _parcel()
    number = GATEWAY.book(parcel)
    assert number == GATEWAY.book(_parcel(parcel.shipment_id))
    assert number.startswith("SF")
    assert len(number) == 14
    assert number[2:].isdigit()
    assert GATEWAY.book(_parcel()) != number
    booked("kuaidi100", number)  # a valid tracking number for a Shipment


def test_the_acknowledgement_is_kuaidi100s_success_reply() -> None:
    content_type, body = GATEWAY.acknowledgement()
    assert content_type.startswith("application/json")
    assert json.loads(body) == {"result": True, "returnCode": "200", "message": "成功"}
