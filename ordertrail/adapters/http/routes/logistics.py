"""Parcels: shipping an order, tracking and cancelling a parcel, the carriers' signed
tracking callbacks, and their cash-on-delivery accounts."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4, uuid5

from litestar import Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.params import FromPath
from msgspec import Meta

from ordertrail.adapters.http.auth import Role, customers_and_staff, principal_of, staff_only
from ordertrail.adapters.http.routes.common import (
    POSITION_HEADER,
    accepted,
    context,
    encode_positions,
    etag,
    example,
    not_found,
    runtime_of,
    visible_to,
)
from ordertrail.adapters.http.runtime import Runtime
from ordertrail.adapters.http.schemas import (
    AddressReply,
    Body,
    Code,
    MoneyBody,
    MoneyReply,
    Quantity,
    Reply,
)
from ordertrail.application.carriers import CarrierGateway, Preference, TrackingNotice
from ordertrail.application.context import CommandContext
from ordertrail.application.fulfilment import CreateShipment
from ordertrail.application.logistics import (
    CancelParcel,
    CodBalance,
    RecordRemittance,
    RecordTrackingNotice,
)
from ordertrail.application.receipts import fingerprint
from ordertrail.domain.errors import DomainError, UnknownCarrier
from ordertrail.domain.fulfilment import MAX_PARCEL_WEIGHT_GRAMS, ParcelQuantity
from ordertrail.domain.ids import NAMESPACE
from ordertrail.domain.meta import Actor, ActorKind
from ordertrail.domain.shipments import MAX_PARCEL_LINES, Shipment

log = logging.getLogger(__name__)

#: Errors a carrier's retry may get past: answered with an error status so it retries.
RETRYABLE_CODES = frozenset({"command.conflict", "store.unavailable"})
UNRECORDED_HEADER = "X-Ordertrail-Unrecorded"
_NOTICES = uuid5(NAMESPACE, "http.carrier-notice")

LineNo = Annotated[int, Meta(ge=1, le=10_000, examples=[1])]
Weight = Annotated[int, Meta(ge=1, le=MAX_PARCEL_WEIGHT_GRAMS, examples=[800])]
Reason = Annotated[str, Meta(min_length=1, max_length=500, examples=["packed the wrong box"])]

SHIPMENT_EXAMPLE = {
    "delivery_group": "home",
    "lines": [{"line_no": 1, "quantity": 2}],
    "weight_grams": 800,
    "preference": "cheapest",
}
REMITTANCE_EXAMPLE = {
    "amount": {"amount": 13600, "currency": "CNY"},
    "reference": "PH-SETTLE-2026-11-15",
    "remitted_at": "2026-11-15T10:00:00+08:00",
}


class ParcelLineBody(Body):
    line_no: LineNo
    quantity: Quantity


class CreateShipmentBody(Body):
    """Units of one delivery group in one parcel. Without a carrier, the carrier rules
    choose one (the cheapest or the fastest that takes the parcel)."""

    delivery_group: Code
    lines: Annotated[list[ParcelLineBody], Meta(min_length=1, max_length=MAX_PARCEL_LINES)]
    weight_grams: Weight
    carrier: Code | None = None
    preference: Preference = Preference.CHEAPEST


class CancelShipmentBody(Body):
    reason: Reason


class RemittanceBody(Body):
    """Cash on delivery the carrier paid over (a reference counts once)."""

    amount: MoneyBody
    reference: Annotated[str, Meta(min_length=1, max_length=200)]
    remitted_at: Annotated[datetime, Meta(tz=True)]


class ParcelLineReply(Reply):
    line_no: int
    sku: str
    quantity: int
    warehouse: str


class ScanReply(Reply):
    milestone: str
    occurred_at: datetime
    location: str
    description: str


class CashOnDeliveryReply(Reply):
    due: MoneyReply
    collected: MoneyReply | None


class ShipmentReply(Reply):
    shipment_id: UUID
    order_id: UUID
    delivery_group: str
    address: AddressReply
    lines: list[ParcelLineReply]
    carrier: str
    tracking_number: str
    status: str
    weight_grams: int
    cash_on_delivery: CashOnDeliveryReply | None
    picked_up_at: datetime | None
    delivered_at: datetime | None
    returned_at: datetime | None
    timeline: list[ScanReply]
    version: int

    @classmethod
    def of(cls, shipment: Shipment) -> ShipmentReply:
        cod = None
        if shipment.cod_amount is not None:
            collected = shipment.cash_collected
            cod = CashOnDeliveryReply(
                due=MoneyReply.of(shipment.cod_amount),
                collected=None if collected is None else MoneyReply.of(collected),
            )
        return cls(
            shipment_id=shipment.id,
            order_id=shipment.order_id,
            delivery_group=shipment.delivery_group,
            address=AddressReply.of(shipment.address),
            lines=[
                ParcelLineReply(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    warehouse=line.warehouse,
                )
                for line in shipment.lines
            ],
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            status=shipment.status.value,
            weight_grams=shipment.weight_grams,
            cash_on_delivery=cod,
            picked_up_at=shipment.picked_up_at,
            delivered_at=shipment.delivered_at,
            returned_at=shipment.returned_at,
            timeline=[
                ScanReply(
                    milestone=scan.milestone.value,
                    occurred_at=scan.occurred_at,
                    location=scan.location,
                    description=scan.description,
                )
                for scan in shipment.timeline()
            ],
            version=shipment.version,
        )


class CodBalanceReply(Reply):
    carrier: str
    collected: MoneyReply
    remitted: MoneyReply
    outstanding: MoneyReply
    parcels: int

    @classmethod
    def of(cls, balance: CodBalance) -> CodBalanceReply:
        return cls(
            carrier=balance.carrier,
            collected=MoneyReply.of(balance.collected),
            remitted=MoneyReply.of(balance.remitted),
            outstanding=MoneyReply.of(balance.outstanding),
            parcels=balance.parcels,
        )


def _gateway(runtime: Runtime, carrier: str) -> CarrierGateway:
    """The configured carrier named in the path (404 for any other)."""
    try:
        return runtime.ot.fulfilment.carriers.get(carrier)
    except UnknownCarrier:
        raise not_found("carrier") from None


@post(
    "/orders/{order_id:uuid}/shipments",
    summary="Ship units of an order in one parcel (carrier chosen by the rules)",
    description="Books the parcel with the carrier; the reply's ETag is the parcel's.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["logistics"],
    status_code=201,
)
def create_shipment(
    state: State,
    request: Request[Any, Any, Any],
    order_id: FromPath[UUID],
    data: Annotated[CreateShipmentBody, example(SHIPMENT_EXAMPLE)],
) -> Response[ShipmentReply]:
    runtime = runtime_of(state)
    command = CreateShipment(
        order_id=order_id,
        delivery_group=data.delivery_group,
        lines=tuple(ParcelQuantity(line.line_no, line.quantity) for line in data.lines),
        weight_grams=data.weight_grams,
        carrier=data.carrier,
        preference=data.preference,
    )
    result = runtime.ot.fulfilment.create_shipment(command, context(request))
    shipment = runtime.ot.logistics.shipment(result.value.shipment_id)
    return accepted(
        result,
        ShipmentReply.of(shipment),
        status=201,
        version=shipment.version,
        location=f"/shipments/{shipment.id}",
    )


def _visible_shipment(state: State, request: Request[Any, Any, Any], shipment_id: UUID) -> Shipment:
    """The parcel, if the caller may see it (customers: their own orders' only; else 404)."""
    runtime = runtime_of(state)
    shipment = runtime.ot.logistics.shipment(shipment_id)
    principal = principal_of(request)
    if principal.role is Role.CUSTOMER:
        order = runtime.ot.orders.order(shipment.order_id)
        visible_to(principal, order.customer_id, "shipment")
    return shipment


@get(
    "/shipments/{shipment_id:uuid}",
    summary="One parcel: status, carrier, tracking number, scans, cash on delivery",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["logistics"],
)
def get_shipment(
    state: State, request: Request[Any, Any, Any], shipment_id: FromPath[UUID]
) -> Response[ShipmentReply]:
    shipment = _visible_shipment(state, request, shipment_id)
    return Response(ShipmentReply.of(shipment), headers={"ETag": etag(shipment.version)})


@post(
    "/shipments/{shipment_id:uuid}/cancel",
    summary="Cancel a parcel before the carrier picks it up (If-Match)",
    description="Its units go back to the order, to be shipped again.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["logistics"],
    status_code=200,
)
def cancel_shipment(
    state: State,
    request: Request[Any, Any, Any],
    shipment_id: FromPath[UUID],
    data: Annotated[CancelShipmentBody, example({"reason": "packed the wrong box"})],
) -> Response[ShipmentReply]:
    logistics = runtime_of(state).ot.logistics
    result = logistics.cancel_parcel(
        CancelParcel(shipment_id, data.reason), context(request, versioned=True)
    )
    shipment = logistics.shipment(shipment_id)
    return accepted(result, ShipmentReply.of(shipment), version=shipment.version)


def _record_notices(
    runtime: Runtime, carrier: str, notices: list[TrackingNotice]
) -> tuple[dict[str, int], int]:
    """Record each notice (idempotent per notice); returns the positions written and how
    many notices could not be recorded (unknown parcel, refused by the parcel)."""
    actor = Actor.of(ActorKind.CARRIER, carrier)
    correlation = uuid4()
    positions: dict[str, int] = {}
    unrecorded = 0
    for notice in notices:
        command = RecordTrackingNotice(notice)
        digest = fingerprint(type(command).__name__, command)
        ctx = CommandContext(
            actor=actor,
            command_id=uuid5(_NOTICES, f"{carrier}\x1f{digest}"),
            correlation_id=correlation,
        )
        try:
            result = runtime.ot.logistics.record_notice(command, ctx)
        except DomainError as error:
            if error.code in RETRYABLE_CODES:
                raise
            unrecorded += 1
            log.warning(
                "%s notice for %s not recorded: %s (%s)",
                carrier,
                notice.tracking_number,
                error.message,
                error.code,
            )
            continue
        for name, position in result.positions.items():
            positions[name] = max(position, positions.get(name, 0))
    return positions, unrecorded


@post(
    "/callbacks/carriers/{carrier:str}",
    summary="A carrier's tracking callback (signed by the carrier)",
    description="Public, authenticated by the carrier's own signature (Kuaidi100: form "
    "fields param and sign; ParcelHub: X-ParcelHub-Signature). Answers the carrier's own "
    "acknowledgement; notices about parcels we do not know are acknowledged, not recorded.",
    opt={"public": True},
    tags=["callbacks"],
    status_code=200,
)
async def carrier_callback(
    state: State, request: Request[Any, Any, Any], carrier: FromPath[str]
) -> Response[bytes]:
    runtime = runtime_of(state)
    gateway = _gateway(runtime, carrier)
    body = await request.body()
    headers = dict(request.headers)
    gateway.verify(body, headers)  # CarrierSignatureInvalid: 401, nothing written
    notices = gateway.parse(body, headers)
    positions, unrecorded = await sync_to_thread(_record_notices, runtime, gateway.code, notices)
    media_type, reply = gateway.acknowledgement()
    response_headers = {POSITION_HEADER: encode_positions(positions)}
    if unrecorded:
        response_headers[UNRECORDED_HEADER] = str(unrecorded)
    return Response(reply, media_type=media_type, headers=response_headers)


@post(
    "/carriers/{carrier:str}/remittances",
    summary="Record cash on delivery a carrier paid over",
    description="Never more than the carrier collected and has not remitted; a reference "
    "counts once.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["logistics"],
    status_code=200,
)
def record_remittance(
    state: State,
    request: Request[Any, Any, Any],
    carrier: FromPath[str],
    data: Annotated[RemittanceBody, example(REMITTANCE_EXAMPLE)],
) -> Response[CodBalanceReply]:
    runtime = runtime_of(state)
    code = _gateway(runtime, carrier).code
    result = runtime.ot.logistics.record_remittance(
        RecordRemittance(code, data.amount.to_money(), data.reference, data.remitted_at),
        context(request),
    )
    return accepted(result, CodBalanceReply.of(result.value))


@get(
    "/carriers/{carrier:str}/cod-balance",
    summary="A carrier's cash on delivery: collected, remitted, outstanding",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["logistics"],
)
def cod_balance(state: State, carrier: FromPath[str]) -> CodBalanceReply:
    runtime = runtime_of(state)
    code = _gateway(runtime, carrier).code
    return CodBalanceReply.of(runtime.ot.logistics.cod_balance(code))


ROUTES = [
    create_shipment,
    get_shipment,
    cancel_shipment,
    carrier_callback,
    record_remittance,
    cod_balance,
]
