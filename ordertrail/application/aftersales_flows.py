"""After-sales flows that cross contexts: opening a case against an order, refunding it,
and sending an exchange's replacement.

Refunds move money on the order first (where "never more than captured minus already
refunded" is decided, across every case of the order), then record it on the case. The
references are derived from the command, so a retry neither pays twice nor loses the
case's record; the case-refund recorder (``fulfilment_processes``) copies any refund the
order has onto its case if the process died in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError

from ordertrail.application.aftersales import AfterSalesApplication, CaseSnapshot
from ordertrail.application.base import Decision, backoff
from ordertrail.application.carriers import ParcelSpec, Preference, select_carrier
from ordertrail.application.context import CommandContext
from ordertrail.application.errors import ConcurrencyConflict
from ordertrail.application.fulfilment import Fulfilment
from ordertrail.application.inventory import InventoryApplication
from ordertrail.application.orders import OrdersApplication, OrderSnapshot
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.aftersales import (
    AfterSalesCase,
    CaseKind,
    CaseLine,
    CaseReason,
    ClaimLine,
)
from ordertrail.domain.errors import (
    AfterSalesWindowClosed,
    InvalidCase,
    RefundExceedsCaptured,
    ReturnExceedsDelivered,
)
from ordertrail.domain.inventory import InventoryItem
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.orders import Order
from ordertrail.domain.shipments import ParcelLine, Shipment, TrackingNumber

DEFAULT_AFTER_SALES_WINDOW = timedelta(days=7)
REPLACEMENT_HOLD = timedelta(days=30)
REPLACEMENT_WEIGHT_GRAMS = 1000


@dataclass(frozen=True)
class CaseLineRequest:
    line_no: int
    quantity: int


@dataclass(frozen=True)
class RequestCase:
    order_id: UUID
    kind: CaseKind
    reason: CaseReason
    lines: tuple[CaseLineRequest, ...]
    photo_urls: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class IssueRefund:
    case_id: UUID
    amount: Money


@dataclass(frozen=True)
class RefundRecorded:
    case_id: UUID
    order_id: UUID
    parts: tuple[tuple[UUID, Money, str], ...]  # payment, amount, refund reference


@dataclass
class AfterSalesFlows:
    aftersales: AfterSalesApplication
    orders: OrdersApplication
    inventory: InventoryApplication
    fulfilment: Fulfilment
    window: timedelta = DEFAULT_AFTER_SALES_WINDOW

    # --- opening a case ------------------------------------------------------------------

    def request_case(self, command: RequestCase, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        """Open a case about delivered units of an order, within the after-sales window;
        across the order's cases, never more of a line than delivered comes back."""
        case_id = ids.case_id(ctx.command_id)

        def decide(now: datetime) -> Decision[CaseSnapshot]:
            order = self.orders.order(command.order_id)
            delivered = order.delivered_quantities()
            if not delivered:
                raise ReturnExceedsDelivered(
                    "nothing of this order has been delivered yet", order_id=str(order.id)
                )
            closes = self.window_closes(order)
            if closes is None or now > closes:
                raise AfterSalesWindowClosed(
                    "the after-sales window of this order has closed",
                    closed_at=closes.isoformat() if closes else None,
                )
            lines = case_lines(order, command.lines)
            case = AfterSalesCase.request(
                case_id=case_id,
                order_id=order.id,
                customer_id=order.customer_id,
                kind=command.kind,
                reason=command.reason,
                lines=lines,
                photo_urls=command.photo_urls,
                description=command.description,
                meta=ctx.meta,
                now=now,
            )
            ledger = self.aftersales.ledger(order.id, ctx.meta, now)
            ledger.claim(case_id, case.claimed_lines(), delivered, meta=ctx.meta, now=now)
            return Decision(CaseSnapshot.of(case), [ledger, case])

        return self.aftersales.execute(command, ctx, decide, CaseSnapshot)

    def window_closes(self, order: Order) -> datetime | None:
        delivered_at = order.last_delivered_at
        return None if delivered_at is None else delivered_at + self.window

    # --- refunds -------------------------------------------------------------------------

    def issue_refund(self, command: IssueRefund, ctx: CommandContext) -> Accepted[RefundRecorded]:
        """Give money back for a case: within what the case may refund, and within what
        the order captured and has not refunded yet (across all its cases)."""
        case = self.aftersales.case(command.case_id)
        reference = f"case:{case.id}:{ctx.command_id}"

        def decide(now: datetime) -> Decision[RefundRecorded]:
            # The case's status and limits, on its current state, before any money moves;
            # the order then keeps the case's refunds within its limit (and the order's).
            current = self.aftersales.case(command.case_id)
            current.check_refund(command.amount)
            order = self.orders.order(case.order_id)
            parts = []
            for index, (payment_id, amount) in enumerate(refund_plan(order, command.amount)):
                ref = f"{reference}:{index}"
                order.refund_payment(
                    payment_id,
                    amount,
                    refund_ref=ref,
                    reason=f"after-sales case {case.id}",
                    meta=ctx.meta,
                    now=now,
                    for_case=case.id,
                    case_limit=current.refund_limit,
                )
                parts.append((payment_id, amount, ref))
            return Decision(RefundRecorded(case.id, order.id, tuple(parts)), [order])

        accepted = self.orders.execute(command, ctx, decide, RefundRecorded)
        position = self.record_case_refunds(
            case.id, [(a, r) for _, a, r in accepted.value.parts], ctx.meta
        )
        positions = dict(accepted.positions)
        if position is not None:
            positions[self.aftersales.name] = position
        return Accepted(accepted.value, positions, accepted.replayed)

    def record_case_refunds(
        self, case_id: UUID, refunds: Sequence[tuple[Money, str]], meta: EventMeta
    ) -> int | None:
        """Record on the case the refunds the order made for it (idempotent by reference)."""
        for attempt in range(self.aftersales.max_attempts):
            case = self.aftersales.case(case_id)
            now = self.aftersales.clock()
            for amount, ref in refunds:
                case.record_refund_made(amount, refund_ref=ref, meta=meta, now=now)
            if not case.pending_events:
                return None
            try:
                return self.aftersales.save_all([case])
            except IntegrityError:
                backoff(attempt)
        raise ConcurrencyConflict(f"could not record the refunds of case {case_id}")

    def refund_case_in_full(
        self, case_id: UUID, ctx: CommandContext
    ) -> Accepted[RefundRecorded] | None:
        """Refund what the case may still refund, as far as the order can (used when a
        return is accepted or a refund-only case approved). None if nothing is due."""
        case = self.aftersales.case(case_id)
        order = self.orders.order(case.order_id)
        already = order.case_refunds.get(case.id, Money.zero(order.currency))
        amount = min(
            case.refund_limit - already, order.captured - order.refunded, key=lambda m: m.amount
        )
        if amount.amount <= 0:
            return None
        return self.issue_refund(IssueRefund(case_id, amount), ctx)

    # --- exchanges -----------------------------------------------------------------------

    def arrange_replacement(self, case_id: UUID, meta: EventMeta) -> CaseSnapshot:
        """Hold stock for an approved exchange and book its replacement parcel (once)."""
        case = self.aftersales.case(case_id)
        if case.replacement_shipment_id is not None:
            return CaseSnapshot.of(case)
        case.check_replacement()  # before any stock is held or parcel booked
        order = self.orders.order(case.order_id)
        lines = replacement_lines(order, case.replacement_lines())
        shipment_id = ids.shipment_id(uuid5(case.id, "replacement"))
        expires_at = self.inventory.clock() + REPLACEMENT_HOLD
        self.inventory.update_items(
            [ids.inventory_item_id(line.sku, line.warehouse) for line in lines],
            lambda item, now: _reserve(
                item, case.id, lines, expires_at=expires_at, meta=meta, now=now
            ),
            f"hold stock for the replacement of case {case.id}",
        )
        self._book_replacement(case, order, shipment_id, lines, meta)
        return self._record_replacement(case.id, shipment_id, meta)

    def _book_replacement(
        self,
        case: AfterSalesCase,
        order: Order,
        shipment_id: UUID,
        lines: tuple[ParcelLine, ...],
        meta: EventMeta,
    ) -> None:
        logistics = self.fulfilment.logistics
        if logistics.find_as(shipment_id, Shipment) is not None:
            return
        group = next(
            g
            for g in order.delivery_groups
            if g.group_id == order.lines[lines[0].line_no - 1].delivery_group
        )
        spec = ParcelSpec(shipment_id, group.address, REPLACEMENT_WEIGHT_GRAMS, None, case.value)
        carrier = select_carrier(
            self.fulfilment.rules, spec, Preference.FASTEST, self.fulfilment.carriers.codes
        ).carrier
        tracking = self.fulfilment.carriers.get(carrier).book(spec)
        now = logistics.clock()
        shipment = Shipment.book(
            shipment_id=shipment_id,
            order_id=order.id,
            holder_id=case.id,
            delivery_group=group.group_id,
            address=group.address,
            lines=lines,
            carrier=carrier,
            tracking_number=tracking,
            weight_grams=REPLACEMENT_WEIGHT_GRAMS,
            meta=meta,
            now=now,
        )
        try:
            logistics.save_all([shipment, TrackingNumber.assign(shipment, meta=meta, now=now)])
        except IntegrityError:
            if logistics.find_as(shipment_id, Shipment) is None:
                raise

    def _record_replacement(
        self, case_id: UUID, shipment_id: UUID, meta: EventMeta
    ) -> CaseSnapshot:
        for attempt in range(self.aftersales.max_attempts):
            case = self.aftersales.case(case_id)
            if not case.arrange_replacement(shipment_id, meta=meta, now=self.aftersales.clock()):
                return CaseSnapshot.of(case)
            try:
                self.aftersales.save_all([case])
            except IntegrityError:
                backoff(attempt)
                continue
            return CaseSnapshot.of(case)
        raise ConcurrencyConflict(f"could not record the replacement of case {case_id}")

    def order_snapshot(self, order_id: UUID) -> OrderSnapshot:
        return OrderSnapshot.of(self.orders.order(order_id))


def case_lines(order: Order, requested: Sequence[CaseLineRequest]) -> tuple[CaseLine, ...]:
    by_number = {line.line_no: line for line in order.lines}
    lines = []
    for request in requested:
        line = by_number.get(request.line_no)
        if line is None:
            raise InvalidCase(f"the order has no line {request.line_no}", field="lines")
        lines.append(CaseLine(line.line_no, line.sku, request.quantity, line.unit_price))
    return tuple(lines)


def replacement_lines(order: Order, claimed: Sequence[ClaimLine]) -> tuple[ParcelLine, ...]:
    by_number = {line.line_no: line for line in order.lines}
    return tuple(
        ParcelLine(c.line_no, by_number[c.line_no].sku, c.quantity, by_number[c.line_no].warehouse)
        for c in claimed
    )


def refund_plan(order: Order, amount: Money) -> list[tuple[UUID, Money]]:
    """Split a refund over the order's payments: online payments first, in plan order,
    then cash on delivery; each gives back at most what it holds."""
    payments = sorted(order.payments.values(), key=lambda p: not p.method.is_online)
    left = amount.amount
    plan = []
    for payment in payments:
        part = min(left, payment.refundable.amount)
        if part > 0:
            plan.append((payment.payment_id, Money(part, amount.currency)))
            left -= part
    if left > 0:
        raise RefundExceedsCaptured(
            f"refund of {amount.amount} exceeds the {amount.amount - left} the order can "
            "still refund",
            requested=amount.amount,
            refundable=amount.amount - left,
        )
    return plan


def _reserve(
    item: InventoryItem,
    holder: UUID,
    lines: tuple[ParcelLine, ...],
    *,
    expires_at: datetime,
    meta: EventMeta,
    now: datetime,
) -> bool:
    quantity = sum(
        line.quantity for line in lines if (line.sku, line.warehouse) == (item.sku, item.warehouse)
    )
    if item.held_for(holder) == quantity:
        return False
    item.reserve(holder, quantity, expires_at=expires_at, meta=meta, now=now)
    return True
