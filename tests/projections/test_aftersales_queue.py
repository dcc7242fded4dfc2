"""The after-sales queue lists open cases oldest first with their next step, and is the
same built incrementally as rebuilt."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import ApproveCase, CloseCase, RejectCase
from ordertrail.application.system import Ordertrail
from ordertrail.domain.aftersales import CaseKind, CaseReason
from ordertrail.domain.errors import DomainError
from ordertrail.projections.aftersales_queue import AfterSalesQueue, AfterSalesQueueQueries
from ordertrail.projections.runner import ProjectionWorker
from tests.application.test_aftersales import delivered_order, open_case
from tests.projections.dashboard_support import empty_read_store
from tests.projections.support import opened, table_rows
from tests.support.builders import staff, stocked_product
from tests.support.clock import FakeClock
from tests.support.fulfilment import deliver, ready_order, ship


def test_open_cases_oldest_first_with_their_next_step(
    ot: Ordertrail, clock: FakeClock, store_settings: Settings
) -> None:
    order = delivered_order(ot, clock, quantity=3)
    first = open_case(ot, order, 1)
    clock.advance(timedelta(hours=5))
    second = open_case(ot, order, 1, CaseKind.REFUND_ONLY, CaseReason.MISSING_ITEM)
    third = open_case(ot, order, 1)
    ot.aftersales.approve(ApproveCase(second.case_id), staff())
    ot.aftersales.reject(RejectCase(third.case_id, "no proof"), staff())
    ot.aftersales.close_case(CloseCase(third.case_id, "rejected"), staff())
    with opened(store_settings) as store:
        worker = ProjectionWorker(AfterSalesQueue(), store, {"AfterSales": ot.aftersales})
        worker.setup()
        worker.run_until_idle()
        queue = AfterSalesQueueQueries(store).open_cases(now=clock.now)
        assert [(q.case_id, q.status, q.next_step) for q in queue] == [
            (str(first.case_id), "requested", "approve or reject"),
            (str(second.case_id), "approved", "wait for the return, or refund / replace"),
        ]
        assert queue[0].age_hours >= 5
        only = AfterSalesQueueQueries(store).open_cases(now=clock.now, kind="refund_only")
        assert [q.case_id for q in only] == [str(second.case_id)]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.sampled_from(["open", "approve", "reject", "close", "run"]), min_size=1, max_size=10
    )
)
def test_incremental_equals_rebuilt(
    ot: Ordertrail, clock: FakeClock, store_settings: Settings, steps: list[str]
) -> None:
    sku = f"SKU-{uuid4().hex[:8]}"
    stocked_product(ot, sku, 1000, 10)
    placed = ready_order(ot, (sku, 10))
    deliver(ot, ship(ot, placed.order_id, (1, 10)), clock.now)
    order = ot.orders.order(placed.order_id)
    cases = []
    with empty_read_store(store_settings) as live:
        worker = ProjectionWorker(
            AfterSalesQueue(), live, {"AfterSales": ot.aftersales}, batch_size=1
        )
        worker.setup()
        for step in steps:
            try:
                if step == "open":
                    cases.append(open_case(ot, order, 1).case_id)
                elif step == "run":
                    worker.run_once()
                elif cases:
                    case_id = cases[len(steps) % len(cases)]
                    if step == "approve":
                        ot.aftersales.approve(ApproveCase(case_id), staff())
                    elif step == "reject":
                        ot.aftersales.reject(RejectCase(case_id, "no"), staff())
                    else:
                        ot.aftersales.close_case(CloseCase(case_id, "done"), staff())
            except DomainError:
                pass
        worker.run_until_idle()
        with empty_read_store(store_settings) as rebuilt:
            fresh = ProjectionWorker(AfterSalesQueue(), rebuilt, {"AfterSales": ot.aftersales})
            fresh.setup()
            fresh.run_until_idle()
            assert table_rows(live, ["aftersales_queue"]) == table_rows(
                rebuilt, ["aftersales_queue"]
            )
