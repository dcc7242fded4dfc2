"""Expiring many unpaid orders at once, and releasing the stock of many orders at once.

During a sale thousands of orders are placed a minute and many are never paid. One
``Ordering.expire_order`` per order costs about eight round trips (its receipt, the
order, two transactions, the order again, each stock record); at flash-sale rates the
expiry fell behind placement and unpaid orders kept their stock long after their
deadline. Here a page of due orders is read in one query (``find_many_as``) and
expired in one orders transaction (each with the receipt ``expire_order`` would record,
so a later ``expire_order`` with the same command id replays it); the stock releaser,
which follows ``Order.Expired``, then releases their stock a page at a time too: the
orders in one query, the stock in one inventory transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ordertrail.application.context import CommandContext
from ordertrail.application.ordering import ExpireOrder, Ordering, order_item_ids
from ordertrail.application.orders import OrderSnapshot
from ordertrail.application.receipts import CommandReceipt, fingerprint
from ordertrail.application.serialization import encode_json
from ordertrail.domain.errors import OrderNotExpirable
from ordertrail.domain.inventory import ReleaseReason
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.orders import Order, OrderStatus


def expire_orders(ordering: Ordering, due: Sequence[tuple[UUID, CommandContext]]) -> int:
    """Expire those of the given orders (id, the context ``expire_order`` would get)
    that still await payment; their stock is released by the stock releaser. Returns
    how many expired here.

    If one of them changes meanwhile (paid or cancelled by someone else), the orders
    transaction fails on its version and the page is expired one order at a time
    instead, which decides each on fresh state."""
    orders = ordering.orders
    now = orders.clock()
    expired = 0
    records: list[Aggregate] = []
    found = orders.find_many_as((order_id for order_id, _ in due), Order)
    for order_id, ctx in due:
        order = found.get(order_id)
        if order is None or order.status is not OrderStatus.AWAITING_PAYMENT:
            continue
        try:
            order.expire(meta=ctx.meta, now=now)
        except OrderNotExpirable:
            continue  # not due yet
        command = ExpireOrder(order_id)
        records += [
            order,
            CommandReceipt.record(
                ctx.command_id,
                command_name=type(command).__name__,
                fingerprint=fingerprint(type(command).__name__, command),
                outcome=encode_json(OrderSnapshot.of(order)),
                meta=ctx.meta,
                now=now,
            ),
        ]
        expired += 1
    if not expired:
        return 0
    try:
        orders.save_all(records)
    except IntegrityError:
        count = 0
        for order_id, ctx in due:
            try:
                ordering.expire_order(ExpireOrder(order_id), ctx)
            except OrderNotExpirable:
                continue  # paid or cancelled meanwhile
            count += 1
        return count
    return expired


def release_stock_of_orders(
    ordering: Ordering,
    orders: Sequence[tuple[UUID, ReleaseReason, EventMeta]],
    known: dict[UUID, Aggregate] | None = None,
) -> None:
    """``Ordering.release_stock_of`` for many orders (id, reason, meta): the orders read
    in one query, each stock record once (all in one query with ``known``, the caller's
    copies of stock records kept between calls), one inventory transaction per reason."""
    by_reason: dict[ReleaseReason, dict[UUID, list[UUID]]] = {}
    metas: dict[UUID, EventMeta] = {}
    found = ordering.orders.find_many_as((order_id for order_id, _, _ in orders), Order)
    for order_id, reason, meta in orders:
        order = found.get(order_id)
        if order is None:
            continue
        by_reason.setdefault(reason, {})[order_id] = order_item_ids(order)
        metas[order_id] = meta
    for reason, holds in by_reason.items():
        ordering.inventory.release_for_orders(holds, reason, metas.__getitem__, known)
