"""Inventory levels: on hand, reserved and available per SKU and warehouse, and every
movement that changed them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.inventory import InventoryItem
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx


@dataclass
class _Level:
    """A stock record's change over a batch."""

    on_hand: int = 0
    reserved: int = 0
    updated_at: str = ""


Levels = dict[str, _Level]


@dataclass(frozen=True)
class Level:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class Movement:
    position: int
    occurred_at: str
    kind: str
    on_hand_delta: int
    reserved_delta: int
    order_id: str | None
    detail: str


class InventoryLevels(ReadModel):
    name = "inventory_levels"
    sources = ("Inventory",)

    def tables(self) -> Sequence[str]:
        return ("inventory_movements", "inventory_levels")

    def create(self, tx: Tx) -> None:
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS inventory_levels ("
            " item_id {text} PRIMARY KEY, sku {text} NOT NULL, warehouse {text} NOT NULL,"
            " on_hand {int} NOT NULL, reserved {int} NOT NULL, updated_at {text} NOT NULL)"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS inventory_levels_sku ON inventory_levels (sku)")
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS inventory_movements ("
            " position {int} PRIMARY KEY, item_id {text} NOT NULL, occurred_at {text} NOT NULL,"
            " kind {text} NOT NULL, on_hand_delta {int} NOT NULL, reserved_delta {int} NOT NULL,"
            " order_id {text}, detail {text} NOT NULL)"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS inventory_movements_item"
            " ON inventory_movements (item_id, position)"
        )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self.handle_many(tx, [(event, position)])

    def handle_many(
        self, tx: Tx, events: Sequence[tuple[DomainEventProtocol[Any], Position]]
    ) -> None:
        """A movement row per event, and one update per stock record for the batch: the
        levels are sums of the movements (and the time of the last), so adding a batch's
        movements at once ends where adding them one by one does."""
        levels: dict[str, _Level] = {}
        for event, position in events:
            self._apply(event, tx, position, levels)
        for item_id, level in levels.items():
            tx.execute(
                "UPDATE inventory_levels SET on_hand = on_hand + ?, reserved = reserved + ?,"
                " updated_at = ? WHERE item_id = ?",
                (level.on_hand, level.reserved, level.updated_at, item_id),
            )

    @singledispatchmethod
    def _apply(self, event: Any, tx: Tx, position: Position, levels: Levels) -> None:
        """Other events do not move stock."""

    @_apply.register
    def _(self, event: InventoryItem.Opened, tx: Tx, position: Position, levels: Levels) -> None:
        tx.execute(
            "INSERT INTO inventory_levels (item_id, sku, warehouse, on_hand, reserved,"
            " updated_at) VALUES (?, ?, ?, 0, 0, ?)",
            (str(event.originator_id), event.sku, event.warehouse, event.timestamp.isoformat()),
        )

    @_apply.register
    def _(
        self, event: InventoryItem.StockReceived, tx: Tx, position: Position, levels: Levels
    ) -> None:
        _move(
            tx, levels, event, position, "received", on_hand=event.quantity, detail=event.reference
        )

    @_apply.register
    def _(
        self, event: InventoryItem.StockAdjusted, tx: Tx, position: Position, levels: Levels
    ) -> None:
        note = f"{event.reason.value}: {event.note}" if event.note else event.reason.value
        _move(tx, levels, event, position, "adjusted", on_hand=event.delta, detail=note)

    @_apply.register
    def _(
        self, event: InventoryItem.StockReserved, tx: Tx, position: Position, levels: Levels
    ) -> None:
        _move(
            tx,
            levels,
            event,
            position,
            "reserved",
            reserved=event.quantity,
            order_id=event.order_id,
        )

    @_apply.register
    def _(
        self, event: InventoryItem.ReservationReleased, tx: Tx, position: Position, levels: Levels
    ) -> None:
        _move(
            tx,
            levels,
            event,
            position,
            "released",
            reserved=-event.quantity,
            order_id=event.order_id,
            detail=event.reason.value,
        )

    @_apply.register
    def _(
        self, event: InventoryItem.ReservationCommitted, tx: Tx, position: Position, levels: Levels
    ) -> None:
        _move(
            tx,
            levels,
            event,
            position,
            "shipped",
            on_hand=-event.quantity,
            reserved=-event.quantity,
            order_id=event.order_id,
            detail=event.shipment_ref,
        )

    @_apply.register
    def _(
        self, event: InventoryItem.StockRestocked, tx: Tx, position: Position, levels: Levels
    ) -> None:
        _move(
            tx,
            levels,
            event,
            position,
            "restocked",
            on_hand=event.quantity,
            order_id=event.order_id,
            detail=event.reference,
        )


def _move(
    tx: Tx,
    levels: Levels,
    event: InventoryItem.Event,
    position: Position,
    kind: str,
    *,
    on_hand: int = 0,
    reserved: int = 0,
    order_id: object = None,
    detail: str = "",
) -> None:
    item_id = str(event.originator_id)
    level = levels.setdefault(item_id, _Level())
    level.on_hand += on_hand
    level.reserved += reserved
    level.updated_at = event.timestamp.isoformat()
    tx.execute(
        "INSERT INTO inventory_movements (position, item_id, occurred_at, kind, on_hand_delta,"
        " reserved_delta, order_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            position.id,
            item_id,
            event.timestamp.isoformat(),
            kind,
            on_hand,
            reserved,
            None if order_id is None else str(order_id),
            detail,
        ),
    )


class InventoryLevelsQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def levels(self, sku: str | None = None) -> list[Level]:
        query = "SELECT sku, warehouse, on_hand, reserved, on_hand - reserved FROM inventory_levels"
        params: tuple[Any, ...] = ()
        if sku is not None:
            query += " WHERE sku = ?"
            params = (sku,)
        with self.store.read() as tx:
            rows = tx.all(query + " ORDER BY sku, warehouse", params)
        return [Level(*row) for row in rows]

    def low_stock(self, threshold: int) -> list[Level]:
        with self.store.read() as tx:
            rows = tx.all(
                "SELECT sku, warehouse, on_hand, reserved, on_hand - reserved"
                " FROM inventory_levels WHERE on_hand - reserved <= ?"
                " ORDER BY on_hand - reserved, sku",
                (threshold,),
            )
        return [Level(*row) for row in rows]

    def movements(self, sku: str, warehouse: str, limit: int = 100) -> list[Movement]:
        with self.store.read() as tx:
            rows = tx.all(
                "SELECT m.position, m.occurred_at, m.kind, m.on_hand_delta, m.reserved_delta,"
                " m.order_id, m.detail FROM inventory_movements m"
                " JOIN inventory_levels l ON l.item_id = m.item_id"
                " WHERE l.sku = ? AND l.warehouse = ? ORDER BY m.position DESC LIMIT ?",
                (sku, warehouse, limit),
            )
        return [Movement(*row) for row in rows]
