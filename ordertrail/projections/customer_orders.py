"""A customer's orders, newest first, for a list view: when each was placed, where it
stands, its total, how many items and the first item's title.

It reads the "Orders" store only (one row per order, written by that store alone), so
any interleaving gives the rows a rebuild gives.

Pages are cut by **keyset**, not by offset: a page's cursor names the (placed_at,
order_id) of its last order, and the next page starts strictly after it in the list's
order (newest first; order id breaks ties). An order placed after the first page was read
sorts before the cursor and is never shown again on a later page; an order projected late
but placed earlier takes its place further down. So paging never repeats an order and
never skips one that was in the list when paging began. Both keys are fixed when the
order is placed, so a status change between pages moves nothing.

The cursor is opaque: 44 URL-safe base64 characters holding the key and a check digest
over the key, the customer and the filters it was made for. A cursor that is not one of
ours, was changed, or was made for another customer or other filters raises
``InvalidCursor``. (The check catches mistakes, not forgery: a forged cursor could only
start the same customer's list at another place.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.orders import Order, OrderStatus
from ordertrail.projections.order_tracking import topics_of, utc_text
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
_CURSOR_VERSION = 1
#: version, placed_at (microseconds since the epoch), order id, check (see ``_digest``)
_CURSOR = struct.Struct(">Bq16s8s")
#: 33 bytes are exactly 44 base64 characters, without padding
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{44}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidCursor(ValueError):
    """The cursor is not one this list gave out (or not for this customer and filters)."""


@dataclass(frozen=True)
class CustomerOrder:
    order_id: UUID
    placed_at: datetime
    status: OrderStatus
    total: int  # minor units of ``currency``
    currency: str
    item_count: int  # units ordered, across every line
    first_item_title: str


@dataclass(frozen=True)
class Page:
    items: tuple[CustomerOrder, ...]
    #: pass it back for the next page; None on the last page
    next_cursor: str | None


#: The events that set the row's status, and the status each gives (None: the event says).
_STATUS_OF: dict[type[Order.Event], OrderStatus | None] = {
    Order.Paid: OrderStatus.PAID,
    Order.CashOnDeliveryConfirmed: OrderStatus.COD_CONFIRMED,
    Order.ReleasedToFulfilment: OrderStatus.READY_TO_SHIP,
    Order.Cancelled: OrderStatus.CANCELLED,
    Order.Expired: OrderStatus.EXPIRED,
    Order.Completed: OrderStatus.COMPLETED,
    Order.ShipmentDispatched: None,
    Order.ShipmentDelivered: None,
    Order.ShipmentReturned: None,
}


class CustomerOrders(ReadModel):
    name = "customer_orders"
    sources = ("Orders",)
    topics = {"Orders": topics_of((Order.Placed, *_STATUS_OF))}

    def tables(self) -> Sequence[str]:
        return ("customer_orders",)

    def create(self, tx: Tx) -> None:
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS customer_orders ("
            " order_id {text} PRIMARY KEY, customer_id {text} NOT NULL,"
            " placed_at {text} NOT NULL, status {text} NOT NULL, currency {text} NOT NULL,"
            " total {int} NOT NULL, item_count {int} NOT NULL,"
            " first_item_title {text} NOT NULL, updated_at {text} NOT NULL)"
        )
        # The list's order, scanned backwards from the cursor; and the same per status.
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS customer_orders_recent"
            " ON customer_orders (customer_id, placed_at, order_id)"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS customer_orders_status"
            " ON customer_orders (customer_id, status, placed_at, order_id)"
        )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self._apply(event, tx)

    @singledispatchmethod
    def _apply(self, event: Any, tx: Tx) -> None:
        """Payments and parcel details do not change the list."""

    @_apply.register
    def _(self, event: Order.Placed, tx: Tx) -> None:
        first = min(event.lines, key=lambda line: line.line_no)
        tx.execute(
            "INSERT INTO customer_orders (order_id, customer_id, placed_at, status, currency,"
            " total, item_count, first_item_title, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.originator_id),
                event.customer_id,
                utc_text(event.timestamp),
                OrderStatus.AWAITING_PAYMENT.value,
                event.currency,
                event.total.amount,
                sum(line.quantity for line in event.lines),
                first.title,
                utc_text(event.timestamp),
            ),
        )

    @_apply.register(Order.Paid)
    @_apply.register(Order.CashOnDeliveryConfirmed)
    @_apply.register(Order.ReleasedToFulfilment)
    @_apply.register(Order.Cancelled)
    @_apply.register(Order.Expired)
    @_apply.register(Order.Completed)
    @_apply.register(Order.ShipmentDispatched)
    @_apply.register(Order.ShipmentDelivered)
    @_apply.register(Order.ShipmentReturned)
    def _(self, event: Order.Event, tx: Tx) -> None:
        status = _STATUS_OF[type(event)] or event.status  # type: ignore[attr-defined]
        tx.execute(
            "UPDATE customer_orders SET status = ?, updated_at = ? WHERE order_id = ?",
            (OrderStatus(status).value, utc_text(event.timestamp), str(event.originator_id)),
        )


# --- queries -------------------------------------------------------------------------------


def _statuses(status: str | Sequence[str] | None) -> tuple[str, ...]:
    if status is None:
        return ()
    chosen = [status] if isinstance(status, str) else list(status)
    try:
        return tuple(sorted({OrderStatus(s).value for s in chosen}))
    except ValueError:
        known = ", ".join(s.value for s in OrderStatus)
        raise ValueError(f"unknown order status in {chosen!r}; known: {known}") from None


def _bound(moment: datetime | None, name: str) -> str | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a datetime with a time zone")
    return utc_text(moment)


def _list_of(
    customer_id: str, statuses: tuple[str, ...], low: str | None, high: str | None
) -> bytes:
    """Which list a cursor belongs to: the customer and the filters."""
    return json.dumps([customer_id, statuses, low, high], separators=(",", ":")).encode()


def _digest(list_of: bytes, micros: int, order_id: bytes) -> bytes:
    """A check over the list and the key: a cursor for another list, or changed in any
    way, is refused rather than read as another position."""
    key = micros.to_bytes(8, "big", signed=True) + order_id
    return hashlib.blake2s(list_of + key, digest_size=8).digest()


def encode_cursor(placed_at: str, order_id: str, list_of: bytes) -> str:
    micros = (datetime.fromisoformat(placed_at) - _EPOCH) // timedelta(microseconds=1)
    uid = UUID(order_id).bytes
    raw = _CURSOR.pack(_CURSOR_VERSION, micros, uid, _digest(list_of, micros, uid))
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: object, list_of: bytes) -> tuple[str, str]:
    """The (placed_at, order_id) a cursor names; ``InvalidCursor`` unless it is one this
    list gave out."""
    if not isinstance(cursor, str) or not _CURSOR_TEXT.fullmatch(cursor):
        raise InvalidCursor("malformed cursor")
    version, micros, uid, check = _CURSOR.unpack(base64.urlsafe_b64decode(cursor))
    if version != _CURSOR_VERSION or not hmac.compare_digest(check, _digest(list_of, micros, uid)):
        raise InvalidCursor("not a cursor of this list (customer and filters)")
    try:
        placed_at = utc_text(_EPOCH + timedelta(microseconds=micros))
    except OverflowError:  # a forged key, out of the range of datetimes
        raise InvalidCursor("malformed cursor") from None
    return placed_at, str(UUID(bytes=uid))


class CustomerOrdersQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def list(
        self,
        customer_id: str,
        *,
        status: str | Sequence[str] | None = None,
        placed_from: datetime | None = None,
        placed_to: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        """The customer's orders, newest first, one page at a time.

        ``status``: one status or several (any of them; None or empty: every status);
        ``placed_from`` (inclusive) and ``placed_to`` (exclusive): aware datetimes;
        ``limit`` is clamped to 1..100; ``cursor``: the previous page's ``next_cursor``.
        Raises ``InvalidCursor`` for a cursor that is not the previous page's, and
        ``ValueError`` for an unknown status or a naive datetime.
        """
        statuses = _statuses(status)
        low = _bound(placed_from, "placed_from")
        high = _bound(placed_to, "placed_to")
        size = min(max(int(limit), 1), MAX_LIMIT)
        list_of = _list_of(str(customer_id), statuses, low, high)
        sql = (
            "SELECT order_id, placed_at, status, total, currency, item_count, first_item_title"
            " FROM customer_orders WHERE customer_id = ?"
        )
        params: list[Any] = [str(customer_id)]
        if statuses:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            params += statuses
        if low is not None:
            sql += " AND placed_at >= ?"
            params.append(low)
        if high is not None:
            sql += " AND placed_at < ?"
            params.append(high)
        if cursor is not None:
            sql += " AND (placed_at, order_id) < (?, ?)"
            params += decode_cursor(cursor, list_of)
        sql += " ORDER BY placed_at DESC, order_id DESC LIMIT ?"
        params.append(size + 1)
        with self.store.read() as tx:
            rows = tx.all(sql, params)
        items = tuple(
            CustomerOrder(
                order_id=UUID(order_id),
                placed_at=datetime.fromisoformat(placed_at),
                status=OrderStatus(row_status),
                total=int(total),
                currency=currency,
                item_count=int(items),
                first_item_title=title,
            )
            for order_id, placed_at, row_status, total, currency, items, title in rows[:size]
        )
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor(last[1], last[0], list_of)
        return Page(items, next_cursor)
