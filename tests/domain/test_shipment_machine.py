"""A parcel's status only ever moves forward, whatever its carrier sends: duplicated scans
record nothing, late scans join the timeline without moving the status back, delivery and
return to sender are final whenever they arrive, and cash on delivery is collected at most
once, for the exact amount due. The carrier's cash-on-delivery account counts each parcel's
collection once and never has more remitted than collected.

Cash is refused on a cancelled or returned parcel; reported before any scan, it records the
pickup too (a courier had the parcel), after which the parcel cannot be cancelled. A
return-to-sender scan arriving after cash was reported is still final (the carrier's word
wins; the order then owes the cash back): what is checked is that no ``CashCollected`` is
ever recorded while the parcel is cancelled or returned, and that a parcel a courier has
had is never cancelled.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import cast
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ordertrail.domain import ids
from ordertrail.domain.cod import CarrierAccount
from ordertrail.domain.errors import DomainError
from ordertrail.domain.fulfilment import MAX_PARCEL_WEIGHT_GRAMS
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address
from ordertrail.domain.shipments import (
    MAX_PARCEL_LINES,
    Milestone,
    ParcelLine,
    Scan,
    Shipment,
    ShipmentStatus,
)
from tests.domain.harness import (
    START,
    Accepted,
    EventLog,
    Outcome,
    Rejected,
    Text,
    first_rejection,
    new_meta,
    perform,
    texts,
)

INVALID = "logistics.invalid_shipment"
TRANSITION = "logistics.invalid_transition"
COD_MISMATCH = "logistics.cod_amount_mismatch"
REMITTANCE_EXCEEDS = "logistics.remittance_exceeds_collected"

CURRENCY = "CNY"
CARRIER = "sf-express"
MAX_PARCELS = 3

#: The same instant reads differently in each of these; the model never relies on UTC.
ZONES: tuple[tzinfo, ...] = (
    UTC,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=-5, minutes=-30)),
    ZoneInfo("Asia/Shanghai"),
)
#: A small pool, so that carrier event ids collide (also across milestones).
EVENT_IDS = ("", "", "", "E1", "E2", "E3", "E4")
FINAL = {
    Milestone.DELIVERED: ShipmentStatus.DELIVERED,
    Milestone.RETURNED_TO_SENDER: ShipmentStatus.RETURNED_TO_SENDER,
}
TERMINAL = frozenset(
    {ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED_TO_SENDER, ShipmentStatus.CANCELLED}
)
#: Parcels the machine never books: the carrier account hears of them all the same.
OTHER_PARCELS = tuple(UUID(int=n) for n in range(901, 904))

ADDRESS = Address.create(
    recipient="Li Lei",
    phone="+86 139 0000 0000",
    line1="88 Huaihai Road",
    city="Shanghai",
    country="CN",
)


def key_of(scan: Scan) -> str:
    """What makes two notifications the same scan (the specification, not the domain's)."""
    if scan.carrier_event_id:
        return scan.carrier_event_id
    # The same instant is the same scan, whatever offset the carrier wrote it with.
    return f"{scan.milestone.value}@{scan.occurred_at.astimezone(UTC).isoformat()}"


# --- strategies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanInput:
    """A scan as an adapter may hand it over, and whether the domain must accept it."""

    scan: Scan
    valid: bool


def moments(minutes: st.SearchStrategy[int]) -> st.SearchStrategy[datetime]:
    return st.builds(
        lambda m, zone: (START + timedelta(minutes=m)).astimezone(zone),
        minutes,
        st.sampled_from(ZONES),
    )


#: Scan times within ten days of the booking, in several zones; few distinct values, so
#: that equal times and exact duplicates are common.
scan_times = moments(st.one_of(st.integers(0, 10), st.integers(0, 60 * 24 * 10)))


#: Final milestones end a parcel's story: they come less often, so that long stories happen.
milestones = st.one_of(
    st.sampled_from([m for m in Milestone if m not in FINAL]), st.sampled_from(Milestone)
)


@st.composite
def scan_inputs(draw: st.DrawFn, times: st.SearchStrategy[datetime] = scan_times) -> ScanInput:
    milestone = draw(milestones)
    occurred_at = draw(times)
    location = draw(texts(200, allow_empty=True))
    description = draw(texts(500, allow_empty=True))
    event_id = draw(st.sampled_from(EVENT_IDS))
    flaw = draw(st.sampled_from(["none"] * 8 + ["naive time", "milestone as text"]))
    given_milestone: Milestone = milestone
    if flaw == "naive time":
        occurred_at = occurred_at.replace(tzinfo=None)
    elif flaw == "milestone as text":
        given_milestone = cast("Milestone", milestone.value)  # what an untyped adapter sends
    scan = Scan(given_milestone, occurred_at, location.value, description.value, event_id)
    return ScanInput(scan, flaw == "none" and location.valid and description.valid)


cod_amounts = st.one_of(st.none(), st.integers(1, 100_000).map(lambda n: Money(n, CURRENCY)))


# --- the model ----------------------------------------------------------------------------


@dataclass
class Parcel:
    """One booked parcel, its history, and what the model says about it."""

    shipment: Shipment
    log: EventLog
    cod: Money | None
    scans: list[Scan] = field(default_factory=list)  # every scan recorded, in arrival order
    keys: set[str] = field(default_factory=set)
    cancelled: bool = False
    cash: Money | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    returned_at: datetime | None = None
    #: the aggregate's status after every step, to check it never leaves a terminal one
    statuses: list[ShipmentStatus] = field(default_factory=list)

    def __repr__(self) -> str:  # what a failing example prints
        return f"<parcel {self.shipment.id.int} cod={self.cod and self.cod.amount}>"

    def status_with(self, scans: list[Scan]) -> ShipmentStatus:
        """The status the specification gives a parcel with these scans (arrival order)."""
        if self.cancelled:
            return ShipmentStatus.CANCELLED
        finals = [s for s in scans if s.milestone in FINAL]
        if finals:
            return FINAL[finals[0].milestone]  # the first final scan to arrive wins
        if not scans:
            return ShipmentStatus.AWAITING_PICKUP
        # the newest scan; of equally new ones, the one that arrived last
        _, newest = max(enumerate(scans), key=lambda pair: (pair[1].occurred_at, pair[0]))
        return ShipmentStatus(newest.milestone.value)

    @property
    def status(self) -> ShipmentStatus:
        return self.status_with(self.scans)

    @property
    def newest_scan_at(self) -> datetime:
        return max((s.occurred_at for s in self.scans), default=START)


@dataclass
class AccountModel:
    collections: dict[UUID, int] = field(default_factory=dict)
    remittances: dict[str, int] = field(default_factory=dict)

    @property
    def outstanding(self) -> int:
        return sum(self.collections.values()) - sum(self.remittances.values())


class ShipmentMachine(RuleBasedStateMachine):
    """Books parcels (with and without cash on delivery) of one carrier and sends them
    scans in any order, repeated, with times going backwards and forwards, cash-collected
    reports and cancellations; the carrier's COD account follows the collections and
    receives remittances."""

    parcels = Bundle("parcels")

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = START
        self.booked: list[Parcel] = []
        self.account: CarrierAccount
        self.account_log = EventLog()
        self.account_model = AccountModel()
        self.remittances_sent = 0

    @initialize(target=parcels, cod=cod_amounts)
    def open_account_and_book_a_parcel(self, cod: Money | None) -> Parcel:
        self.account = CarrierAccount.open(CARRIER, CURRENCY, meta=new_meta(), now=self.now)
        assert self.account.id == ids.carrier_account_id(CARRIER)
        assert [type(e).__name__ for e in self.account_log.collect(self.account)] == ["Opened"]
        return self.book(cod)

    # --- booking ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.booked) < MAX_PARCELS)
    @rule(target=parcels, cod=cod_amounts)
    def book_another_parcel(self, cod: Money | None) -> Parcel:
        return self.book(cod)

    def book(self, cod: Money | None) -> Parcel:
        number = len(self.booked) + 1
        shipment = Shipment.book(
            shipment_id=UUID(int=number),
            order_id=UUID(int=100),
            delivery_group="home",
            address=ADDRESS,
            lines=[ParcelLine(1, "TEA-1", 2, "main"), ParcelLine(2, "CUP-1", 1, "main")],
            carrier=CARRIER,
            tracking_number=f"SF{number:08d}",
            weight_grams=900,
            cod_amount=cod,
            meta=new_meta(),
            now=self.now,
        )
        log = EventLog()
        assert [type(e).__name__ for e in log.collect(shipment)] == ["Booked"]
        assert shipment.status is ShipmentStatus.AWAITING_PICKUP
        assert shipment.holder_id == shipment.order_id
        parcel = Parcel(shipment, log, cod, statuses=[shipment.status])
        self.booked.append(parcel)
        return parcel

    @rule(
        flaw=st.sampled_from(
            [
                "no lines",
                "too many lines",
                "a line twice",
                "zero quantity",
                "quantity as bool",
                "no weight",
                "too heavy",
                "weight as float",
                "zero cash",
                "negative cash",
                "bad carrier",
                "bad tracking number",
                "bad delivery group",
            ]
        )
    )
    def a_malformed_booking_is_refused(self, flaw: str) -> None:
        lines = [ParcelLine(1, "TEA-1", 1, "main")]
        weight: object = 500
        cod: Money | None = None
        carrier, tracking, group = CARRIER, "SF-BAD", "home"
        if flaw == "no lines":
            lines = []
        elif flaw == "too many lines":
            lines = [ParcelLine(n, "TEA-1", 1, "main") for n in range(MAX_PARCEL_LINES + 1)]
        elif flaw == "a line twice":
            lines = [ParcelLine(1, "TEA-1", 1, "main"), ParcelLine(1, "TEA-1", 2, "east")]
        elif flaw == "zero quantity":
            lines = [ParcelLine(1, "TEA-1", 0, "main")]
        elif flaw == "quantity as bool":
            lines = [ParcelLine(1, "TEA-1", True, "main")]
        elif flaw == "no weight":
            weight = 0
        elif flaw == "too heavy":
            weight = MAX_PARCEL_WEIGHT_GRAMS + 1
        elif flaw == "weight as float":
            weight = 500.0
        elif flaw == "zero cash":
            cod = Money(0, CURRENCY)
        elif flaw == "negative cash":
            cod = Money(-1, CURRENCY)
        elif flaw == "bad carrier":
            carrier = "sf express"
        elif flaw == "bad tracking number":
            tracking = ""
        else:
            group = "-home"
        with pytest.raises(DomainError) as refused:
            Shipment.book(
                shipment_id=UUID(int=999),
                order_id=UUID(int=100),
                delivery_group=group,
                address=ADDRESS,
                lines=lines,
                carrier=carrier,
                tracking_number=tracking,
                weight_grams=cast("int", weight),
                cod_amount=cod,
                meta=new_meta(),
                now=self.now,
            )
        assert refused.value.code == INVALID, refused.value

    # --- scans ------------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(parcel=parcels, scan=scan_inputs())
    def carrier_sends_a_scan(self, parcel: Parcel, scan: ScanInput) -> None:
        before = parcel.status
        expected: Outcome
        if not scan.valid:
            expected = Rejected.of(INVALID)
        elif key_of(scan.scan) in parcel.keys:
            expected = Accepted((), False)
        else:
            after = parcel.status_with([*parcel.scans, scan.scan])
            names = ["ScanRecorded"]
            if parcel.picked_up_at is None and not parcel.cancelled:
                names.append("PickedUp")
            if after is not before and after is ShipmentStatus.DELIVERED:
                names.append("Delivered")
            if after is not before and after is ShipmentStatus.RETURNED_TO_SENDER:
                names.append("ReturnedToSender")
            expected = Accepted(tuple(names), True)
        shipment = parcel.shipment
        events = perform(
            shipment,
            parcel.log,
            lambda: shipment.record_scan(scan.scan, meta=new_meta(), now=self.now),
            expected,
            "scan",
        )
        if not events:
            return
        at = scan.scan.occurred_at
        parcel.scans.append(scan.scan)
        parcel.keys.add(key_of(scan.scan))
        recorded = events[0]
        assert isinstance(recorded, Shipment.ScanRecorded)
        assert recorded.scan == scan.scan
        assert recorded.status is parcel.status
        for e in events[1:]:
            if isinstance(e, Shipment.PickedUp):
                assert e.occurred_at == at
                parcel.picked_up_at = at
            elif isinstance(e, Shipment.Delivered):
                assert e.occurred_at == at
                parcel.delivered_at = at
            elif isinstance(e, Shipment.ReturnedToSender):
                assert e.occurred_at == at
                assert e.reason == (scan.scan.description or "returned by the carrier")
                parcel.returned_at = at

    @rule(
        parcel=parcels,
        offset=st.sampled_from([-24 * 60, -61, -1, 0, 0, 1, 59, 24 * 60]),
        milestone=milestones,
        zone=st.sampled_from(ZONES),
        event_id=st.sampled_from(EVENT_IDS),
    )
    def carrier_sends_a_scan_just_around_the_newest(
        self, parcel: Parcel, offset: int, milestone: Milestone, zone: tzinfo, event_id: str
    ) -> None:
        """Late by a day, by a minute, at the very same moment, or just after."""
        at = (parcel.newest_scan_at + timedelta(minutes=offset)).astimezone(zone)
        self.carrier_sends_a_scan(
            parcel, ScanInput(Scan(milestone, at, "hub", milestone.value, event_id), True)
        )

    @rule(
        parcel=parcels,
        milestone=st.sampled_from(list(FINAL)),
        offset=st.sampled_from([-24 * 60, -1, 0, 1, 60]),
        event_id=st.sampled_from(EVENT_IDS),
    )
    def carrier_sends_a_final_scan(
        self, parcel: Parcel, milestone: Milestone, offset: int, event_id: str
    ) -> None:
        """Delivered or returned to sender, possibly dated before scans already seen."""
        at = parcel.newest_scan_at + timedelta(minutes=offset)
        self.carrier_sends_a_scan(
            parcel, ScanInput(Scan(milestone, at, "door", "", event_id), True)
        )

    @precondition(lambda self: any(p.scans for p in self.booked))
    @rule(data=st.data(), location=texts(200, allow_empty=True))
    def carrier_sends_a_scan_again(self, data: st.DataObject, location: Text) -> None:
        """The same scan (same key), possibly reworded or with another milestone when the
        carrier gave it an event id."""
        parcel = data.draw(st.sampled_from([p for p in self.booked if p.scans]), label="parcel")
        seen = data.draw(st.sampled_from(parcel.scans), label="seen scan")
        milestone = seen.milestone
        if seen.carrier_event_id:
            milestone = data.draw(st.sampled_from(Milestone), label="milestone")
        again = Scan(milestone, seen.occurred_at, location.value, "again", seen.carrier_event_id)
        self.carrier_sends_a_scan(parcel, ScanInput(again, location.valid))

    # --- cash on delivery -------------------------------------------------------------------

    @rule(
        parcel=parcels,
        amount=st.sampled_from(["due", "due", "one more", "one less", "other currency", "zero"]),
        reference=st.one_of(
            st.sampled_from(["COD-1", " COD-2 "]).map(lambda r: Text(r, True)), texts(200)
        ),
    )
    def courier_reports_cash_collected(self, parcel: Parcel, amount: str, reference: Text) -> None:
        due = parcel.cod or Money(5000, CURRENCY)
        money = {
            "due": due,
            "one more": Money(due.amount + 1, CURRENCY),
            "one less": Money(due.amount - 1, CURRENCY),
            "other currency": Money(due.amount, "USD"),
            "zero": Money(0, CURRENCY),
        }[amount]
        expected: Outcome
        if parcel.cod is None:
            expected = Rejected.of(TRANSITION)
        elif parcel.cash is not None:
            expected = Accepted((), False)  # the same collection reported twice
        else:
            # Cash reported before any scan also records the pickup: a courier had it.
            collected = (
                ("PickedUp", "CashCollected") if parcel.picked_up_at is None else ("CashCollected",)
            )
            expected = first_rejection(
                (
                    parcel.status in (ShipmentStatus.CANCELLED, ShipmentStatus.RETURNED_TO_SENDER),
                    TRANSITION,
                ),
                (money != parcel.cod, COD_MISMATCH),
                (not reference.valid, INVALID),
            ) or Accepted(collected, True)
        shipment = parcel.shipment
        events = perform(
            shipment,
            parcel.log,
            lambda: shipment.record_cash_collected(
                money,
                collected_at=self.now,
                reference=reference.value,
                meta=new_meta(),
                now=self.now,
            ),
            expected,
            "cash collected",
        )
        if not events:
            return
        cash = events[-1]
        assert isinstance(cash, Shipment.CashCollected)
        assert cash.reference == reference.stripped
        if parcel.picked_up_at is None:
            parcel.picked_up_at = self.now
        parcel.cash = money
        # What the application does in the same transaction: count it on the account.
        self.account_records_a_collection(shipment.id, money)

    @rule(parcel=parcels)
    def courier_reports_the_exact_cash_due(self, parcel: Parcel) -> None:
        self.courier_reports_cash_collected(parcel, "due", Text("COD-9", True))

    @rule(parcel=parcels, reason=texts(500))
    def staff_cancel_the_parcel(self, parcel: Parcel, reason: Text) -> None:
        # Only a parcel still awaiting pickup, that no courier has had, can be cancelled.
        expected = first_rejection(
            (not reason.valid, INVALID),
            (
                parcel.status is not ShipmentStatus.AWAITING_PICKUP
                or parcel.picked_up_at is not None,
                TRANSITION,
            ),
        ) or Accepted(("Cancelled",))
        shipment = parcel.shipment
        events = perform(
            shipment,
            parcel.log,
            lambda: shipment.cancel(reason.value, meta=new_meta(), now=self.now),
            expected,
            "cancel",
        )
        if events:
            cancelled = events[0]
            assert isinstance(cancelled, Shipment.Cancelled)
            assert cancelled.reason == reason.stripped
            parcel.cancelled = True

    # --- the carrier's cash-on-delivery account ---------------------------------------------

    def account_records_a_collection(self, shipment_id: UUID, amount: Money) -> None:
        model = self.account_model
        expected: Outcome
        if shipment_id in model.collections:
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (amount.currency != CURRENCY, INVALID), (amount.amount <= 0, INVALID)
            ) or Accepted(("CollectionRecorded",), True)
        account = self.account
        if perform(
            account,
            self.account_log,
            lambda: account.record_collection(shipment_id, amount, meta=new_meta(), now=self.now),
            expected,
            "collection",
        ):
            model.collections[shipment_id] = amount.amount

    @precondition(lambda self: any(p.cash for p in self.booked))
    @rule(data=st.data(), amount=st.integers(1, 100_000))
    def the_same_collection_is_counted_again(self, data: st.DataObject, amount: int) -> None:
        parcel = data.draw(st.sampled_from([p for p in self.booked if p.cash]), label="parcel")
        self.account_records_a_collection(parcel.shipment.id, Money(amount, CURRENCY))

    @rule(
        shipment_id=st.sampled_from(OTHER_PARCELS),
        amount=st.integers(-10, 100_000),
        currency=st.sampled_from([CURRENCY, CURRENCY, "USD"]),
    )
    def a_collection_for_a_parcel_booked_elsewhere(
        self, shipment_id: UUID, amount: int, currency: str
    ) -> None:
        self.account_records_a_collection(shipment_id, Money(amount, currency))

    @rule(
        amount=st.one_of(st.integers(-10, 100_000), st.sampled_from(["all", "one more"])),
        currency=st.sampled_from([CURRENCY, CURRENCY, CURRENCY, "USD"]),
        reference=st.one_of(
            st.sampled_from(["REM-1", "REM-2", " REM-1 ", "REM-3"]).map(lambda r: Text(r, True)),
            texts(200),
        ),
    )
    def carrier_remits_cash(self, amount: int | str, currency: str, reference: Text) -> None:
        model = self.account_model
        if amount == "all":
            amount = model.outstanding
        elif amount == "one more":
            amount = model.outstanding + 1
        assert isinstance(amount, int)
        expected: Outcome
        if reference.valid and reference.stripped in model.remittances:
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (not reference.valid, INVALID),
                (currency != CURRENCY, INVALID),
                (amount <= 0, INVALID),
                (currency == CURRENCY and amount > model.outstanding, REMITTANCE_EXCEEDS),
            ) or Accepted(("RemittanceRecorded",), True)
        account, money = self.account, Money(amount, currency)
        if perform(
            account,
            self.account_log,
            lambda: account.record_remittance(
                money,
                reference=reference.value,
                remitted_at=self.now,
                meta=new_meta(),
                now=self.now,
            ),
            expected,
            "remittance",
        ):
            model.remittances[reference.stripped] = amount

    @rule(share=st.sampled_from(["half", "all", "one more"]))
    def carrier_remits_part_of_what_it_owes(self, share: str) -> None:
        """A fresh reference each time, so that the outstanding balance (not the total ever
        collected) is what limits the next remittance."""
        self.remittances_sent += 1
        outstanding = self.account_model.outstanding
        amount = {"half": outstanding // 2, "all": outstanding, "one more": outstanding + 1}
        reference = Text(f"REM-FRESH-{self.remittances_sent}", True)
        self.carrier_remits_cash(amount[share], CURRENCY, reference)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def every_new_scan_is_in_the_timeline_exactly_once(self) -> None:
        for parcel in self.booked:
            shipment = parcel.shipment
            assert list(shipment.scans) == parcel.scans
            assert shipment.scan_keys == parcel.keys
            assert len(parcel.keys) == len(parcel.scans), "two recorded scans share a key"
            timeline = shipment.timeline()
            assert Counter(map(key_of, timeline)) == Counter(map(key_of, parcel.scans))
            assert all(a.occurred_at <= b.occurred_at for a, b in itertools.pairwise(timeline))
            recorded = [e.scan for e in parcel.log.events if isinstance(e, Shipment.ScanRecorded)]
            assert recorded == parcel.scans

    @invariant()
    def the_status_only_moves_forward(self) -> None:
        for parcel in self.booked:
            status = parcel.shipment.status
            assert status is parcel.status
            previous = parcel.statuses[-1]
            if previous in TERMINAL:
                assert status is previous, f"left {previous.value} for {status.value}"
            parcel.statuses.append(status)

    @invariant()
    def the_history_tells_the_same_story(self) -> None:
        """Read from the events alone: picked up once and before the parcel arrived or came
        back; delivered or returned once, never both; no status after a terminal one."""
        for parcel in self.booked:
            names = [type(e).__name__ for e in parcel.log.events]
            counts = Counter(names)
            assert counts["PickedUp"] <= 1
            assert counts["Delivered"] + counts["ReturnedToSender"] <= 1
            assert counts["Cancelled"] <= 1
            if "Cancelled" in names:
                assert "PickedUp" not in names[: names.index("Cancelled")]
            for final in ("Delivered", "ReturnedToSender"):
                if final in names and "Cancelled" not in names:
                    assert "PickedUp" in names[: names.index(final)]
            status = ShipmentStatus.AWAITING_PICKUP
            for e in parcel.log.events:
                after = status
                if isinstance(e, Shipment.ScanRecorded):
                    after = e.status
                elif isinstance(e, Shipment.Cancelled):
                    assert status is ShipmentStatus.AWAITING_PICKUP
                    after = ShipmentStatus.CANCELLED
                elif isinstance(e, Shipment.CashCollected):
                    assert status not in (
                        ShipmentStatus.CANCELLED,
                        ShipmentStatus.RETURNED_TO_SENDER,
                    ), f"cash collected on a {status.value} parcel"
                assert status not in TERMINAL or after is status
                status = after
            shipment = parcel.shipment
            assert shipment.picked_up_at == parcel.picked_up_at
            assert shipment.delivered_at == parcel.delivered_at
            assert shipment.returned_at == parcel.returned_at

    @invariant()
    def cash_on_delivery_is_collected_once_and_exactly(self) -> None:
        for parcel in self.booked:
            collected = [e for e in parcel.log.events if isinstance(e, Shipment.CashCollected)]
            assert len(collected) <= 1
            assert parcel.shipment.cash_collected == parcel.cash
            if collected:
                assert parcel.cod is not None
                assert collected[0].amount == parcel.cod == parcel.shipment.cash_collected

    @invariant()
    def the_account_counts_each_parcel_and_remittance_once(self) -> None:
        account, model = self.account, self.account_model
        assert account.collected == Money(sum(model.collections.values()), CURRENCY)
        assert account.remitted == Money(sum(model.remittances.values()), CURRENCY)
        assert account.shipments == set(model.collections)
        assert account.references == set(model.remittances)
        assert account.outstanding.amount == model.outstanding >= 0
        for parcel in self.booked:
            counted = model.collections.get(parcel.shipment.id)
            assert counted == (parcel.cash.amount if parcel.cash else None)
        # Along the whole history, never more remitted than collected so far.
        collected = remitted = 0
        shipments: set[UUID] = set()
        references: set[str] = set()
        for e in self.account_log.events:
            if isinstance(e, CarrierAccount.CollectionRecorded):
                assert e.shipment_id not in shipments
                shipments.add(e.shipment_id)
                collected += e.amount.amount
            elif isinstance(e, CarrierAccount.RemittanceRecorded):
                assert e.reference not in references
                references.add(e.reference)
                remitted += e.amount.amount
            assert 0 <= remitted <= collected

    @invariant()
    def history_replays_to_the_same_aggregates(self) -> None:
        for parcel in self.booked:
            parcel.log.check_rebuilds(parcel.shipment)
        self.account_log.check_rebuilds(self.account)


ShipmentMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40)
TestShipmentStateMachine = ShipmentMachine.TestCase


# --- plain specifications -------------------------------------------------------------------


def booked(cod: Money | None = None) -> Shipment:
    shipment = Shipment.book(
        shipment_id=UUID(int=1),
        order_id=UUID(int=100),
        delivery_group="home",
        address=ADDRESS,
        lines=[ParcelLine(1, "TEA-1", 1, "main")],
        carrier=CARRIER,
        tracking_number="SF1",
        weight_grams=500,
        cod_amount=cod,
        meta=new_meta(),
        now=START,
    )
    shipment.collect_events()
    return shipment


@given(
    scans=st.lists(
        st.builds(
            Scan,
            st.sampled_from(Milestone),
            moments(st.integers(0, 1000)),
            carrier_event_id=st.sampled_from(EVENT_IDS),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_a_final_scan_wins_whenever_it_arrives(scans: list[Scan]) -> None:
    shipment = booked()
    for scan in scans:
        shipment.record_scan(scan, meta=new_meta(), now=START)
    kept: dict[str, Scan] = {}
    for scan in scans:
        kept.setdefault(key_of(scan), scan)
    arrived = list(kept.values())
    finals = [s for s in arrived if s.milestone in FINAL]
    if finals:
        assert shipment.status is FINAL[finals[0].milestone]
    else:
        _, newest = max(enumerate(arrived), key=lambda pair: (pair[1].occurred_at, pair[0]))
        assert shipment.status.value == newest.milestone.value


def test_cash_is_collected_once_for_the_exact_amount() -> None:
    shipment = booked(Money(8800, CURRENCY))
    with pytest.raises(DomainError) as refused:
        shipment.record_cash_collected(
            Money(8700, CURRENCY), collected_at=START, reference="R", meta=new_meta(), now=START
        )
    assert refused.value.code == COD_MISMATCH
    assert shipment.pending_events == []
    for expected in (True, False):
        assert (
            shipment.record_cash_collected(
                Money(8800, CURRENCY), collected_at=START, reference="R", meta=new_meta(), now=START
            )
            is expected
        )
    assert [type(e).__name__ for e in shipment.collect_events()] == ["PickedUp", "CashCollected"]
    with pytest.raises(DomainError):  # a courier had it: it cannot be cancelled now
        shipment.cancel("changed mind", meta=new_meta(), now=START)


def test_a_parcel_without_cash_on_delivery_collects_nothing() -> None:
    shipment = booked()
    with pytest.raises(DomainError) as refused:
        shipment.record_cash_collected(
            Money(1, CURRENCY), collected_at=START, reference="R", meta=new_meta(), now=START
        )
    assert refused.value.code == TRANSITION
    assert shipment.pending_events == []
