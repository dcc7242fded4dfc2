"""Queries: they read the projections (read models), never rehydrate aggregates in a loop.

Every query honours ``X-Ordertrail-Wait-For`` (the positions a command returned): it waits,
bounded, until the read model reflects them, and says in ``X-Ordertrail-Consistency``
whether it did.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import FromPath, QueryParameter

from ordertrail.adapters.http.auth import customers_and_staff, principal_of, staff_only
from ordertrail.adapters.http.routes.common import (
    not_found,
    runtime_of,
    visible_to,
    wait_for_read_model,
)
from ordertrail.projections.aftersales_queue import AfterSalesQueueQueries, QueuedCase
from ordertrail.projections.customer_orders import CustomerOrdersQueries, Page
from ordertrail.projections.dashboard import DashboardQueries, DashboardView
from ordertrail.projections.inventory_levels import InventoryLevelsQueries, Level, Movement
from ordertrail.projections.order_tracking import OrderTrackingQueries, OrderTrackingView

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size")]


@get(
    "/orders/{order_id:uuid}/tracking",
    summary="Where an order stands: payments, parcels with their scans, cases, timeline",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["queries"],
)
def order_tracking(
    state: State, request: Request[Any, Any, Any], order_id: FromPath[UUID]
) -> Response[OrderTrackingView]:
    runtime = runtime_of(state)
    order = runtime.ot.orders.order(order_id)  # who may see it: the write side knows now
    visible_to(principal_of(request), order.customer_id, "order")
    headers = wait_for_read_model(request, runtime, "order_tracking")
    view = OrderTrackingQueries(runtime.read.store).get(order_id)
    if view is None:
        raise not_found("order tracking (not projected yet: retry, or send X-Ordertrail-Wait-For)")
    return Response(view, headers=headers)


def _orders_page(
    state: State,
    request: Request[Any, Any, Any],
    customer_id: str,
    *,
    status: list[str] | None,
    placed_from: str | None,
    placed_to: str | None,
    limit: int,
    cursor: str | None,
) -> Response[Page]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, "customer_orders")
    try:
        page = CustomerOrdersQueries(runtime.read.store).list(
            customer_id,
            status=status or None,
            placed_from=_moment(placed_from, "from"),
            placed_to=_moment(placed_to, "to"),
            limit=limit,
            cursor=cursor,
        )
    except ValueError as error:
        raise ClientException(str(error)) from None
    return Response(page, headers=headers)


@get(
    "/customers/me/orders",
    summary="My orders, newest first (cursor pages, filters)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["queries"],
)
def my_orders(
    state: State,
    request: Request[Any, Any, Any],
    *,
    status: Annotated[list[str] | None, QueryParameter(name="status")] = None,
    placed_from: Annotated[str | None, moment_parameter("from")] = None,
    placed_to: Annotated[str | None, moment_parameter("to")] = None,
    limit: Limit = 20,
    cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> Response[Page]:
    principal = principal_of(request)
    return _orders_page(
        state,
        request,
        principal.subject,
        status=status,
        placed_from=placed_from,
        placed_to=placed_to,
        limit=limit,
        cursor=cursor,
    )


@get(
    "/customers/{customer_id:str}/orders",
    summary="A customer's orders (staff)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["queries"],
)
def customer_orders(
    state: State,
    request: Request[Any, Any, Any],
    *,
    customer_id: FromPath[str],
    status: Annotated[list[str] | None, QueryParameter(name="status")] = None,
    placed_from: Annotated[str | None, moment_parameter("from")] = None,
    placed_to: Annotated[str | None, moment_parameter("to")] = None,
    limit: Limit = 20,
    cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> Response[Page]:
    return _orders_page(
        state,
        request,
        customer_id,
        status=status,
        placed_from=placed_from,
        placed_to=placed_to,
        limit=limit,
        cursor=cursor,
    )


@get(
    "/dashboard",
    summary="Merchant dashboard per hour or day, with live snapshots",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["queries"],
)
def dashboard(
    state: State,
    request: Request[Any, Any, Any],
    *,
    granularity: Annotated[Literal["hour", "day"], QueryParameter()] = "day",
    start: Annotated[str | None, moment_parameter("start")] = None,
    end: Annotated[str | None, moment_parameter("end")] = None,
    sla_hours: Annotated[int, QueryParameter(ge=1, le=24 * 30)] = 24,
    low_stock: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 5,
    top: Annotated[int, QueryParameter(ge=1, le=50)] = 5,
) -> Response[DashboardView]:
    runtime = runtime_of(state)
    now = runtime.ot.clock()
    end_at = _moment(end, "end") or now
    start_at = _moment(start, "start") or end_at - (
        timedelta(days=7) if granularity == "day" else timedelta(hours=24)
    )
    headers = wait_for_read_model(request, runtime, "merchant_dashboard")
    queries = DashboardQueries(runtime.read.store, InventoryLevelsQueries(runtime.read.store))
    try:
        view = queries.summary(
            granularity,
            start_at,
            end_at,
            now=now,
            sla=timedelta(hours=sla_hours),
            low_stock_threshold=low_stock,
            top=top,
        )
    except ValueError as error:
        raise ClientException(str(error)) from None
    return Response(view, headers=headers)


@get(
    "/stock-levels",
    summary="On hand, reserved and available per SKU and warehouse",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["queries"],
)
def stock_levels(
    state: State,
    request: Request[Any, Any, Any],
    sku: Annotated[str | None, QueryParameter(max_length=64)] = None,
    low_stock: Annotated[int | None, QueryParameter(ge=0, le=1_000_000)] = None,
) -> Response[list[Level]]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, "inventory_levels")
    queries = InventoryLevelsQueries(runtime.read.store)
    levels = queries.low_stock(low_stock) if low_stock is not None else queries.levels(sku)
    return Response(levels, headers=headers)


@get(
    "/stock-levels/{sku:str}/{warehouse:str}/movements",
    summary="Every movement of a SKU's stock at a warehouse, newest first",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["queries"],
)
def stock_movements(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    warehouse: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> Response[list[Movement]]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, "inventory_levels")
    return Response(
        InventoryLevelsQueries(runtime.read.store).movements(sku, warehouse, limit), headers=headers
    )


@get(
    "/aftersales/queue",
    summary="Open after-sales cases, oldest first, with the next step",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["queries"],
)
def aftersales_queue(
    state: State,
    request: Request[Any, Any, Any],
    *,
    status: Annotated[str | None, QueryParameter(max_length=40)] = None,
    kind: Annotated[str | None, QueryParameter(max_length=40)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
) -> Response[list[QueuedCase]]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, "aftersales_queue")
    try:
        cases = AfterSalesQueueQueries(runtime.read.store).open_cases(
            now=runtime.ot.clock(), status=status, kind=kind, limit=limit, offset=offset
        )
    except ValueError as error:
        raise ClientException(str(error)) from None
    return Response(cases, headers=headers)


#: Moments a query may name: wide enough for any real history, narrow enough that
#: arithmetic on them (a default window before ``end``) cannot overflow.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def moment_parameter(name: str) -> Any:
    return QueryParameter(
        name=name,
        format=OpenAPIFormat.DATE_TIME,
        max_length=40,
        description="RFC 3339 date-time (UTC when it has no offset)",
    )


def _moment(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 query parameter as an aware UTC datetime, or a 400 that says why
    (parsed here: the framework would also take a bare number as a Unix time)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ClientException(f"{name} must be an RFC 3339 date-time, not {text!r}") from None
    if not EARLIEST <= value < LATEST:
        raise ClientException(f"{name} must lie between 1970 and 9000")
    return value


ROUTES = [
    order_tracking,
    my_orders,
    customer_orders,
    dashboard,
    stock_levels,
    stock_movements,
    aftersales_queue,
]
