"""The after-sales queue: open cases for staff, oldest first, with what each waits for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic

from ordertrail.domain.aftersales import AfterSalesCase, CaseStatus
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

#: What staff do next, per status.
NEXT_STEP = {
    CaseStatus.REQUESTED.value: "approve or reject",
    CaseStatus.APPROVED.value: "wait for the return, or refund / replace",
    CaseStatus.RETURN_RECEIVED.value: "inspect",
    CaseStatus.INSPECTED.value: "settle and close",
    CaseStatus.REJECTED.value: "close",
}
_EVENTS = (
    AfterSalesCase.Requested,
    AfterSalesCase.Approved,
    AfterSalesCase.Rejected,
    AfterSalesCase.ReturnReceived,
    AfterSalesCase.Inspected,
    AfterSalesCase.RefundIssued,
    AfterSalesCase.Closed,
)


@dataclass(frozen=True)
class QueuedCase:
    case_id: str
    order_id: str
    customer_id: str
    kind: str
    reason: str
    status: str
    next_step: str
    value: int
    refunded: int
    currency: str
    requested_at: str
    updated_at: str
    age_hours: float


class AfterSalesQueue(ReadModel):
    name = "aftersales_queue"
    sources = ("AfterSales",)
    topics = {"AfterSales": frozenset(get_topic(cls) for cls in _EVENTS)}

    def tables(self) -> Sequence[str]:
        return ("aftersales_queue",)

    def create(self, tx: Tx) -> None:
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS aftersales_queue ("
            " case_id {text} PRIMARY KEY, order_id {text} NOT NULL,"
            " customer_id {text} NOT NULL, kind {text} NOT NULL, reason {text} NOT NULL,"
            " status {text} NOT NULL, value {int} NOT NULL, refunded {int} NOT NULL,"
            " currency {text} NOT NULL, requested_at {text} NOT NULL,"
            " updated_at {text} NOT NULL)"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS aftersales_queue_open"
            " ON aftersales_queue (status, requested_at, case_id)"
        )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self._apply(event, tx)

    @singledispatchmethod
    def _apply(self, event: Any, tx: Tx) -> None:
        """Other events do not change the queue."""

    @_apply.register
    def _(self, event: AfterSalesCase.Requested, tx: Tx) -> None:
        value = sum(line.unit_price.amount * line.quantity for line in event.lines)
        tx.execute(
            "INSERT INTO aftersales_queue (case_id, order_id, customer_id, kind, reason, status,"
            " value, refunded, currency, requested_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'requested', ?, 0, ?, ?, ?)",
            (
                str(event.originator_id),
                str(event.order_id),
                event.customer_id,
                event.kind.value,
                event.reason.value,
                value,
                event.lines[0].unit_price.currency,
                _at(event),
                _at(event),
            ),
        )

    @_apply.register
    def _(self, event: AfterSalesCase.Approved, tx: Tx) -> None:
        _status(tx, event, CaseStatus.APPROVED)

    @_apply.register
    def _(self, event: AfterSalesCase.Rejected, tx: Tx) -> None:
        _status(tx, event, CaseStatus.REJECTED)

    @_apply.register
    def _(self, event: AfterSalesCase.ReturnReceived, tx: Tx) -> None:
        _status(tx, event, CaseStatus.RETURN_RECEIVED)

    @_apply.register
    def _(self, event: AfterSalesCase.Inspected, tx: Tx) -> None:
        _status(tx, event, CaseStatus.INSPECTED)

    @_apply.register
    def _(self, event: AfterSalesCase.Closed, tx: Tx) -> None:
        _status(tx, event, CaseStatus.CLOSED)

    @_apply.register
    def _(self, event: AfterSalesCase.RefundIssued, tx: Tx) -> None:
        tx.execute(
            "UPDATE aftersales_queue SET refunded = refunded + ?, updated_at = ? WHERE case_id = ?",
            (event.amount.amount, _at(event), str(event.originator_id)),
        )


def _at(event: AfterSalesCase.Event) -> str:
    return event.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _status(tx: Tx, event: AfterSalesCase.Event, status: CaseStatus) -> None:
    tx.execute(
        "UPDATE aftersales_queue SET status = ?, updated_at = ? WHERE case_id = ?",
        (status.value, _at(event), str(event.originator_id)),
    )


class AfterSalesQueueQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def open_cases(
        self,
        *,
        now: datetime,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[QueuedCase]:
        """Open (not closed) cases, oldest first."""
        if status is not None and status not in NEXT_STEP:
            raise ValueError(f"status is one of {', '.join(NEXT_STEP)}")
        query = (
            "SELECT case_id, order_id, customer_id, kind, reason, status, value, refunded,"
            " currency, requested_at, updated_at FROM aftersales_queue"
            " WHERE status <> 'closed'"
        )
        params: list[Any] = []
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        query += " ORDER BY requested_at, case_id LIMIT ? OFFSET ?"
        params += [max(1, min(limit, 200)), max(0, offset)]
        with self.store.read() as tx:
            rows = tx.all(query, params)
        return [
            QueuedCase(
                case_id=row[0],
                order_id=row[1],
                customer_id=row[2],
                kind=row[3],
                reason=row[4],
                status=row[5],
                next_step=NEXT_STEP[row[5]],
                value=int(row[6]),
                refunded=int(row[7]),
                currency=row[8],
                requested_at=row[9],
                updated_at=row[10],
                age_hours=_hours(now, row[9]),
            )
            for row in rows
        ]


def _hours(now: datetime, at: str) -> float:
    then = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round((now - then).total_seconds() / 3600, 2)
