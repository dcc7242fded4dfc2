"""Auditors: an order's history across every context, any aggregate (or a whole order) at
a version or a moment, and replay verification of the read models. Auditor role only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Response, get, post
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import FromPath, QueryParameter

from ordertrail.adapters.audit.history import OrderHistory, order_history
from ordertrail.adapters.audit.pointintime import (
    AggregateState,
    OrderAsOf,
    aggregate_as_of,
    order_as_of,
)
from ordertrail.adapters.audit.replay import verify_replay
from ordertrail.adapters.http.auth import Role, requires
from ordertrail.adapters.http.routes.common import runtime_of
from ordertrail.adapters.http.schemas import Reply
from ordertrail.adapters.read_models import READ_MODELS
from ordertrail.application.serialization import convert

auditors_only = requires(Role.AUDITOR)

_ORDER = "845683ab-cede-5c5d-9dbd-a865935f08cc"
_STATE_EXAMPLE: dict[str, Any] = {
    "application": "Orders",
    "aggregate_type": "Order",
    "aggregate_id": _ORDER,
    "version": 4,
    "created_on": "2026-11-11T00:00:00.000004+00:00",
    "modified_on": "2026-11-11T00:05:00.000005+00:00",
    "state": {"customer_id": "li-lei", "status": "ready_to_ship", "currency": "CNY"},
    "as_of": "2026-11-11T01:00:00+00:00",
}
_HISTORY_EXAMPLE: dict[str, Any] = {
    "order_id": _ORDER,
    "entries": [
        {
            "timestamp": "2026-11-11T00:00:00.000004+00:00",
            "application": "Inventory",
            "position": 3,
            "aggregate_type": "InventoryItem",
            "aggregate_id": "dbb3356f-3222-5dfc-854b-8c9709d1f998",
            "version": 3,
            "event_type": "InventoryItem.StockReserved",
            "topic": "ordertrail.inventory:InventoryItem.StockReserved",
            "actor_kind": "customer",
            "actor_id": "li-lei",
            "correlation_id": "dd348c84-1f63-4782-97b3-b7890d2ae30b",
            "causation_id": "dd348c84-1f63-4782-97b3-b7890d2ae30b",
            "payload": {"order_id": _ORDER, "quantity": 2},
        },
        {
            "timestamp": "2026-11-11T00:00:00.000004+00:00",
            "application": "Orders",
            "position": 1,
            "aggregate_type": "Order",
            "aggregate_id": _ORDER,
            "version": 1,
            "event_type": "Order.Placed",
            "topic": "ordertrail.orders:Order.Placed",
            "actor_kind": "customer",
            "actor_id": "li-lei",
            "correlation_id": "dd348c84-1f63-4782-97b3-b7890d2ae30b",
            "causation_id": "dd348c84-1f63-4782-97b3-b7890d2ae30b",
            "payload": {"customer_id": "li-lei", "currency": "CNY"},
        },
    ],
    "aggregates": [
        {
            "application": "Orders",
            "aggregate_type": "Order",
            "aggregate_id": _ORDER,
            "whole": True,
            "versions": [1],
        }
    ],
    "index_lag": {"Orders": 0, "Inventory": 0},
}
_AS_OF_EXAMPLE: dict[str, Any] = {
    "order_id": _ORDER,
    "as_of": "2026-11-11T01:00:00+00:00",
    "order": _STATE_EXAMPLE,
    "shipments": [],
    "cases": [],
    "carts": [],
    "others": [],
    "reservations": [
        {
            "inventory_item_id": "dbb3356f-3222-5dfc-854b-8c9709d1f998",
            "sku": "TEA-OOLONG-100G",
            "warehouse": "main",
            "item_version": 3,
            "holder_id": _ORDER,
            "reservation": {"order_id": _ORDER, "quantity": 2, "shipped": 0},
        }
    ],
}
_REPLAY_EXAMPLE: dict[str, Any] = {
    "ok": False,
    "difference_count": 1,
    "seconds": 0.42,
    "models": [
        {
            "name": "inventory_levels",
            "ok": False,
            "positions": {"Inventory": 23},
            "heads": {"Inventory": 24},
            "lag": {"Inventory": 1},
            "health": "ok",
            "rows": 20,
            "difference_count": 1,
            "differences": [
                {
                    "model": "inventory_levels",
                    "table": "inventory_levels",
                    "key": {"item_id": "dbb3356f-3222-5dfc-854b-8c9709d1f998"},
                    "column": "on_hand",
                    "live": 39,
                    "replayed": 38,
                }
            ],
            "error": None,
        }
    ],
    "aggregates": {"ok": True, "checked": 69, "events": 148, "failures": []},
}


def _ok(container: Any, example: dict[str, Any], summary: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            data_container=container,
            description="OK",
            generate_examples=False,
            examples=[Example(summary=summary, value=example)],
        )
    }


#: Moments an auditor may name: before any history, and far enough from the end of the
#: calendar that no arithmetic on them overflows.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _moment(text: str | None) -> datetime | None:
    """``as_of`` as an aware datetime: RFC 3339 with its offset, or a 400 saying why
    (parsed here: the framework would take a bare number as a Unix time)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClientException(f"as_of must be an RFC 3339 date-time, not {text!r}") from None
    if value.tzinfo is None:
        raise ClientException("as_of must be an RFC 3339 date-time with an offset (Z or +08:00)")
    try:
        in_range = EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise ClientException(f"as_of must be between {EARLIEST.year} and {LATEST.year}")
    return value


AsOf = Annotated[
    str | None,
    QueryParameter(
        format=OpenAPIFormat.DATE_TIME,
        max_length=40,
        description="an RFC 3339 date-time with an offset",
        examples=[Example(summary="a moment", value="2026-11-11T01:00:00Z")],
    ),
]


@get(
    "/audit/orders/{order_id:uuid}/history",
    summary="Every event of an order, in every context, in order (auditors)",
    description="The order, its stock reservations, parcels and tracking numbers, payments, "
    "after-sales cases, return ledger, the cart it came from and the command receipts: "
    "each event with its actor, correlation and causation ids. Ordered by timestamp, then "
    "context, then position in that context's log.",
    guards=[auditors_only],
    sync_to_thread=True,
    tags=["audit"],
    responses=_ok(OrderHistory, _HISTORY_EXAMPLE, "an order's first events"),
)
def history(state: State, order_id: FromPath[UUID]) -> OrderHistory:
    runtime = runtime_of(state)
    return order_history(runtime.ot, runtime.read.store, order_id)


@get(
    "/audit/orders/{order_id:uuid}",
    summary="An order with its parcels, cases, carts and reservations as of a moment",
    description="Each aggregate at the last version recorded at or before `as_of` (default: "
    "now); those that did not exist yet are left out (`order` is null before placement).",
    guards=[auditors_only],
    sync_to_thread=True,
    tags=["audit"],
    responses=_ok(OrderAsOf, _AS_OF_EXAMPLE, "an order an hour after it was placed"),
)
def order_at(
    state: State,
    order_id: FromPath[UUID],
    as_of: AsOf = None,
) -> OrderAsOf:
    runtime = runtime_of(state)
    moment = _moment(as_of) or runtime.ot.clock()
    return order_as_of(runtime.ot, runtime.read.store, order_id, moment)


@get(
    "/audit/aggregates/{application:str}/{aggregate_id:uuid}",
    summary="Any aggregate at a version, or as of a moment (default: now)",
    description="`application` names the context (`orders`, `inventory`, `logistics`, "
    "`aftersales`, `catalog`, `knowledge`, `carts`). Give `version` or `as_of`, not both.",
    guards=[auditors_only],
    sync_to_thread=True,
    tags=["audit"],
    responses=_ok(AggregateState, _STATE_EXAMPLE, "an order at version 4"),
)
def aggregate(
    state: State,
    application: FromPath[str],
    aggregate_id: FromPath[UUID],
    version: Annotated[
        int | None,
        QueryParameter(
            ge=1,
            le=10**9,
            description="fold the first N events",
            examples=[Example(summary="version 4", value=4)],
        ),
    ] = None,
    as_of: AsOf = None,
) -> AggregateState:
    if version is not None and as_of is not None:
        raise ClientException("give version or as_of, not both")
    runtime = runtime_of(state)
    return aggregate_as_of(
        runtime.ot,
        runtime.read.store,
        application,
        aggregate_id,
        version=version,
        as_of=_moment(as_of),
    )


class DifferenceReply(Reply):
    model: str
    table: str
    key: dict[str, Any]
    column: str | None
    live: Any
    replayed: Any


class ModelReply(Reply):
    name: str
    ok: bool
    positions: dict[str, int]
    heads: dict[str, int]
    lag: dict[str, int]
    health: str
    rows: int
    difference_count: int
    differences: list[DifferenceReply]
    error: str | None = None  # the replay itself failed (an event it cannot apply)


class AggregateFailureReply(Reply):
    application: str
    aggregate_id: str
    version: int
    error: str


class AggregatesReply(Reply):
    ok: bool
    checked: int
    events: int
    failures: list[AggregateFailureReply]


class ReplayReply(Reply):
    """Every difference between the live read models and a replay of the events."""

    ok: bool
    difference_count: int
    seconds: float
    models: list[ModelReply]
    aggregates: AggregatesReply | None


@post(
    "/audit/replay-verification",
    summary="Replay every event into scratch read models and compare with the live ones",
    description="Each read model is rebuilt from the events, through the same projection "
    "code, up to the positions the live model had reached, and compared table by table, "
    "row by row (model, key, column, live value, replayed value). With `aggregates`, every "
    "aggregate is also folded from its events. `wait_seconds` first lets lagging models "
    "catch up; what lag remains is reported, never counted as a difference.",
    guards=[auditors_only],
    sync_to_thread=True,
    tags=["audit"],
    status_code=200,
    responses=_ok(ReplayReply, _REPLAY_EXAMPLE, "one corrupted row found"),
)
def replay_verification(
    state: State,
    models: Annotated[
        list[str] | None,
        QueryParameter(
            description=f"read models to check (default: all of {', '.join(READ_MODELS)})",
            examples=[Example(summary="one model", value=["inventory_levels"])],
        ),
    ] = None,
    aggregates: Annotated[
        bool, QueryParameter(description="also fold every aggregate from its events")
    ] = True,
    wait_seconds: Annotated[float, QueryParameter(ge=0, le=10)] = 0.0,
) -> Response[ReplayReply]:
    unknown = sorted(set(models or ()) - set(READ_MODELS))
    if unknown:
        raise ClientException(
            f"no read model {', '.join(unknown)}; known: {', '.join(READ_MODELS)}"
        )
    runtime = runtime_of(state)
    report = verify_replay(
        runtime.ot,
        runtime.read.store,
        names=models or None,
        aggregates=aggregates,
        wait_seconds=wait_seconds,
    )
    return Response(convert(report.to_json(), ReplayReply))


ROUTES = [history, order_at, aggregate, replay_verification]
