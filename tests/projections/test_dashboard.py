"""The merchant dashboard: figures per UTC hour and per UTC day over two days of a shop's
life driven through the real Ordertrail (paid vs unpaid moving as payments arrive,
cancellations and expiries where they happened, split payment plans, top SKUs, refunds
and their rates, several currencies), the snapshots (open cases by age, parcels past the
SLA, low stock), and an incremental build that equals a rebuild, on SQLite and
PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Money, PaymentMethod
from ordertrail.domain.aftersales import CaseKind
from ordertrail.domain.errors import DomainError
from ordertrail.domain.shipments import Milestone
from ordertrail.projections.dashboard import (
    Bucket,
    CaseAges,
    DashboardQueries,
    DashboardView,
    MerchantDashboard,
    MethodShare,
    SkuSales,
    periods,
)
from ordertrail.projections.inventory_levels import InventoryLevelsQueries, Level
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.dashboard_support import (
    DASHBOARD_TABLES,
    Shop,
    at,
    empty_read_store,
    expected_buckets,
    expected_case_ages,
    expected_late_parcels,
    shop_of,
)
from tests.projections.support import GatedSource, empty_store_like, table_rows
from tests.support.builders import cny
from tests.support.clock import FakeClock

ALIPAY = PaymentMethod.ALIPAY
WECHAT = PaymentMethod.WECHAT_PAY
CARD = PaymentMethod.CARD
COD = PaymentMethod.CASH_ON_DELIVERY


@pytest.fixture
def shop(ot: Ordertrail, clock: FakeClock, store_settings: Settings) -> Iterator[Shop]:
    with shop_of(ot, clock, store_settings) as harness:
        yield harness


def bucket(view: DashboardView | tuple[Bucket, ...], period: str, currency: str = "CNY") -> Bucket:
    buckets = view.buckets if isinstance(view, DashboardView) else view
    (found,) = [b for b in buckets if b.period == period and b.currency == currency]
    return found


def two_days(shop: Shop) -> dict[str, UUID]:
    """Two days of a tea shop (times UTC). Returns the orders and cases by name."""
    shop.clock.now = at(1, 8)
    shop.product("TEA-1", cny(6800), 40)
    shop.product("CUP-1", cny(1200), 10)
    shop.product("POT-1", cny(25000), 3)
    # Day 1. A: paid at once. B: split over WeChat and card, paid when the second lands.
    a = shop.place([("TEA-1", 2), ("CUP-1", 1)], [(ALIPAY, cny(14800))], at(1, 9, 10))
    shop.capture(a, 0, cny(14800), at(1, 9, 15))
    b = shop.place([("TEA-1", 1)], [(WECHAT, cny(3000)), (CARD, cny(3800))], at(1, 9, 40))
    shop.capture(b, 0, cny(3000), at(1, 9, 45))
    shop.run()
    early = bucket(shop.queries.buckets("hour", at(1, 9), at(1, 10)), "2026-11-11T09")
    assert (early.orders_placed, early.paid, early.unpaid) == (2, 1, 1)
    shop.capture(b, 1, cny(3800), at(1, 10, 5))
    # C: cash on delivery, confirmed. D: never paid, expires. E: part online, part COD,
    # confirmed, then cancelled and its online part refunded.
    c = shop.place([("POT-1", 1)], [(COD, cny(25000))], at(1, 10, 20))
    shop.confirm_cod(c, at(1, 10, 30))
    shop.place([("CUP-1", 2)], [(ALIPAY, cny(2400))], at(1, 10, 50))
    shop.when(at(1, 11, 25))
    shop.ot.run_processes()  # D is past its 30-minute payment window
    e = shop.place([("TEA-1", 3)], [(ALIPAY, cny(10000)), (COD, cny(10400))], at(1, 11, 30))
    shop.capture(e, 0, cny(10000), at(1, 11, 35))
    shop.confirm_cod(e, at(1, 11, 40))
    shop.cancel(e, at(1, 12, 10))
    shop.refund(e, 0, cny(10000), at(1, 12, 15))
    # A ships and leaves; C's parcel is planned and never picked up.
    parcel_a = shop.ship(a, (1, 2), (2, 1), moment=at(1, 13))
    parcel_c = shop.ship(c, (1, 1), moment=at(1, 13, 30))
    shop.carrier(parcel_a, Milestone.PICKED_UP, at(1, 14))
    # F: placed just before midnight with shipping and a discount, paid after midnight.
    f = shop.place(
        [("CUP-1", 1), ("TEA-1", 1)],
        [(CARD, cny(8500))],
        at(1, 23, 50),
        shipping=cny(1000),
        discount=cny(500),
    )
    shop.capture(f, 0, cny(8500), at(2, 0, 10))
    # Day 2. A is delivered; a refund-only case on it is refunded by the process
    # managers; a return case stays open. G paid; H cancelled before payment.
    shop.carrier(parcel_a, Milestone.DELIVERED, at(2, 8))
    refund_case = shop.open_case(a, 1, 1, CaseKind.REFUND_ONLY, at(2, 9))
    shop.approve(refund_case, at(2, 9, 5))
    return_case = shop.open_case(a, 2, 1, CaseKind.RETURN, at(2, 10))
    g = shop.place([("TEA-1", 2)], [(ALIPAY, cny(13600))], at(2, 11))
    shop.capture(g, 0, cny(13600), at(2, 11, 5))
    h = shop.place([("POT-1", 1)], [(ALIPAY, cny(25000))], at(2, 11, 10))
    shop.cancel(h, at(2, 11, 15))
    shop.run()
    return {
        "parcel_a": parcel_a,
        "parcel_c": parcel_c,
        "order_c": c.order_id,
        "refund_case": refund_case,
        "return_case": return_case,
    }


def test_daily_figures_of_two_days(shop: Shop) -> None:
    two_days(shop)
    view = shop.queries.summary("day", at(1, 0), at(3, 0), now=at(2, 15))
    assert [(b.period, b.currency) for b in view.buckets] == [
        ("2026-11-11", "CNY"),
        ("2026-11-12", "CNY"),
    ]
    assert (view.start, view.end) == (at(1, 0), at(3, 0))
    day1, day2 = view.buckets
    # Placed on day 1: A 14800, B 6800, C 25000, D 2400, E 20400, F 8000 + 1000 - 500.
    assert day1.orders_placed == 6
    assert day1.gmv == cny(77900)
    assert day1.average_order_value == cny(12983)  # 12983.33
    assert (day1.paid, day1.cod_confirmed, day1.unpaid) == (5, 2, 1)  # F paid on day 2
    assert (day1.cancelled, day1.expired) == (1, 1)  # E, D
    assert day1.payment_methods == (
        MethodShare(ALIPAY, 3, 3, cny(27200)),
        MethodShare(WECHAT, 1, 1, cny(3000)),
        MethodShare(CARD, 2, 2, cny(12300)),
        MethodShare(COD, 2, 2, cny(35400)),
    )
    assert day1.top_skus_by_units == (
        SkuSales("TEA-1", 7, cny(47600)),
        SkuSales("CUP-1", 4, cny(4800)),
        SkuSales("POT-1", 1, cny(25000)),
    )
    assert [s.sku for s in day1.top_skus_by_revenue] == ["TEA-1", "POT-1", "CUP-1"]
    assert day1.captured == cny(14800 + 3000 + 3800 + 10000)
    assert (day1.refunded, day1.refunds) == (cny(10000), 1)  # E's online part
    assert day1.refund_rate == 10000 / 31600
    # A (refunded on day 2 by its case) and E have a refund: 2 of the 6 placed on day 1.
    assert (day1.orders_refunded, day1.refunded_order_rate) == (2, 2 / 6)
    # Day 2: G 13600 paid, H 25000 cancelled unpaid; F's 8500 and G's capture.
    assert (day2.orders_placed, day2.gmv, day2.average_order_value) == (2, cny(38600), cny(19300))
    assert (day2.paid, day2.unpaid, day2.cancelled, day2.expired) == (1, 1, 1, 0)
    assert day2.payment_methods == (MethodShare(ALIPAY, 2, 2, cny(38600)),)
    assert [s.sku for s in day2.top_skus_by_units] == ["TEA-1", "POT-1"]
    assert [s.sku for s in day2.top_skus_by_revenue] == ["POT-1", "TEA-1"]
    assert (day2.captured, day2.refunded) == (cny(22100), cny(6800))
    assert day2.refund_rate == 6800 / 22100
    assert (day2.orders_refunded, day2.refunded_order_rate) == (0, 0.0)
    assert view.buckets == expected_buckets(shop.ot, "day", at(1, 0), at(3, 0))


def test_hourly_figures_and_empty_hours(shop: Shop) -> None:
    two_days(shop)
    view = shop.queries.summary("hour", at(1, 0), at(3, 0), now=at(2, 15))
    assert len(view.buckets) == 48
    nine = bucket(view, "2026-11-11T09")
    assert (nine.orders_placed, nine.gmv, nine.paid, nine.unpaid) == (2, cny(21600), 2, 0)
    assert nine.captured == cny(17800)  # B's card part came at 10:05
    assert nine.payment_methods == (
        MethodShare(ALIPAY, 1, 1, cny(14800)),
        MethodShare(WECHAT, 1, 1, cny(3000)),
        MethodShare(CARD, 1, 1, cny(3800)),
    )
    ten = bucket(view, "2026-11-11T10")
    assert (ten.orders_placed, ten.paid, ten.cod_confirmed, ten.unpaid) == (2, 1, 1, 1)
    assert (ten.captured, ten.expired) == (cny(3800), 0)
    eleven = bucket(view, "2026-11-11T11")
    assert (eleven.orders_placed, eleven.expired, eleven.cancelled) == (1, 1, 0)  # D at 11:25
    noon = bucket(view, "2026-11-11T12")
    assert (noon.orders_placed, noon.cancelled, noon.refunded) == (0, 1, cny(10000))
    assert (noon.refund_rate, noon.average_order_value, noon.refunded_order_rate) == (
        None,
        None,
        None,
    )
    late = bucket(view, "2026-11-11T23")
    assert (late.orders_placed, late.gmv, late.paid, late.captured) == (1, cny(8500), 1, cny(0))
    assert bucket(view, "2026-11-12T00").captured == cny(8500)
    refund_hour = bucket(view, "2026-11-12T09")
    assert (refund_hour.refunded, refund_hour.refunds, refund_hour.captured) == (
        cny(6800),
        1,
        cny(0),
    )
    quiet = bucket(view, "2026-11-11T03")
    assert quiet == Bucket(
        "2026-11-11T03", at(1, 3), at(1, 4), "CNY", 0, cny(0), None, 0, 0, 0,
        (), (), (), 0, None, 0, 0, cny(0), cny(0), 0, None,
    )  # fmt: skip
    assert view.buckets == expected_buckets(shop.ot, "hour", at(1, 0), at(3, 0))
    # Hours sum up to days.
    by_day = shop.queries.buckets("day", at(1, 0), at(3, 0))
    for day in by_day:
        hours = [b for b in view.buckets if b.period.startswith(day.period)]
        assert sum(h.orders_placed for h in hours) == day.orders_placed
        assert sum(h.gmv.amount for h in hours) == day.gmv.amount
        assert sum(h.refunded.amount for h in hours) == day.refunded.amount
    # A window that starts mid-hour covers that whole hour; top=1 keeps one SKU.
    part = shop.queries.buckets("hour", at(1, 9, 30), at(1, 11), top=1)
    assert [b.period for b in part] == ["2026-11-11T09", "2026-11-11T10"]
    assert part[0].top_skus_by_units == (SkuSales("TEA-1", 3, cny(20400)),)
    assert part[0].top_skus_by_revenue == (SkuSales("TEA-1", 3, cny(20400)),)


def test_snapshots_open_cases_late_parcels_and_low_stock(shop: Shop) -> None:
    made = two_days(shop)
    q = shop.queries
    view = q.summary("day", at(2, 0), at(2, 1), now=at(2, 15), low_stock_threshold=2)
    # Both cases were requested this morning (09:00, 10:00) and are open.
    assert view.open_cases == CaseAges(2, 0, 0, 0)
    # C's parcel was planned at 13:30 yesterday and is still waiting for pickup; A's left.
    assert view.parcels_past_sla == 1
    (late,) = view.late_parcels
    assert (late.shipment_id, late.order_id, late.units) == (made["parcel_c"], made["order_c"], 1)
    assert (late.planned_at.replace(microsecond=0), late.waiting > timedelta(hours=25)) == (
        at(1, 13, 30),
        True,
    )
    assert q.parcels_past_sla(at(2, 15), sla=timedelta(hours=26)) == (0, ())
    assert q.parcels_past_sla(at(1, 20))[0] == 0  # not late yet then
    # At 13:45 yesterday with a 10-minute SLA, A's parcel (planned 13:00) was waiting too.
    count, _ = q.parcels_past_sla(at(1, 13, 45), sla=timedelta(minutes=10))
    assert count == 2
    for now in (at(1, 13, 45), at(2, 15), at(4, 0)):
        for sla in (timedelta(minutes=10), timedelta(hours=24)):
            listed = q.parcels_past_sla(now, sla, limit=10)[1]
            assert [p.shipment_id for p in listed] == expected_late_parcels(shop.ot, now, sla)
    # POT-1: 3 on hand, 1 held for C's parcel; H's unit was released when it was cancelled.
    assert view.low_stock_threshold == 2
    assert view.low_stock == (Level("POT-1", "main", 3, 1, 2),)
    assert (
        q.summary("day", at(2, 0), at(2, 1), now=at(2, 15), low_stock_threshold=None).low_stock
        == ()
    )
    # Ages move with ``now``; a closed case leaves the snapshot from when it was closed.
    shop.close(made["refund_case"], at(2, 16))
    shop.run()
    assert q.open_cases(at(2, 15)) == CaseAges(2, 0, 0, 0)  # as it was at 15:00
    assert q.open_cases(at(2, 17)) == CaseAges(1, 0, 0, 0)
    assert q.open_cases(at(3, 12)) == CaseAges(0, 1, 0, 0)  # 26 hours
    assert q.open_cases(at(5, 12)) == CaseAges(0, 0, 1, 0)  # 3 days 2 hours
    assert q.open_cases(at(10, 0)) == CaseAges(0, 0, 0, 1)  # 7 days 14 hours
    assert q.open_cases(at(2, 9, 30)) == CaseAges(1, 0, 0, 0)  # the second is not requested yet
    assert q.open_cases(at(1, 0)) == CaseAges(0, 0, 0, 0)
    # Exactly 7 days after the request the case is "over 7 days" (bounds are inclusive
    # below: 1 day old is "1-3 days").
    requested = shop.ot.aftersales.case(made["return_case"]).created_on
    week, tick = timedelta(days=7), timedelta(microseconds=1)
    assert q.open_cases(requested + week) == CaseAges(0, 0, 0, 1)
    assert q.open_cases(requested + week - tick) == CaseAges(0, 0, 1, 0)
    assert q.open_cases(requested + timedelta(days=1)) == CaseAges(0, 1, 0, 0)
    for now in (at(2, 9, 30), at(2, 17), at(3, 12), requested + week, requested + week - tick):
        assert q.open_cases(now) == expected_case_ages(shop.ot, now)


def test_figures_follow_payments_as_they_arrive(shop: Shop) -> None:
    shop.clock.now = at(1, 8)
    shop.product("TEA-1", cny(1000), 20)
    split = shop.place([("TEA-1", 3)], [(ALIPAY, cny(1000)), (CARD, cny(2000))], at(1, 9))
    cash = shop.place([("TEA-1", 1)], [(WECHAT, cny(400)), (COD, cny(600))], at(1, 9, 5))
    shop.run()

    def nine() -> Bucket:
        return bucket(shop.queries.buckets("hour", at(1, 9), at(1, 10)), "2026-11-11T09")

    assert (nine().paid, nine().unpaid, nine().captured) == (0, 2, cny(0))
    shop.capture(split, 0, cny(1000), at(1, 9, 10))
    shop.capture(split, 1, cny(1500), at(1, 9, 12))  # part of the card payment
    shop.run()
    assert (nine().paid, nine().unpaid, nine().captured) == (0, 2, cny(2500))
    shop.capture(split, 1, cny(500), at(1, 9, 20))
    shop.capture(cash, 0, cny(400), at(1, 9, 25))  # COD orders are paid once confirmed
    shop.run()
    assert (nine().paid, nine().cod_confirmed, nine().unpaid) == (1, 0, 1)
    shop.confirm_cod(cash, at(1, 9, 30))
    shop.run()
    assert (nine().paid, nine().cod_confirmed, nine().unpaid) == (2, 1, 0)
    assert nine().captured == cny(3400)
    assert nine() == expected_buckets(shop.ot, "hour", at(1, 9), at(1, 10))[0]


def test_each_currency_has_its_own_buckets(shop: Shop) -> None:
    shop.clock.now = at(1, 8)
    shop.product("TEA-1", cny(1000), 20)
    shop.product("TEA-US", Money(1500, "USD"), 20)
    usd = shop.place([("TEA-US", 2)], [(CARD, Money(3000, "USD"))], at(1, 9))
    shop.capture(usd, 0, Money(3000, "USD"), at(1, 9, 1))
    shop.place([("TEA-1", 1)], [(ALIPAY, cny(1000))], at(1, 9, 2))
    shop.run()
    view = shop.queries.summary("hour", at(1, 9), at(1, 11), now=at(1, 12))
    assert [(b.period, b.currency) for b in view.buckets] == [
        ("2026-11-11T09", "CNY"),
        ("2026-11-11T09", "USD"),
        ("2026-11-11T10", "CNY"),
        ("2026-11-11T10", "USD"),
    ]
    cny_nine, usd_nine = view.buckets[:2]
    assert (cny_nine.gmv, cny_nine.paid, cny_nine.captured) == (cny(1000), 0, cny(0))
    assert (usd_nine.gmv, usd_nine.paid, usd_nine.captured) == (
        Money(3000, "USD"),
        1,
        Money(3000, "USD"),
    )
    assert usd_nine.top_skus_by_units == (SkuSales("TEA-US", 2, Money(3000, "USD")),)
    assert view.buckets == expected_buckets(shop.ot, "hour", at(1, 9), at(1, 11))


def test_periods_are_utc_and_arguments_are_checked(shop: Shop) -> None:
    shanghai = timezone(timedelta(hours=8))
    # 08:30 in Shanghai is 00:30 UTC: the day is the UTC day.
    assert periods("day", datetime(2026, 11, 12, 8, 30, tzinfo=shanghai), at(2, 1)) == [at(2, 0)]
    assert periods("hour", at(1, 9, 59), at(1, 10)) == [at(1, 9)]
    assert periods("hour", at(1, 9), at(1, 10, 1)) == [at(1, 9), at(1, 10)]
    with pytest.raises(ValueError, match="timezone-aware"):
        periods("hour", datetime(2026, 11, 11), at(1, 10))
    with pytest.raises(ValueError, match="after start"):
        periods("day", at(2, 0), at(1, 0))
    with pytest.raises(ValueError, match="granularity"):
        periods("week", at(1, 0), at(2, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        periods("hour", at(1, 0), at(1000, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        shop.queries.summary("day", at(1, 0), at(2, 0), now=datetime(2026, 11, 11))
    # An empty model: no currency yet, so no buckets; the snapshots are empty.
    view = shop.queries.summary("day", at(1, 0), at(2, 0), now=at(1, 12))
    assert (view.buckets, view.open_cases, view.parcels_past_sla, view.low_stock) == (
        (),
        CaseAges(0, 0, 0, 0),
        0,
        (),
    )


# --- incremental == rebuilt, over random histories ---------------------------------------------

PRICES = {"TEA-1": 1000, "CUP-1": 700, "POT-1": 2500}
PLANS = ("alipay", "split", "cod", "mixed")
ref = st.integers(0, 99)

step = st.one_of(
    st.tuples(
        st.just("place"),
        st.lists(
            st.tuples(st.sampled_from(sorted(PRICES)), st.integers(1, 3)),
            min_size=1,
            max_size=3,
            unique_by=lambda line: line[0],
        ),
        st.sampled_from(PLANS),
        # how far it goes at once
        st.sampled_from(("none", "partial", "paid", "paid", "shipped", "delivered", "delivered")),
    ),
    st.tuples(st.just("capture"), ref, ref, st.booleans()),
    st.tuples(st.sampled_from(("confirm_cod", "cancel", "ship", "ship")), ref),
    st.tuples(
        st.just("carrier"),
        ref,
        st.sampled_from((Milestone.PICKED_UP, Milestone.DELIVERED, Milestone.RETURNED_TO_SENDER)),
    ),
    st.tuples(st.sampled_from(("deliver", "deliver", "cancel_parcel")), ref),
    cases_step := st.tuples(
        st.just("case"), ref, st.sampled_from((CaseKind.REFUND_ONLY, CaseKind.RETURN))
    ),
    cases_step,
    case_work := st.tuples(st.sampled_from(("approve", "approve", "inspect", "close")), ref),
    case_work,
    st.tuples(st.just("refund"), ref, ref, st.integers(1, 3000)),
)
# Which of (Orders, AfterSales) the worker reads after a step: either may run ahead.
open_sources = st.sampled_from([(True, True), (True, False), (False, True), (False, False)])
minutes = st.sampled_from((0, 1, 7, 25, 45, 90, 300, 1440))


def plan_for(kind: str, total: int) -> list[tuple[PaymentMethod, Money]]:
    if kind == "alipay":
        return [(ALIPAY, cny(total))]
    if kind == "split":
        return [(WECHAT, cny(total // 3)), (CARD, cny(total - total // 3))]
    if kind == "cod":
        return [(COD, cny(total))]
    return [(CARD, cny(total // 2)), (COD, cny(total - total // 2))]


def act(shop: Shop, action: tuple[Any, ...], made: dict[str, list[Any]]) -> None:
    """One command (or a short flow) through the real Ordertrail; a refusal records
    nothing and ends the step."""
    kind, *args = action
    orders, parcels, cases, delivered = (
        made[k] for k in ("orders", "parcels", "cases", "delivered")
    )
    if kind == "place":
        lines, plan, fate = args
        total = sum(PRICES[sku] * qty for sku, qty in lines)
        order = shop.place(lines, plan_for(plan, total))
        orders.append(order)
        online = [i for i, p in enumerate(order.payments) if p.method is not COD]
        if fate == "partial" and online:
            shop.capture(order, online[0], cny(order.payments[online[0]].amount.amount // 2 or 1))
        if fate in ("none", "partial"):
            return
        for i in online:
            shop.capture(order, i, order.payments[i].amount)
        if len(online) < len(order.payments):
            shop.confirm_cod(order)
        if fate in ("shipped", "delivered"):
            remaining = sorted(
                shop.ot.orders.order(order.order_id).unallocated_quantities().items()
            )
            parcels.append(shop.ship(order, *remaining))
        if fate == "delivered":
            act(shop, ("deliver", len(parcels) - 1), made)
    elif kind in ("capture", "confirm_cod", "cancel", "ship", "refund") and orders:
        order = orders[args[0] % len(orders)]
        current = shop.ot.orders.order(order.order_id)
        if kind == "capture":
            index = args[1] % len(order.payments)
            payment = order.payments[index]
            due = current.payments[payment.payment_id].uncaptured.amount
            if payment.method is not COD and due > 0:
                shop.capture(order, index, cny(due if args[2] or due < 2 else due // 2))
        elif kind == "confirm_cod":
            shop.confirm_cod(order)
        elif kind == "cancel":
            shop.cancel(order)
        elif kind == "ship":
            remaining = sorted(current.unallocated_quantities().items())
            if remaining:
                parcels.append(shop.ship(order, *remaining))
        else:
            shop.refund(order, args[1] % len(order.payments), cny(args[2]))
    elif kind in ("carrier", "deliver", "cancel_parcel") and parcels:
        shipment = shop.shipments[parcels[args[0] % len(parcels)]]
        if kind == "cancel_parcel":
            shop.cancel_parcel(shipment.shipment_id)
            return
        milestone = Milestone.DELIVERED if kind == "deliver" else args[1]
        if kind == "deliver":
            shop.carrier(shipment.shipment_id, Milestone.PICKED_UP)
        cash = shipment.cod_amount if milestone is Milestone.DELIVERED else None
        shop.carrier(shipment.shipment_id, milestone, cash=cash)
        if milestone is Milestone.DELIVERED:
            delivered.append(shipment.order_id)
    elif kind == "case" and delivered:
        order_id = delivered[args[0] % len(delivered)]
        order = next(o for o in orders if o.order_id == order_id)
        cases.append(shop.open_case(order, 1, 1, args[1]))
    elif kind in ("approve", "inspect", "close") and cases:
        case_id = cases[args[0] % len(cases)]
        {"approve": shop.approve, "inspect": shop.inspect, "close": shop.close}[kind](case_id)


def observe(shop: Shop, store: ReadStore) -> list[Any]:
    """Everything the dashboard answers about the history, from ``store``."""
    q = DashboardQueries(store, InventoryLevelsQueries(shop.store))
    start, end = at(1, 0), shop.clock.now + timedelta(hours=1)
    answers: list[Any] = [q.buckets("day", start, end, top=2)]
    for now in (at(1, 12), shop.clock.now - timedelta(days=1), shop.clock.now):
        answers.append(q.summary("hour", start, end, now=now, sla=timedelta(hours=2), top=3))
    return answers


ORDERS_ONLY, CASES_ONLY, NEITHER, BOTH = (True, False), (False, True), (False, False), (True, True)
#: A history that has every kind of fact, with the AfterSales log read ahead of Orders.
RICH_HISTORY: list[tuple[int, tuple[Any, ...], tuple[bool, bool]]] = [
    (0, ("place", [("TEA-1", 2), ("CUP-1", 1)], "split", "delivered"), ORDERS_ONLY),  # o0 p0
    (10, ("place", [("POT-1", 1)], "cod", "delivered"), CASES_ONLY),  # o1 p1
    (5, ("case", 0, CaseKind.RETURN), CASES_ONLY),  # c0 on o0
    (5, ("case", 1, CaseKind.REFUND_ONLY), CASES_ONLY),  # c1 on o1
    (5, ("approve", 0), CASES_ONLY),
    (5, ("inspect", 0), CASES_ONLY),  # restocked and refunded
    (5, ("approve", 1), CASES_ONLY),  # refunded
    (60, ("close", 1), CASES_ONLY),
    (0, ("place", [("CUP-1", 3)], "alipay", "none"), NEITHER),  # o2, expires
    (45, ("place", [("TEA-1", 1)], "mixed", "shipped"), NEITHER),  # o3 p2
    (0, ("cancel_parcel", 2), BOTH),
    (0, ("cancel", 3), ORDERS_ONLY),
    (0, ("refund", 3, 0, 500), ORDERS_ONLY),
    (0, ("place", [("POT-1", 2), ("TEA-1", 1)], "split", "paid"), ORDERS_ONLY),  # o4
    (0, ("ship", 4), CASES_ONLY),  # p3
    (300, ("carrier", 3, Milestone.RETURNED_TO_SENDER), NEITHER),
    (1440, ("place", [("CUP-1", 1)], "alipay", "partial"), CASES_ONLY),  # o5
    (1440, ("refund", 4, 1, 1000), BOTH),
]


def test_an_incremental_build_equals_a_rebuild(store_settings: Settings) -> None:
    """Each example drives a fresh Ordertrail; a worker with tiny batches follows it with
    either source held back at random; then a worker builds the model again from scratch
    in an empty store. Tables and answers must be equal, and equal the oracle."""

    @settings(
        max_examples=20 if store_settings.backend == "sqlite" else 10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @example(steps=RICH_HISTORY, batch_size=2)
    @given(
        steps=st.lists(st.tuples(minutes, step, open_sources), min_size=8, max_size=25),
        batch_size=st.integers(1, 3),
    )
    def check(steps: list[tuple[int, tuple[Any, ...], tuple[bool, bool]]], batch_size: int) -> None:
        clock = FakeClock(at(1, 8))
        with (
            empty_store_like(store_settings) as fresh,
            open_ordertrail(fresh, clock=clock) as ot,
            shop_of(ot, clock, fresh) as shop,
        ):
            for sku, price in PRICES.items():
                shop.product(sku, cny(price), 30)
            shop.inventory.run_until_idle()
            gates = (GatedSource(ot.orders), GatedSource(ot.aftersales))
            worker = shop.worker(batch_size, gates)  # the only dashboard worker that runs
            made: dict[str, list[Any]] = {
                k: [] for k in ("orders", "parcels", "cases", "delivered")
            }
            for wait, action, (orders_open, cases_open) in steps:
                clock.advance(timedelta(minutes=wait))
                if wait >= 30:
                    ot.run_processes()  # expiries, among others
                with contextlib.suppress(DomainError):
                    act(shop, action, made)
                gates[0].open, gates[1].open = orders_open, cases_open
                worker.run_once()
            for gate in gates:
                gate.open = True
            worker.run_until_idle()
            shop.inventory.run_until_idle()
            incremental = (table_rows(shop.store, DASHBOARD_TABLES), observe(shop, shop.store))
            with empty_read_store(fresh) as other:
                rebuilt_worker = ProjectionWorker(MerchantDashboard(), other, shop.sources())
                rebuilt_worker.setup()
                rebuilt_worker.run_until_idle()
                rebuilt = (table_rows(other, DASHBOARD_TABLES), observe(shop, other))
            assert incremental == rebuilt
            # ...and both say what the event logs say.
            day, *summaries = incremental[1]
            assert day == expected_buckets(ot, "day", at(1, 0), clock.now + timedelta(hours=1), 2)
            for view in summaries:
                assert view.buckets == expected_buckets(ot, "hour", view.start, view.end, 3)
                assert view.open_cases == expected_case_ages(ot, view.now)
                late = expected_late_parcels(ot, view.now, view.sla)
                assert view.parcels_past_sla == len(late)
                assert [p.shipment_id for p in view.late_parcels] == late[:20]
            event(f"orders: {len(made['orders'])}, cases: {len(made['cases'])}")

    check()
