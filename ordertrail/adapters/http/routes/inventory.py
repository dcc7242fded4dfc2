"""Stock: receiving goods, correcting counts, and what is on hand per warehouse (staff)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from msgspec import Meta

from ordertrail.adapters.http.auth import staff_only
from ordertrail.adapters.http.routes.common import accepted, context, etag, example, runtime_of
from ordertrail.adapters.http.schemas import Body, Code, Reply
from ordertrail.application.inventory import AdjustStock, ReceiveStock, StockLevel
from ordertrail.application.warehouses import DEFAULT_WAREHOUSE
from ordertrail.domain.inventory import MAX_QUANTITY, AdjustmentReason

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
StockQuantity = Annotated[int, Meta(ge=1, le=MAX_QUANTITY, examples=[24])]
Delta = Annotated[int, Meta(ge=-MAX_QUANTITY, le=MAX_QUANTITY, examples=[-2])]
Reference = Annotated[str, Meta(max_length=200, examples=["PO-2026-1107"])]
Note = Annotated[str, Meta(max_length=500, examples=["two tins crushed in the racking"])]

RECEIPT_EXAMPLE = {"quantity": 24, "warehouse": "main", "reference": "PO-2026-1107"}
ADJUSTMENT_EXAMPLE = {
    "delta": -2,
    "reason": "damaged",
    "note": "two tins crushed in the racking",
    "warehouse": "main",
}


class ReceiptBody(Body):
    """Goods arrived at a warehouse (a delivery from a supplier)."""

    quantity: StockQuantity
    warehouse: Code = DEFAULT_WAREHOUSE
    reference: Reference = ""


class AdjustmentBody(Body):
    """A correction of on-hand stock; it may not fall below what is reserved."""

    delta: Delta
    reason: AdjustmentReason
    note: Note = ""
    warehouse: Code = DEFAULT_WAREHOUSE


class StockLevelReply(Reply):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    version: int

    @classmethod
    def of(cls, level: StockLevel) -> StockLevelReply:
        return cls(
            sku=level.sku,
            warehouse=level.warehouse,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            version=level.version,
        )


class StockReply(Reply):
    """A SKU's stock: totals, and each warehouse asked for."""

    sku: str
    on_hand: int
    reserved: int
    available: int
    warehouses: list[StockLevelReply]


def _known_sku(state: State, sku: str) -> str:
    """The SKU, if the catalog knows it (404 otherwise): stock is kept for products only."""
    return runtime_of(state).ot.catalog.product(sku).sku


@post(
    "/inventory/{sku:str}/receipts",
    summary="Receive stock into a warehouse",
    description="Adds to on-hand stock. Honours If-Match (the warehouse's stock ETag).",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["inventory"],
    status_code=200,
)
def receive_stock(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    data: Annotated[ReceiptBody, example(RECEIPT_EXAMPLE)],
) -> Response[StockLevelReply]:
    known = _known_sku(state, sku)
    result = runtime_of(state).ot.inventory.receive_stock(
        ReceiveStock(known, data.quantity, data.warehouse, data.reference),
        context(request, versioned=True),
    )
    return accepted(result, StockLevelReply.of(result.value), version=result.value.version)


@post(
    "/inventory/{sku:str}/adjustments",
    summary="Correct on-hand stock (count correction, damage, loss, ...)",
    description="On hand may not fall below what is reserved. Honours If-Match.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["inventory"],
    status_code=200,
)
def adjust_stock(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    data: Annotated[AdjustmentBody, example(ADJUSTMENT_EXAMPLE)],
) -> Response[StockLevelReply]:
    known = _known_sku(state, sku)
    result = runtime_of(state).ot.inventory.adjust_stock(
        AdjustStock(known, data.delta, data.reason, data.warehouse, data.note),
        context(request, versioned=True),
    )
    return accepted(result, StockLevelReply.of(result.value), version=result.value.version)


@get(
    "/inventory/{sku:str}",
    summary="A SKU's stock per warehouse, from its events",
    description="With ?warehouse= only that warehouse, and its version as the ETag.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["inventory"],
)
def get_stock(
    state: State,
    sku: FromPath[str],
    warehouse: Annotated[str | None, QueryParameter(pattern=CODE_PATTERN)] = None,
) -> Response[StockReply]:
    known = _known_sku(state, sku)
    inventory = runtime_of(state).ot.inventory
    codes = inventory.warehouses.codes if warehouse is None else (warehouse,)
    levels = [inventory.stock_level(known, code) for code in codes]
    reply = StockReply(
        sku=known,
        on_hand=sum(level.on_hand for level in levels),
        reserved=sum(level.reserved for level in levels),
        available=sum(level.available for level in levels),
        warehouses=[StockLevelReply.of(level) for level in levels],
    )
    headers = {"ETag": etag(levels[0].version)} if warehouse is not None else {}
    return Response(reply, headers=headers)


ROUTES = [receive_stock, adjust_stock, get_stock]
