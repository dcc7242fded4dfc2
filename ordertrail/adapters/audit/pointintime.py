"""What any aggregate, or a whole order across its contexts, looked like at a version or
at a moment.

- At version N: the library folds the aggregate's first N events
  (``repository.get(id, version=N)``).
- At time T: the version current at T is the highest version whose event was recorded at
  or before T. The audit index (``ordertrail.projections.audit_index``) maps (aggregate,
  timestamp) to version; the aggregate's events the index has not reached yet are read
  from its log, so the answer is exact even while the index lags, and without any index
  it is a scan of the aggregate's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.adapters.audit.history import (
    ORDER_SCOPED_TYPES,
    application_named,
    applications_of,
    jsonable,
    open_view,
    related_to_order,
)
from ordertrail.adapters.read_models import sources_of
from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.system import Ordertrail
from ordertrail.domain.errors import DomainError, ErrorKind
from ordertrail.domain.inventory import InventoryItem
from ordertrail.projections.audit_index import AuditIndexView, timestamp_of
from ordertrail.projections.store import ReadStore


class AggregateNotFound(DomainError):
    code = "audit.aggregate_not_found"
    kind = ErrorKind.NOT_FOUND


class VersionNotFound(DomainError):
    code = "audit.version_not_found"
    kind = ErrorKind.NOT_FOUND


class NotYetRecorded(DomainError):
    """The aggregate exists, but its first event is later than the moment asked for."""

    code = "audit.not_yet_recorded"
    kind = ErrorKind.NOT_FOUND


class InvalidAuditQuery(DomainError):
    code = "audit.invalid_query"
    kind = ErrorKind.INVALID


@dataclass(frozen=True)
class AggregateState:
    """One aggregate as it was at one version."""

    application: str
    aggregate_type: str
    aggregate_id: UUID
    version: int
    created_on: datetime
    modified_on: datetime  # when its ``version``-th event was recorded
    state: dict[str, Any]
    as_of: datetime | None = None  # the moment asked for, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "created_on": self.created_on.isoformat(),
            "modified_on": self.modified_on.isoformat(),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "state": self.state,
        }


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """Everything an aggregate knows (its own attributes), as plain JSON types."""
    return {
        name: jsonable(value)
        for name, value in sorted(vars(aggregate).items())
        if not name.startswith("_")
    }


def describe(
    application: str, aggregate: Aggregate, as_of: datetime | None = None
) -> AggregateState:
    return AggregateState(
        application=application,
        aggregate_type=type(aggregate).__name__,
        aggregate_id=aggregate.id,
        version=aggregate.version,
        created_on=aggregate.created_on,
        modified_on=aggregate.modified_on,
        state=state_of(aggregate),
        as_of=as_of,
    )


def head_version(app: OrdertrailApplication, aggregate_id: UUID) -> int:
    """The aggregate's current version in its log (0: it does not exist)."""
    newest = app.recorder.select_events(aggregate_id, desc=True, limit=1)
    return int(newest[0].originator_version) if newest else 0


def aggregate_at(app: OrdertrailApplication, aggregate_id: UUID, version: int) -> Aggregate:
    """The aggregate folded from its first ``version`` events."""
    if version < 1:
        raise InvalidAuditQuery("a version is 1 or more", version=version)
    head = head_version(app, aggregate_id)
    if head == 0:
        raise AggregateNotFound(
            f"no aggregate {aggregate_id} in {app.name}", aggregate_id=str(aggregate_id)
        )
    if version > head:
        raise VersionNotFound(
            f"{aggregate_id} is at version {head}, not {version}", version=version, head=head
        )
    aggregate: Aggregate = app.repository.get(aggregate_id, version=version)
    return aggregate


def version_at(
    app: OrdertrailApplication,
    aggregate_id: UUID,
    moment: datetime,
    view: AuditIndexView,
) -> int:
    """The highest version recorded at or before ``moment`` (0: none yet).

    ``view`` answers for the versions the stored index holds; versions above those are
    read from the log (all of them when there is no index).
    """
    if moment.tzinfo is None:
        raise InvalidAuditQuery("a moment needs its UTC offset (RFC 3339)")
    best = view.version_at(app.name, aggregate_id, moment)
    indexed = max(view.indexed_head(app.name, aggregate_id), best)
    for stored in app.recorder.select_events(aggregate_id, gt=indexed or None):
        event = app.mapper.to_domain_event(stored)
        if timestamp_of(event) <= moment:
            best = max(best, int(event.originator_version))
    return best


def aggregate_as_of(
    ot: Ordertrail,
    store: ReadStore | None,
    application: str,
    aggregate_id: UUID,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
) -> AggregateState:
    """An aggregate at ``version``, or as it was at ``as_of``, or (neither) as it is now."""
    if version is not None and as_of is not None:
        raise InvalidAuditQuery("ask for a version or a moment, not both")
    if version is not None and version < 1:
        raise InvalidAuditQuery("a version is 1 or more", version=version)
    app = application_named(ot, application)
    if as_of is not None:
        view = AuditIndexView(store, sources_of(ot), tail=False)
        found = version_at(app, aggregate_id, as_of, view)
        if found == 0:
            if head_version(app, aggregate_id) == 0:
                raise AggregateNotFound(
                    f"no aggregate {aggregate_id} in {app.name}", aggregate_id=str(aggregate_id)
                )
            raise NotYetRecorded(
                f"{aggregate_id} was first recorded after {as_of.isoformat()}",
                aggregate_id=str(aggregate_id),
                as_of=as_of.isoformat(),
            )
        return describe(app.name, aggregate_at(app, aggregate_id, found), as_of)
    chosen = version if version is not None else head_version(app, aggregate_id)
    if chosen == 0:
        raise AggregateNotFound(
            f"no aggregate {aggregate_id} in {app.name}", aggregate_id=str(aggregate_id)
        )
    return describe(app.name, aggregate_at(app, aggregate_id, chosen))


# --- a whole order at a moment --------------------------------------------------------------


@dataclass(frozen=True)
class ReservationAsOf:
    """Stock one SKU's record held, at the moment, for the order (or one of its cases)."""

    inventory_item_id: UUID
    sku: str
    warehouse: str
    item_version: int
    holder_id: UUID
    reservation: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory_item_id": str(self.inventory_item_id),
            "sku": self.sku,
            "warehouse": self.warehouse,
            "item_version": self.item_version,
            "holder_id": str(self.holder_id),
            "reservation": self.reservation,
        }


@dataclass(frozen=True)
class OrderAsOf:
    order_id: UUID
    as_of: datetime
    order: AggregateState | None  # None: not placed yet at that moment
    shipments: list[AggregateState] = field(default_factory=list)
    cases: list[AggregateState] = field(default_factory=list)
    carts: list[AggregateState] = field(default_factory=list)
    others: list[AggregateState] = field(default_factory=list)  # ledger, tracking numbers
    reservations: list[ReservationAsOf] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "as_of": self.as_of.isoformat(),
            "order": self.order.to_json() if self.order else None,
            "shipments": [s.to_json() for s in self.shipments],
            "cases": [c.to_json() for c in self.cases],
            "carts": [c.to_json() for c in self.carts],
            "others": [o.to_json() for o in self.others],
            "reservations": [r.to_json() for r in self.reservations],
        }


_GROUPS: Mapping[str, str] = {
    "Shipment": "shipments",
    "AfterSalesCase": "cases",
    "Cart": "carts",
}


def order_as_of(
    ot: Ordertrail, store: ReadStore | None, order_id: UUID, as_of: datetime
) -> OrderAsOf:
    """The order, its shipments, cases, carts and stock reservations, each as it was at
    ``as_of`` (those that did not exist yet are left out)."""
    if as_of.tzinfo is None:
        raise InvalidAuditQuery("a moment needs its UTC offset (RFC 3339)")
    view = open_view(ot, store)
    related = related_to_order(view, order_id)
    apps = applications_of(ot)
    holders = {order_id} | {
        aggregate_id
        for (_, aggregate_id), aggregate in related.aggregates.items()
        if aggregate.whole
    }
    order: AggregateState | None = None
    groups: dict[str, list[AggregateState]] = {
        "shipments": [],
        "cases": [],
        "carts": [],
        "others": [],
    }
    reservations: list[ReservationAsOf] = []
    for (application, aggregate_id), aggregate in sorted(
        related.aggregates.items(), key=lambda item: (item[0][0], str(item[0][1]))
    ):
        if not aggregate.whole and aggregate.aggregate_type != "InventoryItem":
            continue  # receipts and other shared records: their events are in the history
        version = view.version_at(application, aggregate_id, as_of)
        if version == 0:
            continue
        app = apps[application]
        state: Aggregate = app.repository.get(aggregate_id, version=version)
        if isinstance(state, InventoryItem):
            reservations.extend(
                ReservationAsOf(
                    state.id,
                    state.sku,
                    state.warehouse,
                    state.version,
                    holder,
                    jsonable(state.reservations[holder]),
                )
                for holder in sorted(holders, key=str)
                if holder in state.reservations
            )
            continue
        described = describe(application, state, as_of)
        if aggregate_id == order_id and application == "Orders":
            order = described
        elif aggregate.aggregate_type in ORDER_SCOPED_TYPES:
            groups[_GROUPS.get(aggregate.aggregate_type, "others")].append(described)
    return OrderAsOf(
        order_id,
        as_of,
        order,
        shipments=groups["shipments"],
        cases=groups["cases"],
        carts=groups["carts"],
        others=groups["others"],
        reservations=reservations,
    )
