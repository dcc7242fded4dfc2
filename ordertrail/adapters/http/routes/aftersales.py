"""After-sales cases: a customer (or staff) opens a return, exchange or refund-only case
about delivered goods; staff approve or reject it, receive and inspect the goods, refund,
send an exchange's replacement, link the article that solved it, and close it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from msgspec import Meta

from ordertrail.adapters.http.auth import customers_and_staff, principal_of, staff_only
from ordertrail.adapters.http.routes.common import (
    accepted,
    context,
    etag,
    example,
    if_match,
    runtime_of,
    visible_to,
)
from ordertrail.adapters.http.routes.orders import owned_order
from ordertrail.adapters.http.schemas import Body, MoneyBody, MoneyReply, Quantity, Reply
from ordertrail.application.aftersales import (
    ApproveCase,
    CloseCase,
    InspectReturn,
    LinkArticle,
    ReceiveReturn,
    RejectCase,
)
from ordertrail.application.aftersales_flows import CaseLineRequest, IssueRefund, RequestCase
from ordertrail.application.errors import VersionMismatch
from ordertrail.application.receipts import Accepted
from ordertrail.domain.aftersales import (
    MAX_CASE_LINES,
    MAX_PHOTOS,
    AfterSalesCase,
    CaseKind,
    CaseReason,
    CaseStatus,
    LineInspection,
)
from ordertrail.domain.errors import InvalidCaseTransition

LineNo = Annotated[int, Meta(ge=1, le=10_000, examples=[1])]
Units = Annotated[int, Meta(ge=0, le=10_000, examples=[1])]
Text500 = Annotated[str, Meta(min_length=1, max_length=500)]
Note = Annotated[str, Meta(max_length=500)]
PhotoUrl = Annotated[str, Meta(max_length=2000, examples=["https://img.example.com/c/1.jpg"])]

CASE_EXAMPLE = {
    "kind": "return",
    "reason": "quality_problem",
    "lines": [{"line_no": 1, "quantity": 1}],
    "photo_urls": ["https://img.example.com/cases/cracked-lid.jpg"],
    "description": "The tin arrived with a cracked lid.",
}
INSPECTION_EXAMPLE = {
    "results": [{"line_no": 1, "accepted": 1, "rejected": 0, "note": "lid cracked in transit"}]
}
#: Where an exchange may get its replacement parcel.
REPLACEABLE = (CaseStatus.APPROVED, CaseStatus.RETURN_RECEIVED, CaseStatus.INSPECTED)


class CaseLineBody(Body):
    line_no: LineNo
    quantity: Quantity


class OpenCaseBody(Body):
    kind: CaseKind
    reason: CaseReason
    lines: Annotated[list[CaseLineBody], Meta(min_length=1, max_length=MAX_CASE_LINES)]
    photo_urls: Annotated[list[PhotoUrl], Meta(max_length=MAX_PHOTOS)] = []
    description: Annotated[str, Meta(max_length=2000)] = ""


class ApproveBody(Body):
    note: Note = ""


class RejectBody(Body):
    reason: Text500


class ReceiveBody(Body):
    """The returned goods arrived back at the warehouse."""

    received_at: Annotated[datetime, Meta(tz=True)]
    tracking_number: Annotated[str, Meta(max_length=64)] = ""


class InspectionBody(Body):
    line_no: LineNo
    accepted: Units
    rejected: Units
    note: Note = ""


class InspectBody(Body):
    """Every line of the case, once: accepted + rejected = the units the case is about."""

    results: Annotated[list[InspectionBody], Meta(min_length=1, max_length=MAX_CASE_LINES)]


class RefundBody(Body):
    amount: MoneyBody


class LinkArticleBody(Body):
    article_id: UUID


class CloseBody(Body):
    resolution: Text500


class CaseLineReply(Reply):
    line_no: int
    sku: str
    quantity: int
    unit_price: MoneyReply


class InspectionReply(Reply):
    line_no: int
    accepted: int
    rejected: int
    note: str


class CaseReply(Reply):
    case_id: UUID
    order_id: UUID
    customer_id: str
    kind: str
    reason: str
    status: str
    lines: list[CaseLineReply]
    photo_urls: list[str]
    description: str
    inspections: list[InspectionReply]
    value: MoneyReply
    refunded: MoneyReply
    refundable: MoneyReply
    replacement_shipment_id: UUID | None
    articles: list[UUID]
    version: int

    @classmethod
    def of(cls, case: AfterSalesCase) -> CaseReply:
        return cls(
            case_id=case.id,
            order_id=case.order_id,
            customer_id=case.customer_id,
            kind=case.kind.value,
            reason=case.reason.value,
            status=case.status.value,
            lines=[
                CaseLineReply(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=MoneyReply.of(line.unit_price),
                )
                for line in case.lines
            ],
            photo_urls=list(case.photo_urls),
            description=case.description,
            inspections=[
                InspectionReply(
                    line_no=r.line_no, accepted=r.accepted, rejected=r.rejected, note=r.note
                )
                for r in case.inspections
            ],
            value=MoneyReply.of(case.value),
            refunded=MoneyReply.of(case.refunded),
            refundable=MoneyReply.of(case.refundable),
            replacement_shipment_id=case.replacement_shipment_id,
            articles=list(case.articles),
            version=case.version,
        )


def _case(state: State, case_id: UUID) -> AfterSalesCase:
    return runtime_of(state).ot.aftersales.case(case_id)


def _case_response(state: State, result: Accepted[Any], case_id: UUID) -> Response[CaseReply]:
    case = _case(state, case_id)
    return accepted(result, CaseReply.of(case), version=case.version)


def _check_version(request: Request[Any, Any, Any], case: AfterSalesCase) -> None:
    """If-Match for the flows whose command is not saved on the case itself."""
    expected = if_match(request)
    if expected is not None and expected != case.version:
        raise VersionMismatch(
            f"it is at version {case.version}, not {expected}: reload it and try again",
            expected=expected,
            actual=case.version,
        )


@post(
    "/orders/{order_id:uuid}/cases",
    summary="Open an after-sales case about delivered units of an order",
    description="By the order's customer (or staff), within the after-sales window.",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=201,
)
def open_case(
    state: State,
    request: Request[Any, Any, Any],
    order_id: FromPath[UUID],
    data: Annotated[OpenCaseBody, example(CASE_EXAMPLE)],
) -> Response[CaseReply]:
    owned_order(state, request, order_id)
    result = runtime_of(state).ot.returns.request_case(
        RequestCase(
            order_id=order_id,
            kind=data.kind,
            reason=data.reason,
            lines=tuple(CaseLineRequest(line.line_no, line.quantity) for line in data.lines),
            photo_urls=tuple(data.photo_urls),
            description=data.description,
        ),
        context(request),
    )
    case = _case(state, result.value.case_id)
    return accepted(
        result,
        CaseReply.of(case),
        status=201,
        version=case.version,
        location=f"/cases/{case.id}",
    )


@get(
    "/cases/{case_id:uuid}",
    summary="One after-sales case, from its events (with its ETag)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["after-sales"],
)
def get_case(
    state: State, request: Request[Any, Any, Any], case_id: FromPath[UUID]
) -> Response[CaseReply]:
    case = _case(state, case_id)
    visible_to(principal_of(request), case.customer_id, "case")
    return Response(CaseReply.of(case), headers={"ETag": etag(case.version)})


@post(
    "/cases/{case_id:uuid}/approve",
    summary="Approve a requested case (If-Match)",
    description="A refund-only case is then refunded and an exchange's replacement sent by "
    "the case-settlement process.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def approve_case(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[ApproveBody | None, example({"note": "photos show the damage"})] = None,
) -> Response[CaseReply]:
    note = "" if data is None else data.note
    result = runtime_of(state).ot.aftersales.approve(
        ApproveCase(case_id, note), context(request, versioned=True)
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/reject",
    summary="Reject a requested case (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def reject_case(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[RejectBody, example({"reason": "outside the return policy"})],
) -> Response[CaseReply]:
    result = runtime_of(state).ot.aftersales.reject(
        RejectCase(case_id, data.reason), context(request, versioned=True)
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/receive",
    summary="Record the returned goods as received (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def receive_return(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[
        ReceiveBody,
        example({"received_at": "2026-11-16T09:30:00+08:00", "tracking_number": "SF1234567890"}),
    ],
) -> Response[CaseReply]:
    result = runtime_of(state).ot.aftersales.receive_return(
        ReceiveReturn(case_id, data.received_at, data.tracking_number),
        context(request, versioned=True),
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/inspect",
    summary="Inspect the returned goods, line by line (If-Match)",
    description="Accepted units are restocked and, for a return, refunded by the "
    "case-settlement process; rejected units may be asked back again.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def inspect_return(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[InspectBody, example(INSPECTION_EXAMPLE)],
) -> Response[CaseReply]:
    results = tuple(LineInspection(r.line_no, r.accepted, r.rejected, r.note) for r in data.results)
    result = runtime_of(state).ot.aftersales.inspect(
        InspectReturn(case_id, results), context(request, versioned=True)
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/refund",
    summary="Refund (part of) a case to the order's payments (If-Match)",
    description="Within what the case may refund and what the order captured.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def refund_case(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[RefundBody, example({"amount": {"amount": 3400, "currency": "CNY"}})],
) -> Response[CaseReply]:
    _check_version(request, _case(state, case_id))
    result = runtime_of(state).ot.returns.issue_refund(
        IssueRefund(case_id, data.amount.to_money()), context(request)
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/replacement",
    summary="Send an approved exchange's replacement now (If-Match)",
    description="Holds the stock and books the replacement parcel, once per case.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def arrange_replacement(
    state: State, request: Request[Any, Any, Any], case_id: FromPath[UUID]
) -> Response[CaseReply]:
    runtime = runtime_of(state)
    case = _case(state, case_id)
    _check_version(request, case)
    # Checked before any stock is held or parcel booked for the case.
    if case.kind is not CaseKind.EXCHANGE:
        raise InvalidCaseTransition("only an exchange gets a replacement", kind=case.kind.value)
    if case.replacement_shipment_id is None and case.status not in REPLACEABLE:
        raise InvalidCaseTransition(
            f"a {case.status.value} case gets no replacement", status=case.status.value
        )
    ctx = context(request)
    snapshot = runtime.ot.returns.arrange_replacement(case_id, ctx.meta)
    ot = runtime.ot
    written = {app.name: app.head() for app in (ot.aftersales, ot.inventory, ot.logistics)}
    return _case_response(state, Accepted(snapshot, written), case_id)


@post(
    "/cases/{case_id:uuid}/articles",
    summary="Link the knowledge-base article that resolved the case (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def link_article(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[
        LinkArticleBody, example({"article_id": "7b0c9f1e-3d5a-5e2b-9c4f-1a2b3c4d5e6f"})
    ],
) -> Response[CaseReply]:
    runtime = runtime_of(state)
    runtime.ot.knowledge.article(data.article_id)  # 404 for an article that does not exist
    result = runtime.ot.aftersales.link_article(
        LinkArticle(case_id, data.article_id), context(request, versioned=True)
    )
    return _case_response(state, result, case_id)


@post(
    "/cases/{case_id:uuid}/close",
    summary="Close a case with its resolution (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["after-sales"],
    status_code=200,
)
def close_case(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    data: Annotated[CloseBody, example({"resolution": "refunded the damaged tin"})],
) -> Response[CaseReply]:
    result = runtime_of(state).ot.aftersales.close_case(
        CloseCase(case_id, data.resolution), context(request, versioned=True)
    )
    return _case_response(state, result, case_id)


ROUTES = [
    open_case,
    get_case,
    approve_case,
    reject_case,
    receive_return,
    inspect_return,
    refund_case,
    arrange_replacement,
    link_article,
    close_case,
]
