"""JSON Lines exports of chained events, for auditors (format: ``offline``'s docstring).

- ``export_range``: the events of one log between two times, as a contiguous run of
  positions (from the first event stamped at or after ``since`` to the last one stamped
  before ``until``, and every event in between whatever its timestamp: timestamps are
  decided before the save and may be slightly out of position order), so the whole run
  verifies as a chain offline. From the log's first event it starts at ``GENESIS``;
  otherwise its first ``prev_hash`` is the anchor, and a signed checkpoint within the run
  ties it to the log.
- ``export_order``: the events of an order, of its shipments (its parcels and a case's
  replacement parcel) and of its after-sales cases (and its return ledger), across logs,
  each with its chain link. A subset proves each event's own link, so each event is the
  one its stored hash commits to, but not that those hashes are in the log, nor that the
  log holds no other event about the order (a deleted or withheld event leaves no trace in
  a subset). For that an auditor verifies a range export of each log against a signed
  checkpoint (which fixes the head, hence every earlier link and the count), then checks
  that the subset's lines appear in it and that no other event of these aggregates does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from uuid import UUID

import msgspec

from ordertrail.adapters.audit.chain import Link
from ordertrail.adapters.audit.offline import render_line
from ordertrail.adapters.audit.recorders import links_of
from ordertrail.adapters.audit.verify import BATCH_SIZE, chained, read_links
from ordertrail.domain import ids
from ordertrail.domain.aftersales import AfterSalesCase, ReturnLedger
from ordertrail.domain.orders import Order

if TYPE_CHECKING:
    from ordertrail.application.base import OrdertrailApplication
    from ordertrail.application.system import Ordertrail


class _Stamped(msgspec.Struct):
    timestamp: datetime | None = None


_stamp = msgspec.json.Decoder(_Stamped)


@dataclass(frozen=True)
class ExportSummary:
    events: int
    first_position: int | None
    last_position: int | None


def _timestamp(state: bytes) -> datetime | None:
    try:
        return _stamp.decode(state).timestamp
    except msgspec.MsgspecError:
        return None


def _write(out: TextIO, application: str, links: Iterator[Link]) -> ExportSummary:
    count, first, last = 0, None, None
    for link in links:
        if link.topic is None:  # a chain row without its event: nothing to export
            continue
        out.write(render_line(application, link) + "\n")
        count += 1
        first = link.position if first is None else first
        last = link.position
    return ExportSummary(count, first, last)


def export_range(
    app: OrdertrailApplication,
    out: TextIO,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> ExportSummary:
    """Export the contiguous run of ``app``'s log stamped within ``[since, until)``."""
    recorder = chained(app.recorder)
    stop = recorder.log_stop()
    first = last = None
    after = 0
    while after < stop:  # first pass: where the run starts and ends
        batch = recorder.select_notifications(
            after, batch_size, stop=stop, inclusive_of_start=False
        )
        if not batch:
            break
        for event in batch:
            stamp = _timestamp(event.state)
            if stamp is None:
                continue
            if (since is None or stamp >= since) and (until is None or stamp < until):
                first = event.id if first is None else first
                last = event.id
        after = batch[-1].id
    if first is None or last is None:
        return ExportSummary(0, None, None)
    links = read_links(recorder, after=first - 1, stop=last, batch_size=batch_size)
    return _write(out, app.name, links)


def order_aggregates(ot: Ordertrail, order_id: UUID) -> dict[str, set[UUID]]:
    """The aggregates whose events make up an order's story, by application name."""
    shipments: set[UUID] = set()
    cases: set[UUID] = set()
    order = ot.orders.find_as(order_id, Order)
    if order is not None:
        shipments.update(order.parcels)
    ledger_id = ids.return_ledger_id(order_id)
    ledger = ot.aftersales.find_as(ledger_id, ReturnLedger)
    if ledger is not None:
        cases.update(ledger.cases)
    for case_id in cases:
        case = ot.aftersales.find_as(case_id, AfterSalesCase)
        if case is not None and case.replacement_shipment_id is not None:
            shipments.add(case.replacement_shipment_id)
    return {
        ot.orders.name: {order_id},  # the order (or the marker of an abandoned placement)
        ot.logistics.name: shipments,
        ot.aftersales.name: {ledger_id, *cases},
    }


def export_order(ot: Ordertrail, order_id: UUID, out: TextIO) -> ExportSummary:
    """Export an order's events and those of its shipments and cases (a subset: verify it
    offline with ``--subset``)."""
    apps: dict[str, Any] = {app.name: app for app in (ot.orders, ot.logistics, ot.aftersales)}
    count = 0
    for name, aggregate_ids in order_aggregates(ot, order_id).items():
        links = links_of(chained(apps[name].recorder), sorted(aggregate_ids))
        count += _write(out, name, iter(links)).events
    return ExportSummary(count, None, None)
