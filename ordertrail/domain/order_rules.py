"""The rules a new order must satisfy before it is placed."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import InvalidOrder, PaymentPlanMismatch
from ordertrail.domain.money import Money, total
from ordertrail.domain.order_parts import MAX_LINE_QUANTITY, DeliveryGroup, Discount, OrderLine
from ordertrail.domain.payments import Payment, PaymentMethod, PlannedPayment

MAX_LINES = 100
MAX_GROUPS = 10
MAX_PAYMENTS = 5
MAX_DISCOUNTS = 10


def provider_ref(value: str) -> str:
    return rules.text(
        value, "provider reference", max_length=200, error=InvalidOrder, allow_empty=True
    )


def check_amount(amount: Money, currency: str, field: str) -> Money:
    if not isinstance(amount, Money) or amount.currency != currency:
        raise InvalidOrder(f"{field} must be in {currency}", field=field)
    if amount.amount < 0:
        raise InvalidOrder(f"{field} must not be negative", field=field)
    return amount


def check_lines_and_groups(
    lines: Sequence[OrderLine], groups: Sequence[DeliveryGroup]
) -> tuple[tuple[OrderLine, ...], tuple[DeliveryGroup, ...]]:
    if not lines:
        raise InvalidOrder("an order needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise InvalidOrder(f"an order has at most {MAX_LINES} lines", field="lines")
    if not groups or len(groups) > MAX_GROUPS:
        raise InvalidOrder(
            f"an order has 1 to {MAX_GROUPS} delivery groups", field="delivery_groups"
        )
    group_ids = [g.group_id for g in groups]
    if len(set(group_ids)) != len(group_ids):
        raise InvalidOrder("delivery group ids must be unique", field="delivery_groups")
    currency = lines[0].unit_price.currency
    seen: set[tuple[str, str]] = set()
    used_groups: set[str] = set()
    for index, line in enumerate(lines, start=1):
        if line.line_no != index:
            raise InvalidOrder("lines are numbered 1, 2, 3, ...", field="lines")
        if type(line.quantity) is not int or not 0 < line.quantity <= MAX_LINE_QUANTITY:
            raise InvalidOrder(
                f"a line quantity is 1 to {MAX_LINE_QUANTITY}", field="lines", line_no=line.line_no
            )
        if line.unit_price.currency != currency:
            raise InvalidOrder("all lines must be priced in one currency", field="lines")
        if line.unit_price.amount <= 0:
            raise InvalidOrder("a unit price must be positive", field="lines")
        if line.delivery_group not in group_ids:
            raise InvalidOrder(
                f"line {line.line_no} names an unknown delivery group",
                field="lines",
                line_no=line.line_no,
            )
        key = (line.sku, line.delivery_group)
        if key in seen:
            raise InvalidOrder(
                f"{line.sku} appears twice in delivery group {line.delivery_group}",
                field="lines",
                sku=line.sku,
            )
        seen.add(key)
        used_groups.add(line.delivery_group)
    if used_groups != set(group_ids):
        raise InvalidOrder("every delivery group needs at least one line", field="delivery_groups")
    return tuple(lines), tuple(groups)


def check_discounts(discounts: Sequence[Discount], currency: str) -> tuple[Discount, ...]:
    if len(discounts) > MAX_DISCOUNTS:
        raise InvalidOrder(f"at most {MAX_DISCOUNTS} discounts", field="discounts")
    codes = [d.code for d in discounts]
    if len(set(codes)) != len(codes):
        raise InvalidOrder("a discount code applies once", field="discounts")
    for discount in discounts:
        if discount.amount.currency != currency or discount.amount.amount <= 0:
            raise InvalidOrder(f"discounts are positive amounts in {currency}", field="discounts")
    return tuple(discounts)


def check_payment_plan(
    order_id: UUID, plan: Sequence[PlannedPayment], grand_total: Money
) -> tuple[Payment, ...]:
    if len(plan) > MAX_PAYMENTS:
        raise PaymentPlanMismatch(f"at most {MAX_PAYMENTS} payments", field="payments")
    if grand_total.amount > 0 and not plan:
        raise PaymentPlanMismatch("a payment plan is needed", field="payments")
    cod = [p for p in plan if p.method is PaymentMethod.CASH_ON_DELIVERY]
    if len(cod) > 1:
        raise PaymentPlanMismatch("at most one cash-on-delivery payment", field="payments")
    for entry in plan:
        if entry.amount.currency != grand_total.currency or entry.amount.amount <= 0:
            raise PaymentPlanMismatch(
                f"each payment is a positive amount in {grand_total.currency}", field="payments"
            )
    planned = total([p.amount for p in plan], grand_total.currency)
    if planned != grand_total:
        raise PaymentPlanMismatch(
            f"the payments add up to {planned.amount}, the order total is {grand_total.amount}",
            field="payments",
            planned=planned.amount,
            total=grand_total.amount,
        )
    return tuple(
        Payment.planned(ids.payment_id(order_id, i), entry) for i, entry in enumerate(plan)
    )
