"""Kuaidi100 (快递100): tracking by its subscription push (订阅推送).

Kuaidi100 watches a tracking number of a courier company (``com``, e.g. ``shunfeng``) and
POSTs ``application/x-www-form-urlencoded`` with two fields to our callback URL:

* ``param`` — JSON: ``status`` (polling / shutdown / abort / updateall), ``message``,
  ``lastResult`` {``nu`` tracking number, ``com``, ``state``, ``ischeck``, ``data``: the
  *whole* history, newest first, each ``{time, ftime, context, status?, statusCode?,
  areaName?, location?...}``};
* ``sign`` — ``MD5(param + salt)`` in upper-case hex, the salt being the one we gave when
  subscribing.

Times are China local time without a zone. Every push repeats the whole history, so each
entry gets an id derived from (tracking number, time, context): a re-pushed entry has the
same id and ``Shipment.record_scan`` records it once. Kuaidi100 reports no cash on
delivery; COD parcels go to a carrier that does (see docs/logistics.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ordertrail.adapters.carriers import base
from ordertrail.application.carriers import ParcelSpec, TrackingNotice
from ordertrail.domain.errors import CarrierSignatureInvalid, InvalidCarrierNotification
from ordertrail.domain.shipments import Milestone, Scan

MAX_ENTRIES = 1000
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


def _china_time_zone() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:  # no tz database: China has kept UTC+8 without DST since 1991
        return timezone(timedelta(hours=8), "CST")


CHINA = _china_time_zone()


@dataclass(frozen=True)
class State:
    """One Kuaidi100 logistics state (``state`` / ``statusCode``) and its milestone.

    ``milestone`` None: the entry says nothing about the parcel's journey (a waybill
    created or cancelled before pickup) and becomes no scan.
    """

    code: str
    name: str
    milestone: Milestone | None


# The base states (0-8, 14) and the "advanced" states sent with resultv2=4 (3-4 digits,
# grouped under their base state). Source: Kuaidi100's push documentation; see
# docs/logistics.md for the links and the reasons behind each mapping.
STATES: tuple[State, ...] = (
    State("1", "揽收", Milestone.PICKED_UP),
    State("101", "已下单", None),
    State("102", "待揽收", None),
    State("103", "已揽收", Milestone.PICKED_UP),
    State("0", "在途", Milestone.IN_TRANSIT),
    State("1001", "到达派件城市", Milestone.IN_TRANSIT),
    State("1002", "干线", Milestone.IN_TRANSIT),
    State("1003", "转递", Milestone.IN_TRANSIT),
    State("5", "派件", Milestone.OUT_FOR_DELIVERY),
    State("501", "投柜或驿站", Milestone.OUT_FOR_DELIVERY),
    State("3", "签收", Milestone.DELIVERED),
    State("301", "本人签收", Milestone.DELIVERED),
    State("302", "派件异常后签收", Milestone.DELIVERED),
    State("303", "代签", Milestone.DELIVERED),
    State("304", "投柜或站签收", Milestone.DELIVERED),
    State("6", "退回", Milestone.DELIVERY_FAILED),
    State("4", "退签", Milestone.RETURNED_TO_SENDER),
    State("401", "已销单", None),
    State("14", "拒签", Milestone.DELIVERY_FAILED),
    State("7", "转投", Milestone.IN_TRANSIT),
    State("2", "疑难", Milestone.DELIVERY_FAILED),
    State("201", "超时未签收", Milestone.DELIVERY_FAILED),
    State("202", "超时未更新", Milestone.IN_TRANSIT),
    State("203", "拒收", Milestone.DELIVERY_FAILED),
    State("204", "派件异常", Milestone.DELIVERY_FAILED),
    State("205", "柜或驿站超时未取", Milestone.DELIVERY_FAILED),
    State("206", "无法联系", Milestone.DELIVERY_FAILED),
    State("207", "超区", Milestone.DELIVERY_FAILED),
    State("208", "滞留", Milestone.IN_TRANSIT),
    State("209", "破损", Milestone.IN_TRANSIT),
    State("210", "销单", None),
    State("8", "清关", Milestone.IN_TRANSIT),
    State("10", "待清关", Milestone.IN_TRANSIT),
    State("11", "清关中", Milestone.IN_TRANSIT),
    State("12", "已清关", Milestone.IN_TRANSIT),
    State("13", "清关异常", Milestone.IN_TRANSIT),
)
_BY_CODE = {state.code: state for state in STATES}
# Older names some couriers' entries still carry.
_BY_NAME = {state.name: state for state in STATES} | {
    "转单": _BY_CODE["7"],
    "已签收": _BY_CODE["3"],
    "投柜或驿站签收": _BY_CODE["304"],
}


def milestone_for_code(code: str) -> Milestone | None:
    """The milestone of a state code. An unknown advanced code counts as its base state
    (``1004`` as ``0``, ``305`` as ``3``); anything else unknown as in transit."""
    code = code.strip()
    state = _BY_CODE.get(code)
    if state is None and len(code) == 4 and code.startswith("100"):
        state = _BY_CODE["0"]
    elif state is None and len(code) == 3 and code.isdigit():
        state = _BY_CODE.get(code[0])
    return state.milestone if state is not None else Milestone.IN_TRANSIT


def milestone_for_name(name: str) -> Milestone | None:
    state = _BY_NAME.get(name.strip())
    return state.milestone if state is not None else Milestone.IN_TRANSIT


def china_time(text: str) -> datetime | None:
    """A Kuaidi100 time ("2024-05-01 10:05:00", China local) as an aware time, or None."""
    for fmt in _TIME_FORMATS:
        try:
            naive = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=CHINA)
    return None


class Kuaidi100Gateway:
    """A courier company tracked through Kuaidi100 (by default SF Express, ``shunfeng``).

    ``salt`` is the secret given to Kuaidi100 when subscribing. In sandbox mode ``book``
    makes up the courier's tracking number from the shipment id; live booking (an order
    with the courier, then a Kuaidi100 subscription) is not wired yet.
    """

    def __init__(
        self,
        salt: str,
        *,
        code: str = "kuaidi100",
        company: str = "shunfeng",
        number_prefix: str = "SF",
        sandbox: bool = True,
    ) -> None:
        if not isinstance(salt, str) or not salt:
            raise ValueError("Kuaidi100 needs a non-empty salt to authenticate its pushes")
        self._salt = salt
        self._code = code
        self.company = company
        self.number_prefix = number_prefix
        self.sandbox = sandbox

    @property
    def code(self) -> str:
        return self._code

    # --- booking -----------------------------------------------------------------------------

    def book(self, parcel: ParcelSpec) -> str:
        if not self.sandbox:
            raise NotImplementedError("live booking through Kuaidi100 is not implemented")
        seed = f"kuaidi100\x1f{self.company}\x1f{parcel.shipment_id}".encode()
        number = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % 10**12
        return f"{self.number_prefix}{number:012d}"

    # --- callbacks ---------------------------------------------------------------------------

    def sign(self, param: str) -> str:
        """Kuaidi100's signature of a ``param`` text: upper-case MD5 of param + salt."""
        data = (param + self._salt).encode("utf-8", "surrogatepass")
        return hashlib.md5(data, usedforsecurity=False).hexdigest().upper()

    def signed_push(self, param: Mapping[str, object] | str) -> bytes:
        """A push body as Kuaidi100 would send it (for the sandbox and tests)."""
        text = param if isinstance(param, str) else json.dumps(param, ensure_ascii=False)
        form = {"param": text, "sign": self.sign(text)}
        return urlencode(form, encoding="utf-8", errors="surrogatepass").encode("ascii")

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            form = _form(body)
        except InvalidCarrierNotification as error:
            raise CarrierSignatureInvalid(f"cannot check the signature: {error.message}") from None
        param, sign = form.get("param"), form.get("sign")
        if param is None or not sign:
            raise CarrierSignatureInvalid("the push is not signed")
        expected = self.sign(param).encode("ascii")
        received = sign.strip().upper().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected, received):
            raise CarrierSignatureInvalid("the push signature does not match")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingNotice]:
        form = _form(body)
        param = form.get("param")
        if param is None:
            base.invalid("the push has no param field", field="param")
        push = base.mapping(base.decode_json(param, "param"), "param")
        monitor = base.string(push, "status", "param", required=False, limit=32)
        last = push.get("lastResult")
        if last is None and monitor.strip() in ("abort", "shutdown"):
            return []  # the end of monitoring, without a result: nothing to record
        result = base.mapping(last, "param.lastResult")
        where = "param.lastResult"
        nu = base.tracking_number(base.string(result, "nu", where, limit=64), f"{where}.nu")
        state = base.string(result, "state", where, required=False, limit=16)
        entries = base.items(result.get("data") or [], f"{where}.data", limit=MAX_ENTRIES)
        scans: list[Scan] = []
        seen: set[str] = set()
        for index, raw in enumerate(entries):
            entry = base.mapping(raw, f"{where}.data[{index}]")
            scan = self._scan(nu, entry, newest_state=state if index == 0 else "", index=index)
            if scan is not None and scan.carrier_event_id not in seen:
                seen.add(scan.carrier_event_id)
                scans.append(scan)
        scans.reverse()  # Kuaidi100 lists newest first
        scans.sort(key=lambda scan: scan.occurred_at)  # stable: equal times keep their order
        return [TrackingNotice(carrier=self.code, tracking_number=nu, scans=tuple(scans))]

    def acknowledgement(self) -> tuple[str, bytes]:
        reply = {"result": True, "returnCode": "200", "message": "成功"}
        return "application/json;charset=UTF-8", json.dumps(reply, ensure_ascii=False).encode()

    # --- one history entry -------------------------------------------------------------------

    def _scan(
        self, nu: str, entry: Mapping[str, object], *, newest_state: str, index: int
    ) -> Scan | None:
        where = f"param.lastResult.data[{index}]"
        context = base.string(entry, "context", where, required=False, limit=4000)
        raw_time = base.string(entry, "time", where, required=False, limit=64)
        raw_ftime = base.string(entry, "ftime", where, required=False, limit=64)
        moment = china_time(raw_ftime) or china_time(raw_time)
        if moment is None:
            base.invalid(f"{where} has no readable time", field=f"{where}.ftime")
        code = base.string(entry, "statusCode", where, required=False, limit=16).strip()
        name = base.string(entry, "status", where, required=False, limit=64).strip()
        if code:
            milestone = milestone_for_code(code)
        elif name:
            milestone = milestone_for_name(name)
        elif newest_state.strip():  # no per-entry status: the parcel's state is the newest's
            milestone = milestone_for_code(newest_state)
        else:
            milestone = Milestone.IN_TRANSIT
        if milestone is None:
            return None
        place = base.string(entry, "location", where, required=False) or base.string(
            entry, "areaName", where, required=False
        )
        return Scan(
            milestone=milestone,
            occurred_at=base.plausible_utc(moment, f"{where}.ftime"),
            location=base.clean_text(place, base.MAX_LOCATION),
            description=base.clean_text(context, base.MAX_DESCRIPTION),
            carrier_event_id=base.digest_id("k100", nu, raw_time or raw_ftime, context),
        )


def _form(body: bytes) -> dict[str, str]:
    """The ``param`` and ``sign`` fields of a form-encoded push."""
    base.check_size(body)
    text = base.decode_utf8(body, "the push")
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=50, errors="strict")
    except ValueError:  # too many fields, or percent-escapes that are not UTF-8
        base.invalid("the push is not a form")
    form: dict[str, str] = {}
    for name in ("param", "sign"):
        values = fields.get(name, [])
        if len(values) > 1:
            base.invalid(f"the push has {name} twice", field=name)
        if values:
            form[name] = values[0]
    return form
