"""Stock of one SKU in one warehouse is never negative and never oversold: whatever valid
and invalid commands arrive, on hand >= reserved >= 0, the reservations add up to what is
reserved, and a restock reference or a shipment counts at most once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ordertrail.domain import ids
from ordertrail.domain.errors import DomainError, InsufficientStock
from ordertrail.domain.inventory import (
    MAX_QUANTITY,
    AdjustmentReason,
    InventoryItem,
    ReleaseReason,
)
from tests.domain.harness import (
    START,
    Accepted,
    EventLog,
    Outcome,
    Text,
    first_rejection,
    new_meta,
    perform,
    texts,
)

INVALID_QUANTITY = "inventory.invalid_quantity"
INSUFFICIENT = "inventory.insufficient_stock"
BELOW_RESERVED = "inventory.adjustment_below_reserved"
CONFLICT = "inventory.reservation_conflict"
NOT_FOUND = "inventory.reservation_not_found"

ORDERS = tuple(UUID(int=n) for n in range(1, 5))

# --- strategies ---------------------------------------------------------------------------

#: Quantities: small ones that interact, zero and negatives, the limit, and absurd ones.
#: ``True`` is an ``int`` to Python but not a quantity to the domain.
quantities = st.one_of(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(-3, 0),
    st.sampled_from([MAX_QUANTITY - 1, MAX_QUANTITY, MAX_QUANTITY + 1, 10**12, -(10**12), True]),
)
deltas = st.one_of(
    st.integers(-15, 15),
    st.sampled_from([MAX_QUANTITY, MAX_QUANTITY + 1, -MAX_QUANTITY, -(MAX_QUANTITY + 1)]),
)
reasons = st.one_of(
    st.sampled_from(AdjustmentReason),
    st.sampled_from(["damaged", "found"]),  # the enum's values are accepted as text
    st.sampled_from(["stolen", "DAMAGED", ""]),
)
order_ids = st.sampled_from(ORDERS)


def shipment_refs() -> st.SearchStrategy[Text]:
    return st.one_of(
        st.sampled_from(["SHIP-1", "SHIP-2", "SHIP-3", " SHIP-1 "]).map(lambda r: Text(r, True)),
        texts(200),
    )


def restock_refs() -> st.SearchStrategy[Text]:
    return st.one_of(
        st.sampled_from(["RMA-1", "RMA-2", "RMA-3", "RMA-1 "]).map(lambda r: Text(r, True)),
        texts(200),
    )


def is_quantity(value: int) -> bool:
    return type(value) is int and 0 < value <= MAX_QUANTITY


# --- the model ----------------------------------------------------------------------------


@dataclass
class Held:
    quantity: int
    expires_at: datetime
    shipments: set[str] = field(default_factory=set)
    shipped: int = 0


@dataclass
class InventoryModel:
    on_hand: int = 0
    held: dict[UUID, Held] = field(default_factory=dict)
    restocked_refs: set[str] = field(default_factory=set)
    #: every shipment ever committed, per order (outlives the reservation it came from)
    shipped: dict[UUID, set[str]] = field(default_factory=dict)

    @property
    def all_shipments(self) -> set[str]:
        return set().union(*self.shipped.values())

    received: int = 0
    adjusted: int = 0
    restocked: int = 0
    committed: int = 0

    @property
    def reserved(self) -> int:
        return sum(h.quantity for h in self.held.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class InventoryItemMachine(RuleBasedStateMachine):
    """Opens one item and sends it receipts, adjustments, reservations, releases, shipments
    and restocks: valid ones, invalid ones and retries."""

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = START
        self.log = EventLog()
        self.model = InventoryModel()
        self.item: InventoryItem

    @initialize(
        sku=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,15}\Z"),
        warehouse=st.sampled_from(["main", "east-1", "WH.2"]),
        initial=st.one_of(st.just(0), st.integers(1, 40)),
    )
    def open_item(self, sku: str, warehouse: str, initial: int) -> None:
        self.item = InventoryItem.open(sku=sku, warehouse=warehouse, meta=new_meta(), now=self.now)
        assert self.item.id == ids.inventory_item_id(sku, warehouse)
        assert [type(e).__name__ for e in self.log.collect(self.item)] == ["Opened"]
        if initial:
            self.item.receive(initial, reference="opening", meta=new_meta(), now=self.now)
            self.log.collect(self.item)
            self.model.on_hand = self.model.received = initial

    # --- rules ------------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(quantity=quantities, reference=texts(200, allow_empty=True))
    def receive(self, quantity: int, reference: Text) -> None:
        model = self.model
        expected: Outcome = first_rejection(
            (not is_quantity(quantity), INVALID_QUANTITY),
            (model.on_hand + quantity > MAX_QUANTITY, INVALID_QUANTITY),
            (not reference.valid, INVALID_QUANTITY),
        ) or Accepted(("StockReceived",))
        events = perform(
            self.item,
            self.log,
            lambda: self.item.receive(
                quantity, reference=reference.value, meta=new_meta(), now=self.now
            ),
            expected,
            "receive",
        )
        if events:
            model.on_hand += quantity
            model.received += quantity

    @rule(delta=deltas, reason=reasons, note=texts(500, allow_empty=True))
    def adjust(self, delta: int, reason: str, note: Text) -> None:
        model = self.model
        new_on_hand = model.on_hand + delta
        expected: Outcome = first_rejection(
            (delta == 0 or abs(delta) > MAX_QUANTITY, INVALID_QUANTITY),
            (reason not in {r.value for r in AdjustmentReason}, INVALID_QUANTITY),
            (not note.valid, INVALID_QUANTITY),
            (new_on_hand < model.reserved, BELOW_RESERVED),
            (new_on_hand > MAX_QUANTITY, INVALID_QUANTITY),
        ) or Accepted(("StockAdjusted",))
        events = perform(
            self.item,
            self.log,
            lambda: self.item.adjust(delta, reason, note=note.value, meta=new_meta(), now=self.now),
            expected,
            "adjust",
        )
        if events:
            model.on_hand = new_on_hand
            model.adjusted += delta

    @precondition(lambda self: self.model.on_hand > 0)
    @rule(offset=st.sampled_from([-1, 0, 1]), reason=st.sampled_from(AdjustmentReason))
    def adjust_down_to_the_reserved_line(self, offset: int, reason: AdjustmentReason) -> None:
        """Write stock off down to just below, at, or just above what is reserved."""
        delta = self.model.reserved + offset - self.model.on_hand
        if delta:
            self.adjust(delta, reason, Text("stock count", True))

    @rule(offset=st.sampled_from([0, 1]))
    def receive_up_to_the_limit(self, offset: int) -> None:
        """Fill on-hand stock to the maximum, or one past it."""
        quantity = MAX_QUANTITY - self.model.on_hand + offset
        self.receive(quantity, Text("", True))

    @rule(order_id=order_ids, offset=st.sampled_from([-1, 0, 1]))
    def reserve_the_last_units(self, order_id: UUID, offset: int) -> None:
        """Ask for one less than, exactly, or one more than what is available."""
        self.reserve(order_id, self.model.available + offset, 60)

    @rule(order_id=order_ids, quantity=quantities, expires_in=st.integers(-60, 24 * 60))
    def reserve(self, order_id: UUID, quantity: int, expires_in: int) -> None:
        model = self.model
        held = model.held.get(order_id)
        expires_at = self.now + timedelta(minutes=expires_in)
        expected: Outcome
        retry = held is not None and held.quantity + held.shipped == quantity
        if is_quantity(quantity) and expires_at > self.now and retry:
            expected = Accepted()  # the same hold again: a retry
        else:
            expected = first_rejection(
                (not is_quantity(quantity), INVALID_QUANTITY),
                (expires_at <= self.now, INVALID_QUANTITY),
                (held is not None, CONFLICT),
                (held is None and quantity > model.available, INSUFFICIENT),
            ) or Accepted(("StockReserved",))
        events = perform(
            self.item,
            self.log,
            lambda: self.item.reserve(
                order_id, quantity, expires_at=expires_at, meta=new_meta(), now=self.now
            ),
            expected,
            "reserve",
        )
        if events:
            model.held[order_id] = Held(quantity, expires_at)
            reservation = self.item.reservations[order_id]
            assert reservation.reserved_at == self.now
            assert reservation.expires_at == expires_at

    @precondition(lambda self: self.model.held)
    @rule(data=st.data(), quantity=quantities)
    def reserve_again_for_a_holding_order(self, data: st.DataObject, quantity: int) -> None:
        """Aim at the orders that hold stock: a retry, or a conflicting second hold."""
        order_id = data.draw(st.sampled_from(sorted(self.model.held)), label="order_id")
        same = data.draw(st.booleans(), label="same quantity")
        self.reserve(order_id, self.model.held[order_id].quantity if same else quantity, 60)

    @rule(order_id=order_ids, reason=st.sampled_from(ReleaseReason))
    def release(self, order_id: UUID, reason: ReleaseReason) -> None:
        held = self.model.held.get(order_id)
        expected = Accepted(("ReservationReleased",), True) if held else Accepted((), False)
        perform(
            self.item,
            self.log,
            lambda: self.item.release(order_id, reason, meta=new_meta(), now=self.now),
            expected,
            "release",
        )
        self.model.held.pop(order_id, None)

    @precondition(lambda self: self.model.held)
    @rule(data=st.data(), reason=st.sampled_from(ReleaseReason))
    def release_a_holding_order(self, data: st.DataObject, reason: ReleaseReason) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.model.held)), label="order_id")
        self.release(order_id, reason)

    @rule(order_id=order_ids, quantity=quantities, shipment_ref=shipment_refs())
    def commit(self, order_id: UUID, quantity: int, shipment_ref: Text) -> None:
        model = self.model
        held = model.held.get(order_id)
        ref = shipment_ref.stripped
        inputs_ok = is_quantity(quantity) and shipment_ref.valid
        # A shipment counts once per item, whichever order or reservation it names.
        shipped_before = ref in model.all_shipments
        expected: Outcome
        if inputs_ok and shipped_before:
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (not inputs_ok, INVALID_QUANTITY),
                (held is None, NOT_FOUND),
                (held is not None and quantity > held.quantity, INVALID_QUANTITY),
            ) or Accepted(("ReservationCommitted",), True)
        events = perform(
            self.item,
            self.log,
            lambda: self.item.commit(
                order_id, quantity, shipment_ref=shipment_ref.value, meta=new_meta(), now=self.now
            ),
            expected,
            "commit",
        )
        if events:
            assert held is not None
            held.quantity -= quantity
            held.shipped += quantity
            held.shipments.add(ref)
            if not held.quantity:
                del model.held[order_id]
            model.shipped.setdefault(order_id, set()).add(ref)
            model.on_hand -= quantity
            model.committed += quantity

    @precondition(lambda self: self.model.held)
    @rule(data=st.data())
    def ship_part_of_a_reservation(self, data: st.DataObject) -> None:
        """Aim at live reservations with plausible quantities, so partial shipments happen."""
        order_id = data.draw(st.sampled_from(sorted(self.model.held)), label="order_id")
        quantity = data.draw(st.integers(1, self.model.held[order_id].quantity), label="qty")
        ref = data.draw(st.sampled_from(["SHIP-1", "SHIP-2", "SHIP-3"]), label="shipment_ref")
        self.commit(order_id, quantity, Text(ref, True))

    @rule(
        quantity=quantities,
        reference=restock_refs(),
        order_id=st.one_of(st.none(), order_ids),
    )
    def restock(self, quantity: int, reference: Text, order_id: UUID | None) -> None:
        model = self.model
        ref = reference.stripped
        expected: Outcome
        inputs_ok = is_quantity(quantity) and reference.valid
        if inputs_ok and ref in model.restocked_refs:
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (not inputs_ok, INVALID_QUANTITY),
                (model.on_hand + quantity > MAX_QUANTITY, INVALID_QUANTITY),
            ) or Accepted(("StockRestocked",), True)
        events = perform(
            self.item,
            self.log,
            lambda: self.item.restock(
                quantity,
                reference=reference.value,
                order_id=order_id,
                meta=new_meta(),
                now=self.now,
            ),
            expected,
            "restock",
        )
        if events:
            model.on_hand += quantity
            model.restocked += quantity
            model.restocked_refs.add(ref)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def stock_is_never_negative_nor_oversold(self) -> None:
        item = self.item
        assert item.on_hand >= 0
        assert item.reserved >= 0
        assert item.available == item.on_hand - item.reserved
        assert item.available >= 0
        assert item.on_hand <= MAX_QUANTITY

    @invariant()
    def reserved_is_the_sum_of_the_reservations(self) -> None:
        item = self.item
        assert item.reserved == sum(r.quantity for r in item.reservations.values())
        for order_id, reservation in item.reservations.items():
            assert reservation.order_id == order_id
            assert reservation.quantity > 0
            assert item.held_for(order_id) == reservation.quantity

    @invariant()
    def state_matches_the_model(self) -> None:
        item, model = self.item, self.model
        assert item.on_hand == model.on_hand
        assert item.reserved == model.reserved
        assert {o: r.quantity for o, r in item.reservations.items()} == {
            o: h.quantity for o, h in model.held.items()
        }
        for order_id, held in model.held.items():
            assert item.reservations[order_id].shipped == held.shipped
            assert item.reservations[order_id].expires_at == held.expires_at
        assert item.restock_refs == model.restocked_refs
        assert item.shipped_refs == model.all_shipments
        assert all(item.held_for(o) == 0 for o in ORDERS if o not in model.held)

    @invariant()
    def on_hand_is_the_ledger_of_its_movements(self) -> None:
        model = self.model
        assert model.on_hand == model.received + model.adjusted + model.restocked - (
            model.committed
        )
        moved = 0
        for e in self.log.events:
            if isinstance(e, InventoryItem.StockReceived | InventoryItem.StockRestocked):
                moved += e.quantity
            elif isinstance(e, InventoryItem.StockAdjusted):
                moved += e.delta
            elif isinstance(e, InventoryItem.ReservationCommitted):
                moved -= e.quantity
        assert moved == self.item.on_hand

    @invariant()
    def a_restock_reference_and_a_shipment_count_once(self) -> None:
        restocks = Counter(
            e.reference for e in self.log.events if isinstance(e, InventoryItem.StockRestocked)
        )
        assert all(n == 1 for n in restocks.values()), restocks
        shipments = Counter(
            (e.order_id, e.shipment_ref)
            for e in self.log.events
            if isinstance(e, InventoryItem.ReservationCommitted)
        )
        assert all(n == 1 for n in shipments.values()), shipments

    @invariant()
    def history_replays_to_the_same_item(self) -> None:
        self.log.check_rebuilds(self.item)


InventoryItemMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestInventoryItemStateMachine = InventoryItemMachine.TestCase


# --- plain specifications -------------------------------------------------------------------


def opened(stock: int) -> InventoryItem:
    item = InventoryItem.open(sku="TEA-1", warehouse="main", meta=new_meta(), now=START)
    if stock:
        item.receive(stock, meta=new_meta(), now=START)
    item.collect_events()
    return item


@given(
    stock=st.integers(0, 50),
    requests=st.lists(st.tuples(st.sampled_from(ORDERS), st.integers(1, 30)), max_size=8),
)
def test_stock_is_never_oversold(stock: int, requests: list[tuple[UUID, int]]) -> None:
    item = opened(stock)
    granted: dict[UUID, int] = {}
    for order_id, quantity in requests:
        if order_id in granted:
            continue
        try:
            item.reserve(
                order_id,
                quantity,
                expires_at=START + timedelta(hours=1),
                meta=new_meta(),
                now=START,
            )
        except InsufficientStock:
            assert quantity > stock - sum(granted.values())
        else:
            granted[order_id] = quantity
        assert item.reserved == sum(granted.values()) <= stock
        assert item.available >= 0


@given(quantities=st.lists(st.integers(1, 100), min_size=1, max_size=5))
def test_a_restock_reference_counts_once(quantities: list[int]) -> None:
    item = opened(0)
    outcomes = [
        item.restock(qty, reference="RMA-7", meta=new_meta(), now=START) for qty in quantities
    ]
    assert outcomes == [True] + [False] * (len(quantities) - 1)
    assert item.on_hand == quantities[0]


@given(held=st.integers(2, 20), data=st.data())
def test_a_shipment_committed_twice_counts_once(held: int, data: st.DataObject) -> None:
    item = opened(held)
    order_id = ORDERS[0]
    item.reserve(order_id, held, expires_at=START + timedelta(hours=1), meta=new_meta(), now=START)
    shipped = data.draw(st.integers(1, held - 1))
    assert item.commit(order_id, shipped, shipment_ref="SHIP-9", meta=new_meta(), now=START)
    assert not item.commit(order_id, shipped, shipment_ref="SHIP-9", meta=new_meta(), now=START)
    assert (item.on_hand, item.reserved) == (held - shipped, held - shipped)


@pytest.mark.parametrize("quantity", [0, -1, True, MAX_QUANTITY + 1])
def test_a_reservation_needs_a_positive_whole_quantity(quantity: int) -> None:
    item = opened(10)
    with pytest.raises(DomainError) as refused:
        item.reserve(
            ORDERS[0], quantity, expires_at=START + timedelta(hours=1), meta=new_meta(), now=START
        )
    assert refused.value.code == INVALID_QUANTITY
    assert item.pending_events == []
    assert item.reserved == 0
