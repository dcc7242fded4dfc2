"""The merchant dashboard: sales, payments, cancellations and refunds per hour or per day,
and what needs attention now (open after-sales cases by age, parcels waiting too long for
the carrier, low stock).

**Buckets are UTC hours and UTC days.** Each fact is written with the text keys of its
UTC hour (``YYYY-MM-DDTHH``) and UTC day (``YYYY-MM-DD``), taken from the timestamp of
the event that recorded it; a query groups by one of the two keys.

The model keeps facts, not counters, and aggregates them when queried, so the same event
can never count twice and a model built incrementally is a rebuild by construction.

Tables (each row a fact; the source that writes it in brackets):

- ``dash_orders`` (Orders): one row per order: currency, total, when it was placed (and
  the keys), how it got paid (``paid`` or ``cod_confirmed``) and when, how it ended
  (``cancelled`` or ``expired``) and when (and the keys). From ``Placed``, ``Paid``,
  ``CashOnDeliveryConfirmed``, ``Cancelled`` and ``Expired``.
- ``dash_order_lines`` (Orders): one row per order line: SKU, units, unit price, line
  total, and the order's placed keys.
- ``dash_order_payments`` (Orders): one row per payment of an order's plan: method,
  planned amount, and the order's placed keys.
- ``dash_captures`` / ``dash_refunds`` (Orders): one row per ``PaymentCaptured`` /
  ``PaymentRefunded`` event (keyed by its position): amount, method or reference, time
  and keys.
- ``dash_parcels`` (Orders): one row per parcel planned on an order
  (``ShipmentPlanned``): when, its state, and when it first left the ``planned`` state
  (``ShipmentDispatched``, ``ShipmentDelivered``, ``ShipmentReturned``,
  ``ShipmentCancelled``).
- ``dash_currencies`` (Orders): every currency an order was placed in.
- ``dash_cases`` (AfterSales): one row per case (``Requested``): order, kind, reason,
  when requested, when closed (``Closed``).

Every table is written by one source only, and nothing joins the two sources, so the
order in which the Orders and AfterSales logs are read never matters (a case may well be
projected before its order). Low stock is not projected here: it is read from the
``inventory_levels`` read model (``InventoryLevelsQueries.low_stock``).

Refunds are counted from the order's ``PaymentRefunded`` events, the money that actually
went back (after-sales refunds included: a case refund is an order refund whose reference
starts with ``case:``); ``AfterSalesCase.RefundIssued`` mirrors those and is not counted
again. Money is in integer minor units, per currency: a bucket holds one currency, and
every period has one bucket per currency that any order was ever placed in (one, in a
shop with one currency), so figures of different currencies are never added up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import singledispatchmethod
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.aftersales import AfterSalesCase
from ordertrail.domain.money import Money
from ordertrail.domain.orders import Order
from ordertrail.domain.payments import PaymentMethod
from ordertrail.projections.inventory_levels import InventoryLevelsQueries, Level
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

Granularity = Literal["hour", "day"]

#: Parcels planned longer ago than this and still not with the carrier are late.
DEFAULT_SLA = timedelta(hours=24)
#: SKUs with at most this many units available (in a warehouse) are low on stock.
DEFAULT_LOW_STOCK_THRESHOLD = 5
#: A summary covers at most this many periods (a little over a year of hours).
MAX_BUCKETS = 10_000

_STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_KEY_FORMAT: dict[str, str] = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
_METHOD_ORDER = {method: index for index, method in enumerate(PaymentMethod)}

_PAID = "paid"
_COD_CONFIRMED = "cod_confirmed"
_CANCELLED = "cancelled"
_EXPIRED = "expired"


# --- what the queries answer -----------------------------------------------------------------


@dataclass(frozen=True)
class MethodShare:
    """One payment method in the plans of the orders placed in a bucket."""

    method: PaymentMethod
    #: orders placed in the bucket whose payment plan uses the method
    orders: int
    #: payments of that method in those plans (an order may split over two cards)
    payments: int
    #: the amount planned for the method in those plans
    amount: Money


@dataclass(frozen=True)
class SkuSales:
    """One SKU in the orders placed in a bucket."""

    sku: str
    units: int
    #: sum of its line totals (unit price at placement x units; before order-level
    #: discounts and without shipping)
    revenue: Money


@dataclass(frozen=True)
class Bucket:
    """One UTC hour or UTC day ``[start, end)``, in one currency.

    Cohort figures are about the orders *placed* in the period (in this currency),
    whatever happened to them later, and change as later events arrive:
    ``orders_placed``; ``gmv`` (the sum of their totals: lines, less discounts, plus
    shipping; cancelled and expired orders included); ``average_order_value`` (gmv ÷
    orders placed, rounded to the nearest minor unit, halves up; None without orders);
    ``paid`` (how many of them reached ``Paid`` or ``CashOnDeliveryConfirmed`` so far),
    ``cod_confirmed`` (those of them that got there by COD confirmation), ``unpaid``
    (``orders_placed - paid``); ``payment_methods`` (the mix of their payment plans);
    ``top_skus_by_units`` and ``top_skus_by_revenue`` (their lines, grouped by SKU; ties
    by SKU); ``orders_refunded`` (how many of them have had any refund so far) and
    ``refunded_order_rate`` (``orders_refunded / orders_placed``; None without orders).

    Event figures are about what happened in the period, to orders placed whenever:
    ``cancelled`` and ``expired`` (orders that were cancelled / expired in the period);
    ``captured`` (sum of ``PaymentCaptured`` amounts, cash collected on delivery
    included); ``refunded`` and ``refunds`` (sum and number of ``PaymentRefunded``);
    ``refund_rate`` (``refunded / captured`` of the period, which can exceed 1 when
    earlier captures are refunded; None when nothing was captured).
    """

    period: str
    start: datetime
    end: datetime
    currency: str
    orders_placed: int
    gmv: Money
    average_order_value: Money | None
    paid: int
    cod_confirmed: int
    unpaid: int
    payment_methods: tuple[MethodShare, ...]
    top_skus_by_units: tuple[SkuSales, ...]
    top_skus_by_revenue: tuple[SkuSales, ...]
    orders_refunded: int
    refunded_order_rate: float | None
    cancelled: int
    expired: int
    captured: Money
    refunded: Money
    refunds: int
    refund_rate: float | None


@dataclass(frozen=True)
class CaseAges:
    """After-sales cases open at ``now`` (requested at or before it, not closed by then),
    by age ``now - requested_at``: under 1 day, 1 day to under 3, 3 to under 7, 7 days
    or more. A case is open until it is closed, whatever its status (a rejected case
    still waits to be closed)."""

    under_1_day: int
    from_1_to_3_days: int
    from_3_to_7_days: int
    over_7_days: int

    @property
    def total(self) -> int:
        return self.under_1_day + self.from_1_to_3_days + self.from_3_to_7_days + self.over_7_days


@dataclass(frozen=True)
class LateParcel:
    """A parcel planned more than the SLA before ``now`` that was still planned at ``now``
    (not dispatched, delivered, returned or cancelled by then)."""

    shipment_id: UUID
    order_id: UUID
    delivery_group: str
    carrier: str
    units: int
    planned_at: datetime
    waiting: timedelta


@dataclass(frozen=True)
class DashboardView:
    granularity: Granularity
    #: start of the first bucket and end of the last one (UTC)
    start: datetime
    end: datetime
    now: datetime
    #: every period from ``start`` to ``end`` for every currency orders were placed in,
    #: by period then currency; periods without activity are zeros
    buckets: tuple[Bucket, ...]
    open_cases: CaseAges
    sla: timedelta
    #: how many parcels are past the SLA, and the oldest of them
    parcels_past_sla: int
    late_parcels: tuple[LateParcel, ...]
    #: SKUs (per warehouse) with at most ``low_stock_threshold`` units available, lowest
    #: first (empty when no threshold was given)
    low_stock_threshold: int | None
    low_stock: tuple[Level, ...]


# --- the read model --------------------------------------------------------------------------

_ORDER_TOPICS = frozenset(
    {
        Order.Placed.TOPIC,
        Order.PaymentCaptured.TOPIC,
        Order.PaymentRefunded.TOPIC,
        Order.Paid.TOPIC,
        Order.CashOnDeliveryConfirmed.TOPIC,
        Order.Cancelled.TOPIC,
        Order.Expired.TOPIC,
        Order.ShipmentPlanned.TOPIC,
        Order.ShipmentDispatched.TOPIC,
        Order.ShipmentDelivered.TOPIC,
        Order.ShipmentReturned.TOPIC,
        Order.ShipmentCancelled.TOPIC,
    }
)
_CASE_TOPICS = frozenset({AfterSalesCase.Requested.TOPIC, AfterSalesCase.Closed.TOPIC})

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dash_orders ("
    " order_id {text} PRIMARY KEY, currency {text} NOT NULL, total {int} NOT NULL,"
    " placed_at {text} NOT NULL, placed_hour {text} NOT NULL, placed_day {text} NOT NULL,"
    " settled {text}, settled_at {text},"
    " ended {text}, ended_at {text}, ended_hour {text}, ended_day {text})",
    "CREATE INDEX IF NOT EXISTS dash_orders_placed_hour ON dash_orders (placed_hour, currency)",
    "CREATE INDEX IF NOT EXISTS dash_orders_placed_day ON dash_orders (placed_day, currency)",
    "CREATE INDEX IF NOT EXISTS dash_orders_ended_hour ON dash_orders (ended_hour)",
    "CREATE INDEX IF NOT EXISTS dash_orders_ended_day ON dash_orders (ended_day)",
    "CREATE TABLE IF NOT EXISTS dash_order_lines ("
    " order_id {text} NOT NULL, line_no {int} NOT NULL, sku {text} NOT NULL,"
    " quantity {int} NOT NULL, unit_price {int} NOT NULL, line_total {int} NOT NULL,"
    " currency {text} NOT NULL, placed_hour {text} NOT NULL, placed_day {text} NOT NULL,"
    " PRIMARY KEY (order_id, line_no))",
    "CREATE INDEX IF NOT EXISTS dash_order_lines_hour"
    " ON dash_order_lines (placed_hour, currency, sku)",
    "CREATE INDEX IF NOT EXISTS dash_order_lines_day"
    " ON dash_order_lines (placed_day, currency, sku)",
    "CREATE TABLE IF NOT EXISTS dash_order_payments ("
    " payment_id {text} PRIMARY KEY, order_id {text} NOT NULL, method {text} NOT NULL,"
    " amount {int} NOT NULL, currency {text} NOT NULL,"
    " placed_hour {text} NOT NULL, placed_day {text} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dash_order_payments_hour"
    " ON dash_order_payments (placed_hour, currency, method)",
    "CREATE INDEX IF NOT EXISTS dash_order_payments_day"
    " ON dash_order_payments (placed_day, currency, method)",
    "CREATE TABLE IF NOT EXISTS dash_captures ("
    " position {int} PRIMARY KEY, order_id {text} NOT NULL, payment_id {text} NOT NULL,"
    " method {text} NOT NULL, amount {int} NOT NULL, currency {text} NOT NULL,"
    " captured_at {text} NOT NULL, hour {text} NOT NULL, day {text} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dash_captures_hour ON dash_captures (hour)",
    "CREATE INDEX IF NOT EXISTS dash_captures_day ON dash_captures (day)",
    "CREATE TABLE IF NOT EXISTS dash_refunds ("
    " position {int} PRIMARY KEY, order_id {text} NOT NULL, payment_id {text} NOT NULL,"
    " amount {int} NOT NULL, currency {text} NOT NULL, refund_ref {text} NOT NULL,"
    " refunded_at {text} NOT NULL, hour {text} NOT NULL, day {text} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dash_refunds_hour ON dash_refunds (hour)",
    "CREATE INDEX IF NOT EXISTS dash_refunds_day ON dash_refunds (day)",
    "CREATE INDEX IF NOT EXISTS dash_refunds_order ON dash_refunds (order_id)",
    "CREATE TABLE IF NOT EXISTS dash_parcels ("
    " shipment_id {text} PRIMARY KEY, order_id {text} NOT NULL,"
    " delivery_group {text} NOT NULL, carrier {text} NOT NULL, units {int} NOT NULL,"
    " planned_at {text} NOT NULL, state {text} NOT NULL, left_planned_at {text})",
    # Parcels still planned (the usual answer), and those that left after a past ``now``.
    "CREATE INDEX IF NOT EXISTS dash_parcels_waiting ON dash_parcels (planned_at)"
    " WHERE left_planned_at IS NULL",
    "CREATE INDEX IF NOT EXISTS dash_parcels_left ON dash_parcels (left_planned_at)",
    "CREATE TABLE IF NOT EXISTS dash_currencies (currency {text} PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS dash_cases ("
    " case_id {text} PRIMARY KEY, order_id {text} NOT NULL, kind {text} NOT NULL,"
    " reason {text} NOT NULL, requested_at {text} NOT NULL, closed_at {text})",
    # Cases open now, and those closed after a past ``now``.
    "CREATE INDEX IF NOT EXISTS dash_cases_open ON dash_cases (requested_at)"
    " WHERE closed_at IS NULL",
    "CREATE INDEX IF NOT EXISTS dash_cases_closed ON dash_cases (closed_at)",
)


def _instant(moment: datetime) -> datetime:
    """The moment in UTC (a naive one is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _at(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so that text order is time order on every store."""
    return _instant(moment).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _keys(moment: datetime) -> tuple[str, str, str]:
    """The timestamp, UTC hour key and UTC day key of a moment."""
    utc = _instant(moment)
    return _at(utc), utc.strftime(_KEY_FORMAT["hour"]), utc.strftime(_KEY_FORMAT["day"])


class MerchantDashboard(ReadModel):
    name = "merchant_dashboard"
    sources = ("Orders", "AfterSales")
    topics = {"Orders": _ORDER_TOPICS, "AfterSales": _CASE_TOPICS}

    def tables(self) -> Sequence[str]:
        return (
            "dash_orders",
            "dash_order_lines",
            "dash_order_payments",
            "dash_captures",
            "dash_refunds",
            "dash_parcels",
            "dash_currencies",
            "dash_cases",
        )

    def create(self, tx: Tx) -> None:
        for statement in _SCHEMA:
            tx.ddl(statement)

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self._apply(event, tx, position)

    @singledispatchmethod
    def _apply(self, event: Any, tx: Tx, position: Position) -> None:
        """Other events change no figure."""

    # --- orders --------------------------------------------------------------------------

    @_apply.register
    def _(self, event: Order.Placed, tx: Tx, position: Position) -> None:
        order_id = str(event.originator_id)
        at, hour, day = _keys(event.timestamp)
        tx.execute(
            "INSERT INTO dash_orders (order_id, currency, total, placed_at, placed_hour,"
            " placed_day) VALUES (?, ?, ?, ?, ?, ?)",
            (order_id, event.currency, event.total.amount, at, hour, day),
        )
        tx.executemany(
            "INSERT INTO dash_order_lines (order_id, line_no, sku, quantity, unit_price,"
            " line_total, currency, placed_hour, placed_day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    line.line_no,
                    line.sku,
                    line.quantity,
                    line.unit_price.amount,
                    line.line_total.amount,
                    event.currency,
                    hour,
                    day,
                )
                for line in event.lines
            ],
        )
        tx.executemany(
            "INSERT INTO dash_order_payments (payment_id, order_id, method, amount, currency,"
            " placed_hour, placed_day) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    str(payment.payment_id),
                    order_id,
                    payment.method.value,
                    payment.amount.amount,
                    event.currency,
                    hour,
                    day,
                )
                for payment in event.payments
            ],
        )
        tx.execute(
            "INSERT INTO dash_currencies (currency) VALUES (?) ON CONFLICT (currency) DO NOTHING",
            (event.currency,),
        )

    @_apply.register
    def _(self, event: Order.Paid, tx: Tx, position: Position) -> None:
        _settled(tx, event, _PAID)

    @_apply.register
    def _(self, event: Order.CashOnDeliveryConfirmed, tx: Tx, position: Position) -> None:
        _settled(tx, event, _COD_CONFIRMED)

    @_apply.register
    def _(self, event: Order.Cancelled, tx: Tx, position: Position) -> None:
        _ended(tx, event, _CANCELLED)

    @_apply.register
    def _(self, event: Order.Expired, tx: Tx, position: Position) -> None:
        _ended(tx, event, _EXPIRED)

    @_apply.register
    def _(self, event: Order.PaymentCaptured, tx: Tx, position: Position) -> None:
        at, hour, day = _keys(event.timestamp)
        tx.execute(
            "INSERT INTO dash_captures (position, order_id, payment_id, method, amount,"
            " currency, captured_at, hour, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position.id,
                str(event.originator_id),
                str(event.payment_id),
                event.method.value,
                event.amount.amount,
                event.amount.currency,
                at,
                hour,
                day,
            ),
        )

    @_apply.register
    def _(self, event: Order.PaymentRefunded, tx: Tx, position: Position) -> None:
        at, hour, day = _keys(event.timestamp)
        tx.execute(
            "INSERT INTO dash_refunds (position, order_id, payment_id, amount, currency,"
            " refund_ref, refunded_at, hour, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position.id,
                str(event.originator_id),
                str(event.payment_id),
                event.amount.amount,
                event.amount.currency,
                event.refund_ref,
                at,
                hour,
                day,
            ),
        )

    # --- parcels -------------------------------------------------------------------------

    @_apply.register
    def _(self, event: Order.ShipmentPlanned, tx: Tx, position: Position) -> None:
        tx.execute(
            "INSERT INTO dash_parcels (shipment_id, order_id, delivery_group, carrier, units,"
            " planned_at, state) VALUES (?, ?, ?, ?, ?, ?, 'planned')",
            (
                str(event.shipment_id),
                str(event.originator_id),
                event.delivery_group,
                event.carrier,
                sum(part.quantity for part in event.lines),
                _at(event.timestamp),
            ),
        )

    @_apply.register
    def _(self, event: Order.ShipmentDispatched, tx: Tx, position: Position) -> None:
        _parcel_moved(tx, event.shipment_id, "dispatched", event.timestamp)

    @_apply.register
    def _(self, event: Order.ShipmentDelivered, tx: Tx, position: Position) -> None:
        _parcel_moved(tx, event.shipment_id, "delivered", event.timestamp)

    @_apply.register
    def _(self, event: Order.ShipmentReturned, tx: Tx, position: Position) -> None:
        _parcel_moved(tx, event.shipment_id, "returned", event.timestamp)

    @_apply.register
    def _(self, event: Order.ShipmentCancelled, tx: Tx, position: Position) -> None:
        _parcel_moved(tx, event.shipment_id, "cancelled", event.timestamp)

    # --- after-sales cases ---------------------------------------------------------------

    @_apply.register
    def _(self, event: AfterSalesCase.Requested, tx: Tx, position: Position) -> None:
        tx.execute(
            "INSERT INTO dash_cases (case_id, order_id, kind, reason, requested_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                str(event.originator_id),
                str(event.order_id),
                event.kind.value,
                event.reason.value,
                _at(event.timestamp),
            ),
        )

    @_apply.register
    def _(self, event: AfterSalesCase.Closed, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE dash_cases SET closed_at = ? WHERE case_id = ? AND closed_at IS NULL",
            (_at(event.timestamp), str(event.originator_id)),
        )


def _settled(tx: Tx, event: Order.Event, how: str) -> None:
    # An order is paid or COD-confirmed once at most; the first one counts regardless.
    tx.execute(
        "UPDATE dash_orders SET settled = ?, settled_at = ? WHERE order_id = ? AND settled IS NULL",
        (how, _at(event.timestamp), str(event.originator_id)),
    )


def _ended(tx: Tx, event: Order.Event, how: str) -> None:
    at, hour, day = _keys(event.timestamp)
    tx.execute(
        "UPDATE dash_orders SET ended = ?, ended_at = ?, ended_hour = ?, ended_day = ?"
        " WHERE order_id = ? AND ended IS NULL",
        (how, at, hour, day, str(event.originator_id)),
    )


def _parcel_moved(tx: Tx, shipment_id: UUID, state: str, when: datetime) -> None:
    tx.execute(
        "UPDATE dash_parcels SET state = ?, left_planned_at = COALESCE(left_planned_at, ?)"
        " WHERE shipment_id = ?",
        (state, _at(when), str(shipment_id)),
    )


# --- queries ---------------------------------------------------------------------------------


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def _floor(moment: datetime, granularity: Granularity) -> datetime:
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def periods(granularity: Granularity, start: datetime, end: datetime) -> list[datetime]:
    """The starts of the UTC hours or days that a summary from ``start`` to ``end`` covers:
    the one ``start`` falls in, and every later one that begins before ``end``."""
    if granularity not in _STEP:
        raise ValueError(f"granularity is 'hour' or 'day', not {granularity!r}")
    first, stop = _floor(_aware(start, "start"), granularity), _aware(end, "end")
    if stop <= _aware(start, "start"):
        raise ValueError("end must be after start")
    step = _STEP[granularity]
    count = -((first - stop) // step)  # ceil((stop - first) / step)
    if count > MAX_BUCKETS:
        raise ValueError(f"a summary covers at most {MAX_BUCKETS} periods, not {count}")
    return [first + step * i for i in range(count)]


def _int(value: Any) -> int:
    """SUM() of a BIGINT is NUMERIC on PostgreSQL (a Decimal here); NULL when no rows."""
    return 0 if value is None else int(value)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sku_order(tx: Tx) -> str:
    # Code-point order on both stores, whatever the PostgreSQL database's collation.
    return 'sku COLLATE "C"' if tx.dialect == "postgres" else "sku"


class DashboardQueries:
    """The merchant dashboard. ``inventory`` answers the low-stock part (by default the
    ``inventory_levels`` model in the same store, which must then be set up there: this
    model does not project stock)."""

    def __init__(self, store: ReadStore, inventory: InventoryLevelsQueries | None = None) -> None:
        self.store = store
        self.inventory = inventory or InventoryLevelsQueries(store)

    def summary(
        self,
        granularity: Granularity,
        start: datetime,
        end: datetime,
        *,
        now: datetime,
        sla: timedelta = DEFAULT_SLA,
        low_stock_threshold: int | None = DEFAULT_LOW_STOCK_THRESHOLD,
        top: int = 5,
        late_parcels: int = 20,
    ) -> DashboardView:
        """Buckets for every UTC hour or UTC day from the one ``start`` falls in up to
        ``end`` (see ``Bucket``), and the current snapshots as of ``now``: open cases by
        age, parcels still planned more than ``sla`` after they were planned (the count,
        and the ``late_parcels`` oldest), SKUs with at most ``low_stock_threshold`` units
        available (skipped when it is None). ``top`` SKUs by units and by revenue per
        bucket."""
        starts = periods(granularity, start, end)
        moment = _aware(now, "now")
        with self.store.read() as tx:
            buckets = _buckets(tx, granularity, starts, max(int(top), 0))
            ages = _case_ages(tx, moment)
            late_count, late = _late_parcels(tx, moment, sla, max(int(late_parcels), 0))
        low = (
            ()
            if low_stock_threshold is None
            else tuple(self.inventory.low_stock(low_stock_threshold))
        )
        step = _STEP[granularity]
        return DashboardView(
            granularity=granularity,
            start=starts[0],
            end=starts[-1] + step,
            now=moment,
            buckets=buckets,
            open_cases=ages,
            sla=sla,
            parcels_past_sla=late_count,
            late_parcels=late,
            low_stock_threshold=low_stock_threshold,
            low_stock=low,
        )

    def buckets(
        self, granularity: Granularity, start: datetime, end: datetime, *, top: int = 5
    ) -> tuple[Bucket, ...]:
        starts = periods(granularity, start, end)
        with self.store.read() as tx:
            return _buckets(tx, granularity, starts, max(int(top), 0))

    def open_cases(self, now: datetime) -> CaseAges:
        with self.store.read() as tx:
            return _case_ages(tx, _aware(now, "now"))

    def parcels_past_sla(
        self, now: datetime, sla: timedelta = DEFAULT_SLA, limit: int = 20
    ) -> tuple[int, tuple[LateParcel, ...]]:
        with self.store.read() as tx:
            return _late_parcels(tx, _aware(now, "now"), sla, max(int(limit), 0))


_Key = tuple[str, str]  # (period key, currency)


def _buckets(
    tx: Tx, granularity: Granularity, starts: list[datetime], top: int
) -> tuple[Bucket, ...]:
    g = granularity
    step = _STEP[g]
    fmt = _KEY_FORMAT[g]
    low, high = starts[0].strftime(fmt), (starts[-1] + step).strftime(fmt)
    window = (low, high)

    placed: dict[_Key, tuple[int, ...]] = {}
    for key, currency, *figures in tx.all(
        f"SELECT o.placed_{g}, o.currency, COUNT(*), SUM(o.total),"
        " SUM(CASE WHEN o.settled IS NOT NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN o.settled = 'cod_confirmed' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN EXISTS (SELECT 1 FROM dash_refunds r WHERE r.order_id = o.order_id)"
        " THEN 1 ELSE 0 END)"
        f" FROM dash_orders o WHERE o.placed_{g} >= ? AND o.placed_{g} < ?"
        f" GROUP BY o.placed_{g}, o.currency",
        window,
    ):
        placed[key, currency] = tuple(_int(f) for f in figures)

    ended: dict[_Key, tuple[int, int]] = {}
    for key, currency, cancelled, expired in tx.all(
        f"SELECT ended_{g}, currency,"
        " SUM(CASE WHEN ended = 'cancelled' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN ended = 'expired' THEN 1 ELSE 0 END)"
        f" FROM dash_orders WHERE ended_{g} >= ? AND ended_{g} < ?"
        f" GROUP BY ended_{g}, currency",
        window,
    ):
        ended[key, currency] = (_int(cancelled), _int(expired))

    captured: dict[_Key, int] = {}
    for key, currency, amount in tx.all(
        f"SELECT {g}, currency, SUM(amount) FROM dash_captures"
        f" WHERE {g} >= ? AND {g} < ? GROUP BY {g}, currency",
        window,
    ):
        captured[key, currency] = _int(amount)

    refunded: dict[_Key, tuple[int, int]] = {}
    for key, currency, amount, count in tx.all(
        f"SELECT {g}, currency, SUM(amount), COUNT(*) FROM dash_refunds"
        f" WHERE {g} >= ? AND {g} < ? GROUP BY {g}, currency",
        window,
    ):
        refunded[key, currency] = (_int(amount), _int(count))

    methods: dict[_Key, list[MethodShare]] = {}
    for key, currency, method, orders, payments, amount in tx.all(
        f"SELECT placed_{g}, currency, method, COUNT(DISTINCT order_id), COUNT(*), SUM(amount)"
        f" FROM dash_order_payments WHERE placed_{g} >= ? AND placed_{g} < ?"
        f" GROUP BY placed_{g}, currency, method",
        window,
    ):
        methods.setdefault((key, currency), []).append(
            MethodShare(
                PaymentMethod(method), _int(orders), _int(payments), Money(_int(amount), currency)
            )
        )

    by_units: dict[_Key, list[tuple[int, SkuSales]]] = {}
    by_revenue: dict[_Key, list[tuple[int, SkuSales]]] = {}
    if top:
        sku = _sku_order(tx)
        for key, currency, name, units, revenue, units_rank, revenue_rank in tx.all(
            "SELECT * FROM ("
            f" SELECT placed_{g} AS period, currency, sku, SUM(quantity) AS units,"
            " SUM(line_total) AS revenue,"
            f" ROW_NUMBER() OVER (PARTITION BY placed_{g}, currency"
            f" ORDER BY SUM(quantity) DESC, {sku}) AS units_rank,"
            f" ROW_NUMBER() OVER (PARTITION BY placed_{g}, currency"
            f" ORDER BY SUM(line_total) DESC, {sku}) AS revenue_rank"
            f" FROM dash_order_lines WHERE placed_{g} >= ? AND placed_{g} < ?"
            f" GROUP BY placed_{g}, currency, sku) ranked"
            " WHERE units_rank <= ? OR revenue_rank <= ?",
            (*window, top, top),
        ):
            sales = SkuSales(name, _int(units), Money(_int(revenue), currency))
            if units_rank <= top:
                by_units.setdefault((key, currency), []).append((int(units_rank), sales))
            if revenue_rank <= top:
                by_revenue.setdefault((key, currency), []).append((int(revenue_rank), sales))

    currencies = [
        str(c) for (c,) in tx.all("SELECT currency FROM dash_currencies ORDER BY currency")
    ]
    buckets: list[Bucket] = []
    for begins in starts:
        period = begins.strftime(fmt)
        for currency in currencies:
            key = (period, currency)
            count, gmv, paid, cod, refunded_orders = placed.get(key, (0, 0, 0, 0, 0))
            cancelled, expired = ended.get(key, (0, 0))
            taken = captured.get(key, 0)
            given_back, refunds = refunded.get(key, (0, 0))
            buckets.append(
                Bucket(
                    period=period,
                    start=begins,
                    end=begins + step,
                    currency=currency,
                    orders_placed=count,
                    gmv=Money(gmv, currency),
                    average_order_value=(
                        Money((2 * gmv + count) // (2 * count), currency) if count else None
                    ),
                    paid=paid,
                    cod_confirmed=cod,
                    unpaid=count - paid,
                    payment_methods=tuple(
                        sorted(methods.get(key, ()), key=lambda m: _METHOD_ORDER[m.method])
                    ),
                    top_skus_by_units=tuple(s for _, s in sorted(by_units.get(key, ()), key=_rank)),
                    top_skus_by_revenue=tuple(
                        s for _, s in sorted(by_revenue.get(key, ()), key=_rank)
                    ),
                    orders_refunded=refunded_orders,
                    refunded_order_rate=_rate(refunded_orders, count),
                    cancelled=cancelled,
                    expired=expired,
                    captured=Money(taken, currency),
                    refunded=Money(given_back, currency),
                    refunds=refunds,
                    refund_rate=_rate(given_back, taken),
                )
            )
    return tuple(buckets)


def _case_ages(tx: Tx, now: datetime) -> CaseAges:
    day = timedelta(days=1)
    one, three, seven, at_now = (_at(now - n * day) for n in (1, 3, 7, 0))
    row = tx.one(
        "SELECT SUM(CASE WHEN requested_at > ? THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN requested_at <= ? AND requested_at > ? THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN requested_at <= ? AND requested_at > ? THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN requested_at <= ? THEN 1 ELSE 0 END)"
        " FROM (SELECT requested_at FROM dash_cases"
        " WHERE closed_at IS NULL AND requested_at <= ?"
        " UNION ALL SELECT requested_at FROM dash_cases"
        " WHERE closed_at > ? AND requested_at <= ?) open_cases",
        (one, one, three, three, seven, seven, at_now, at_now, at_now),
    )
    assert row is not None
    return CaseAges(*(_int(value) for value in row))


_LATE_PARCELS = (
    "SELECT shipment_id, order_id, delivery_group, carrier, units, planned_at FROM dash_parcels"
    " WHERE left_planned_at IS NULL AND planned_at < ?"
    " UNION ALL SELECT shipment_id, order_id, delivery_group, carrier, units, planned_at"
    " FROM dash_parcels WHERE left_planned_at > ? AND planned_at < ?"
)


def _late_parcels(
    tx: Tx, now: datetime, sla: timedelta, limit: int
) -> tuple[int, tuple[LateParcel, ...]]:
    cutoff, at_now = _at(now - sla), _at(now)
    params = (cutoff, at_now, cutoff)
    count = _int(tx.scalar(f"SELECT COUNT(*) FROM ({_LATE_PARCELS}) late", params))
    rows = tx.all(
        f"SELECT * FROM ({_LATE_PARCELS}) late ORDER BY planned_at, shipment_id LIMIT ?",
        (*params, limit),
    )
    late = []
    for shipment_id, order_id, group, carrier, units, planned_at in rows:
        planned = datetime.fromisoformat(planned_at)
        late.append(
            LateParcel(
                UUID(shipment_id),
                UUID(order_id),
                group,
                carrier,
                int(units),
                planned,
                now - planned,
            )
        )
    return count, tuple(late)


def _rank(ranked: tuple[int, SkuSales]) -> int:
    return ranked[0]
