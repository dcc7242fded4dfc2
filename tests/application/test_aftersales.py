"""After-sales: cases within the window and within what was delivered; inspection
restocks accepted units exactly once and refunds them; refunds across all cases never
exceed what was captured; exchanges get a replacement parcel."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ordertrail.application.aftersales import (
    ApproveCase,
    CloseCase,
    InspectReturn,
    LinkArticle,
    ReceiveReturn,
    RejectCase,
)
from ordertrail.application.aftersales_flows import CaseLineRequest, IssueRefund, RequestCase
from ordertrail.application.knowledge import DraftArticle
from ordertrail.application.logistics import ShipmentSnapshot
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Order, OrderStatus
from ordertrail.domain.aftersales import CaseKind, CaseReason, CaseStatus, LineInspection
from ordertrail.domain.errors import (
    AfterSalesWindowClosed,
    InvalidCaseTransition,
    RefundExceedsCaptured,
    RefundExceedsCase,
    ReturnExceedsDelivered,
)
from ordertrail.domain.shipments import Milestone, ShipmentStatus
from tests.support.builders import cny, customer, heads, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import deliver, notify, ready_order, scan, ship


def delivered_order(ot: Ordertrail, clock: FakeClock, quantity: int = 3) -> Order:
    placed = ready_order(ot, ("TEA-1", quantity))
    deliver(ot, ship(ot, placed.order_id, (1, quantity)), clock.now)
    order = ot.orders.order(placed.order_id)
    assert order.status is OrderStatus.DELIVERED
    return order


def open_case(
    ot: Ordertrail,
    order: Order,
    quantity: int,
    kind: CaseKind = CaseKind.RETURN,
    reason: CaseReason = CaseReason.QUALITY_PROBLEM,
):
    return ot.returns.request_case(
        RequestCase(
            order.id,
            kind,
            reason,
            (CaseLineRequest(1, quantity),),
            ("https://img.example.com/dent.jpg",),
            "the tin is dented",
        ),
        customer(),
    ).value


def test_a_return_is_inspected_restocked_once_and_refunded(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock)
    case = open_case(ot, order, 2)
    assert case.status is CaseStatus.REQUESTED
    ot.aftersales.approve(ApproveCase(case.case_id, "send it back"), staff())
    ot.aftersales.receive_return(ReceiveReturn(case.case_id, clock.now, "SF1"), staff())
    ot.aftersales.inspect(
        InspectReturn(
            case.case_id, (LineInspection(1, accepted=1, rejected=1, note="one is fine"),)
        ),
        staff(),
    )
    on_hand_before = ot.inventory.stock_level("TEA-1").on_hand
    ot.run_processes()
    assert ot.inventory.stock_level("TEA-1").on_hand == on_hand_before + 1
    settled = ot.aftersales.case(case.case_id)
    assert settled.refunded == cny(1000)
    assert ot.orders.order(order.id).refunded == cny(1000)
    before = heads(ot)
    assert ot.run_processes() == 0  # nothing twice
    assert heads(ot) == before
    ot.aftersales.close_case(CloseCase(case.case_id, "refunded one tin"), staff())


def test_nothing_comes_back_beyond_what_was_delivered_and_not_already_returned(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock, quantity=3)
    open_case(ot, order, 2)
    before = heads(ot)
    with pytest.raises(ReturnExceedsDelivered) as refused:
        open_case(ot, order, 2)
    assert refused.value.details["available"] == 1
    assert heads(ot) == before
    open_case(ot, order, 1)


def test_a_rejected_case_frees_its_units_for_another_case(ot: Ordertrail, clock: FakeClock) -> None:
    order = delivered_order(ot, clock, quantity=2)
    first = open_case(ot, order, 2)
    ot.aftersales.reject(RejectCase(first.case_id, "no damage visible"), staff())
    open_case(ot, order, 2)


def test_cases_are_refused_after_the_window_or_before_delivery(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock)
    assert order.last_delivered_at is not None
    clock.now = order.last_delivered_at + ot.config.after_sales_window + timedelta(minutes=1)
    with pytest.raises(AfterSalesWindowClosed):
        open_case(ot, order, 1)
    undelivered = ready_order(ot, ("CUP-1", 1))
    with pytest.raises(ReturnExceedsDelivered):
        open_case(ot, ot.orders.order(undelivered.order_id), 1)


def test_refunds_across_cases_never_exceed_what_was_captured(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock, quantity=3)  # 3000 captured
    missing = open_case(ot, order, 2, CaseKind.REFUND_ONLY, CaseReason.MISSING_ITEM)
    ot.aftersales.approve(ApproveCase(missing.case_id), staff())
    ot.run_processes()  # refunds the approved refund-only case: 2000
    assert ot.orders.order(order.id).refunded == cny(2000)
    other = open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.NOT_AS_DESCRIBED)
    ot.aftersales.approve(ApproveCase(other.case_id), staff())
    ot.run_processes()
    assert ot.orders.order(order.id).refunded == cny(3000)
    with pytest.raises((RefundExceedsCase, RefundExceedsCaptured)):
        ot.returns.issue_refund(IssueRefund(other.case_id, cny(1)), staff())
    assert ot.orders.order(order.id).refunded == cny(3000)


def test_a_manual_partial_refund_counts_against_the_case(ot: Ordertrail, clock: FakeClock) -> None:
    order = delivered_order(ot, clock, quantity=1)
    case = open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.NOT_AS_DESCRIBED)
    before = heads(ot)
    with pytest.raises(InvalidCaseTransition):  # not approved yet
        ot.returns.issue_refund(IssueRefund(case.case_id, cny(300)), staff())
    assert heads(ot) == before
    ot.aftersales.approve(ApproveCase(case.case_id), staff())
    ctx = staff()
    ot.returns.issue_refund(IssueRefund(case.case_id, cny(300)), ctx)
    ot.returns.issue_refund(IssueRefund(case.case_id, cny(300)), ctx)  # a retry
    assert ot.aftersales.case(case.case_id).refunded == cny(300)
    ot.run_processes()  # the automatic refund gives the rest, not the whole value again
    assert ot.aftersales.case(case.case_id).refunded == cny(1000)
    assert ot.orders.order(order.id).refunded == cny(1000)


def test_an_approved_exchange_gets_a_replacement_parcel_from_held_stock(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock, quantity=2)
    case = open_case(ot, order, 1, CaseKind.EXCHANGE, CaseReason.WRONG_ITEM)
    available = ot.inventory.stock_level("TEA-1").available
    ot.aftersales.approve(ApproveCase(case.case_id), staff())
    ot.run_processes()
    exchanged = ot.aftersales.case(case.case_id)
    assert exchanged.replacement_shipment_id is not None
    assert ot.inventory.stock_level("TEA-1").available == available - 1
    replacement = ot.logistics.shipment(exchanged.replacement_shipment_id)
    assert replacement.holder_id == case.case_id
    notify(ot, ShipmentSnapshot.of(replacement), scan(Milestone.PICKED_UP, clock.now))
    ot.run_processes()
    level = ot.inventory.stock_level("TEA-1")
    assert level.reserved == 0
    assert ot.logistics.shipment(replacement.id).status is ShipmentStatus.PICKED_UP
    assert ot.orders.order(order.id).status is OrderStatus.DELIVERED  # the order is untouched
    ot.run_processes()
    assert ot.aftersales.case(case.case_id).replacement_shipment_id == replacement.id


def test_a_replacement_hold_is_not_reaped_as_an_abandoned_placement(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock, quantity=2)
    case = open_case(ot, order, 1, CaseKind.EXCHANGE, CaseReason.WRONG_ITEM)
    ot.aftersales.approve(ApproveCase(case.case_id), staff())
    ot.run_processes()
    held = ot.inventory.stock_level("TEA-1").reserved
    assert held == 1
    clock.advance(ot.config.placement_grace + timedelta(minutes=5))  # parcel not picked up
    ot.run_processes()
    assert ot.inventory.stock_level("TEA-1").reserved == held
    assert ot.orders.find(case.case_id) is None  # no AbandonedPlacement under the case id


def test_staff_record_which_article_resolved_a_case(ot: Ordertrail, clock: FakeClock) -> None:
    order = delivered_order(ot, clock, quantity=1)
    case = open_case(ot, order, 1)
    article = ot.knowledge.draft_article(
        DraftArticle(
            "Dented tins",
            "Offer a refund for the dented tin.",
            ("tins",),
            "tea",
            (CaseReason.QUALITY_PROBLEM,),
        ),
        staff(),
    ).value
    ot.aftersales.link_article(LinkArticle(case.case_id, article.article_id), staff())
    assert ot.aftersales.case(case.case_id).articles == (article.article_id,)


def test_a_case_refunded_but_not_yet_recorded_is_not_refunded_again(
    ot: Ordertrail, clock: FakeClock
) -> None:
    """The order keeps each case's refunds within the case's limit, so a refund whose
    record on the case was lost (the process died) cannot be paid a second time."""
    order = delivered_order(ot, clock, quantity=2)  # 2000 captured
    case = open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.MISSING_ITEM)  # 1000
    ot.aftersales.approve(ApproveCase(case.case_id), staff())
    recorded = ot.returns.record_case_refunds

    def dies(*args: object, **kwargs: object) -> None:
        raise SystemExit("the process died before recording on the case")

    ot.returns.record_case_refunds = dies  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        ot.returns.issue_refund(IssueRefund(case.case_id, cny(1000)), staff())
    ot.returns.record_case_refunds = recorded  # type: ignore[method-assign]
    assert ot.aftersales.case(case.case_id).refunded == cny(0)  # not recorded yet
    with pytest.raises(RefundExceedsCase):
        ot.returns.issue_refund(IssueRefund(case.case_id, cny(1000)), staff())
    ot.run_processes()  # the recorder copies the order's refund onto the case
    assert ot.aftersales.case(case.case_id).refunded == cny(1000)
    assert ot.orders.order(order.id).refunded == cny(1000)


def test_an_approved_refund_closed_before_it_is_paid_is_paid_once(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = delivered_order(ot, clock, quantity=1)
    first = open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.MISSING_ITEM)
    ot.aftersales.approve(ApproveCase(first.case_id), staff())
    ot.aftersales.close_case(CloseCase(first.case_id, "refund on its way"), staff())
    ot.run_processes()
    assert ot.aftersales.case(first.case_id).refunded == cny(1000)
    with pytest.raises(ReturnExceedsDelivered):  # the unit stays claimed by the first case
        open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.MISSING_ITEM)
    assert ot.orders.order(order.id).refunded == cny(1000)
