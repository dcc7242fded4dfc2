"""An Order takes payment commands, valid and invalid, in any order and at any time, and
never takes or gives back more money than it should: each payment holds at most its
amount net of refunds (what was refunded may be captured again) and refunds at most what
it holds, a provider reference counts once per action, the status moves only along the
allowed edges, and a cancelled or expired order stays that way."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from ordertrail.domain import ids
from ordertrail.domain.errors import DomainError, InvalidOrder, InvalidValue, PaymentPlanMismatch
from ordertrail.domain.money import MAX_MINOR_UNITS, Money
from ordertrail.domain.order_parts import (
    MAX_LINE_QUANTITY,
    Address,
    DeliveryGroup,
    Discount,
    OrderLine,
)
from ordertrail.domain.orders import CANCELLABLE, Order, OrderStatus
from ordertrail.domain.payments import (
    Payment,
    PaymentMethod,
    PaymentState,
    PlannedPayment,
    ProviderAction,
)
from tests.domain.harness import (
    START,
    Accepted,
    EventLog,
    Outcome,
    Rejected,
    Text,
    first_rejection,
    new_meta,
    perform,
    texts,
)

CNY = "CNY"
INVALID_ORDER = "order.invalid"
PLAN_MISMATCH = "order.payment_plan_mismatch"
PAYMENT_NOT_FOUND = "order.payment_not_found"
NOT_PAYABLE = "order.not_payable"
NOT_CANCELLABLE = "order.not_cancellable"
NOT_EXPIRABLE = "order.not_expirable"
ORDER_TRANSITION = "order.invalid_transition"
PAYMENT_TRANSITION = "payment.invalid_transition"
CAPTURE_EXCEEDS = "payment.capture_exceeds_amount"
REFUND_EXCEEDS = "payment.refund_exceeds_captured"
VALUE_INVALID = "value.invalid"

AWAITING = OrderStatus.AWAITING_PAYMENT
#: Where captured money is owed back (``refund_due``).
ENDED_UNFULFILLED = frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED})
AUTHORIZE, CAPTURE = ProviderAction.AUTHORIZE, ProviderAction.CAPTURE
FAIL, REFUND = ProviderAction.FAIL, ProviderAction.REFUND
#: A new attempt may start from these (after a failure, or after a void).
AUTHORIZABLE = frozenset({PaymentState.PENDING, PaymentState.FAILED, PaymentState.VOIDED})
FAILABLE = frozenset({PaymentState.PENDING, PaymentState.AUTHORIZED, PaymentState.FAILED})
COD = PaymentMethod.CASH_ON_DELIVERY
ONLINE_METHODS = (PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY, PaymentMethod.CARD)
SKUS = ("TEA-1", "TEA-2", "CUP-1", "POT-9")
UNKNOWN_PAYMENT = UUID(int=0xDEAD)

#: The status each lifecycle event moves to, and the statuses it may leave.
MOVES_TO = {
    "Paid": OrderStatus.PAID,
    "CashOnDeliveryConfirmed": OrderStatus.COD_CONFIRMED,
    "ReleasedToFulfilment": OrderStatus.READY_TO_SHIP,
    "Cancelled": OrderStatus.CANCELLED,
    "Expired": OrderStatus.EXPIRED,
}
MOVES_FROM = {
    "Paid": {AWAITING},
    "CashOnDeliveryConfirmed": {AWAITING},
    "ReleasedToFulfilment": {OrderStatus.PAID, OrderStatus.COD_CONFIRMED},
    "Cancelled": set(CANCELLABLE),
    "Expired": {AWAITING},
}
#: What may still happen to an order that has ended: money that moves anyway (a late
#: capture, refunds), failures reported late, and the voids its ending triggers.
AFTER_THE_END = {"PaymentCaptured", "PaymentRefunded", "PaymentFailed", "PaymentVoided"}


def cny(amount: int) -> Money:
    return Money(amount, CNY)


# --- a valid order ------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSpec:
    order_id: UUID
    customer_id: str
    lines: tuple[OrderLine, ...]
    groups: tuple[DeliveryGroup, ...]
    shipping_fee: Money
    discounts: tuple[Discount, ...]
    plan: tuple[PlannedPayment, ...]
    due_in: timedelta
    auto_release: bool

    @property
    def total(self) -> int:
        subtotal = sum(line.unit_price.amount * line.quantity for line in self.lines)
        return subtotal + self.shipping_fee.amount - sum(d.amount.amount for d in self.discounts)

    def place(self, now: datetime) -> Order:
        return Order.place(
            order_id=self.order_id,
            customer_id=self.customer_id,
            lines=self.lines,
            delivery_groups=self.groups,
            shipping_fee=self.shipping_fee,
            discounts=self.discounts,
            payment_plan=self.plan,
            payment_due_at=now + self.due_in,
            meta=new_meta(),
            now=now,
            auto_release=self.auto_release,
        )


addresses = st.builds(
    Address.create,
    recipient=st.sampled_from(["Li Lei", "Han Meimei", " Wang Fang "]),
    phone=st.sampled_from(["+86 138 0000 0000", "021-6000-0000", "852 (2100) 0000"]),
    line1=st.sampled_from(["1 Huaihai Road", "88 Nathan Road", "Unit 5, 10 Main St"]),
    city=st.sampled_from(["Shanghai", "Hong Kong", "Hangzhou"]),
    country=st.sampled_from(["CN", "HK", "US"]),
    region=st.sampled_from(["", "Zhejiang"]),
    postal_code=st.sampled_from(["", "200000"]),
)


def split(draw: Callable[..., Any], amount: int, parts: int) -> list[int]:
    """``amount`` cut into ``parts`` positive pieces (needs ``amount >= parts``)."""
    if parts == 1:
        return [amount]
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, amount - 1), min_size=parts - 1, max_size=parts - 1, unique=True
            )
        )
    )
    edges = [0, *cuts, amount]
    return [b - a for a, b in itertools.pairwise(edges)]


@st.composite
def order_specs(draw: Callable[..., Any]) -> OrderSpec:
    group_ids = draw(
        st.lists(st.from_regex(r"\A[a-z][a-z0-9-]{0,7}\Z"), min_size=1, max_size=2, unique=True)
    )
    groups = tuple(DeliveryGroup(gid, draw(addresses)) for gid in group_ids)
    # every group gets at least one line; a SKU appears at most once per group; <= 4 lines
    pairs: list[tuple[str, str]] = []
    for gid in group_ids:
        room = 4 - len(pairs) - (len(group_ids) - 1 - group_ids.index(gid))
        skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=room, unique=True))
        pairs.extend((sku, gid) for sku in skus)
    pairs = draw(st.permutations(pairs))
    lines = tuple(
        OrderLine(
            line_no=n,
            sku=sku,
            title=f"Product {sku}",
            quantity=draw(st.one_of(st.integers(1, 5), st.just(MAX_LINE_QUANTITY))),
            unit_price=cny(draw(st.one_of(st.integers(1, 20_000), st.just(1)))),
            delivery_group=gid,
            warehouse="main",
        )
        for n, (sku, gid) in enumerate(pairs, start=1)
    )
    subtotal = sum(line.line_total.amount for line in lines)
    fee = draw(st.one_of(st.just(0), st.integers(1, 2_000)))
    payments = min(draw(st.integers(1, 3)), subtotal + fee)
    discountable = subtotal + fee - payments
    discounts: tuple[Discount, ...] = ()
    if discountable > 0 and draw(st.booleans()):
        off = draw(st.integers(1, discountable))
        pieces = split(draw, off, min(off, draw(st.integers(1, 2))))
        discounts = tuple(
            Discount.create(f"COUPON-{n}", cny(piece)) for n, piece in enumerate(pieces)
        )
    grand_total = subtotal + fee - sum(d.amount.amount for d in discounts)
    amounts = split(draw, grand_total, payments)
    cod_at = draw(st.one_of(st.none(), st.integers(0, payments - 1)))
    plan = tuple(
        PlannedPayment(COD if n == cod_at else draw(st.sampled_from(ONLINE_METHODS)), cny(a))
        for n, a in enumerate(amounts)
    )
    return OrderSpec(
        order_id=draw(st.uuids()),
        customer_id=draw(st.from_regex(r"\A[a-z][a-z0-9_-]{0,11}\Z")),
        lines=lines,
        groups=groups,
        shipping_fee=cny(fee),
        discounts=discounts,
        plan=plan,
        due_in=timedelta(minutes=draw(st.integers(1, 180))),
        auto_release=draw(st.booleans()),
    )


# --- command inputs -----------------------------------------------------------------------


#: Provider references that every kind of command draws from: a provider often uses one
#: transaction id for an authorization and its capture, or for a capture and its refund,
#: and a reference is a retry only when it comes back for the same action.
REF_POOL = ("T-1", "T-2", "T-3", " T-1 ", "T-2\n")
#: The references the targeted rules use when any of them may do.
USUAL_REFS = st.sampled_from(["T-7", "T-8", "T-9"]).map(lambda r: Text(r, True))


def refs(*, allow_empty: bool) -> st.SearchStrategy[Text]:
    """A small pool of references (so retries happen, and the same reference comes back for
    other actions), the empty one, and invalid ones. Padding, a trailing newline included,
    is free text's and is stripped."""
    return st.one_of(
        st.sampled_from(REF_POOL).map(lambda r: Text(r, True)),
        st.just(Text("", allow_empty)),
        st.sampled_from(["r" * 201, "bad\x00ref", "\x1b[0m"]).map(lambda r: Text(r, False)),
    )


def amounts(limit: int) -> st.SearchStrategy[Money]:
    """Amounts around ``limit`` (what is still due or refundable): all of it, some of it,
    one more (which after a refund is still within what was ever captured), too much,
    nothing, negative, absurd, and in the wrong currency."""
    return st.one_of(
        st.just(cny(limit)),
        st.integers(1, max(limit, 1)).map(cny),
        st.just(cny(limit + 1)),
        st.integers(limit + 1, limit + 10_000).map(cny),
        st.sampled_from([0, -1, -limit, MAX_MINOR_UNITS, -MAX_MINOR_UNITS]).map(cny),
        st.integers(1, max(limit, 1)).map(lambda a: Money(a, "USD")),
    )


@dataclass(frozen=True)
class _Fixed:
    """Stands in for ``st.data()`` when a targeted rule reuses a general one."""

    value: Money

    def draw(self, strategy: object, label: str = "") -> Money:
        return self.value


# --- the model ----------------------------------------------------------------------------


@dataclass
class PaymentModel:
    method: PaymentMethod
    amount: int
    state: PaymentState = PaymentState.PENDING
    authorized: int = 0
    captured: int = 0  # all that was ever captured, refunds not deducted
    refunded: int = 0
    refs: set[tuple[ProviderAction, str]] = field(default_factory=set)

    @property
    def net_captured(self) -> int:
        """What the shop holds: a refund gives money back, and it is due again."""
        return self.captured - self.refunded

    @property
    def uncaptured(self) -> int:
        return self.amount - self.net_captured

    @property
    def fully_captured(self) -> bool:
        return self.uncaptured == 0

    @property
    def authorizable(self) -> bool:
        """Whether an authorization of what is still due would be taken (on an unpaid order)."""
        return self.method is not COD and self.state in AUTHORIZABLE and self.uncaptured > 0

    def has_seen(self, action: ProviderAction, ref: str) -> bool:
        return (action, ref) in self.refs

    def remember(self, action: ProviderAction, ref: str) -> None:
        if ref:
            self.refs.add((action, ref))

    def fresh_ref(self, *actions: ProviderAction) -> str:
        """The first of T-1, T-2, ... that none of ``actions`` has seen on this payment."""
        return next(
            ref
            for ref in (f"T-{n}" for n in itertools.count(1))
            if not any(self.has_seen(action, ref) for action in actions)
        )


@dataclass
class OrderModel:
    status: OrderStatus
    due_at: datetime
    payments: dict[UUID, PaymentModel]

    @property
    def has_cod(self) -> bool:
        return any(p.method is COD for p in self.payments.values())

    @property
    def online_captured(self) -> bool:
        """Every online payment is held in full, net of refunds."""
        return all(p.fully_captured for p in self.payments.values() if p.method is not COD)

    def void_authorizations(self) -> tuple[str, ...]:
        voided = [p for p in self.payments.values() if p.state is PaymentState.AUTHORIZED]
        for payment in voided:
            payment.state, payment.authorized = PaymentState.VOIDED, 0
        return ("PaymentVoided",) * len(voided)


def check_refs_per_action(payment: Payment, model: PaymentModel) -> None:
    """``has_seen`` answers per action: each reference the payment saw, for each action."""
    for ref in {ref for _, ref in model.refs} | {"T-1"}:
        for action in ProviderAction:
            assert payment.has_seen(action, ref) is model.has_seen(action, ref), (action, ref)
    assert not payment.has_seen(CAPTURE, "")


class OrderMachine(RuleBasedStateMachine):
    """Places one valid order, then sends it payment and lifecycle commands from customers,
    providers and staff, valid and invalid, as the clock moves past its payment deadline."""

    payments = Bundle("payments")
    captures = Bundle("captures")
    refunds = Bundle("refunds")

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = START
        self.log = EventLog()
        self.order: Order
        self.model: OrderModel
        self.spec: OrderSpec
        self.terminal: OrderStatus | None = None
        self.replayed = -1  # how many events the last replay folded

    def run(self, command: Callable[[], object], expected: Outcome, label: str) -> bool:
        return bool(perform(self.order, self.log, command, expected, label))

    def payment_or_none(self, payment_id: UUID) -> PaymentModel | None:
        return self.model.payments.get(payment_id)

    @initialize(target=payments, spec=order_specs())
    def place(self, spec: OrderSpec) -> object:
        self.spec = spec
        self.order = spec.place(self.now)
        placed = self.log.collect(self.order)
        assert [type(e).__name__ for e in placed] == ["Placed"]
        payment_ids = [ids.payment_id(spec.order_id, n) for n in range(len(spec.plan))]
        assert list(self.order.payments) == payment_ids
        self.model = OrderModel(
            status=AWAITING,
            due_at=self.now + spec.due_in,
            payments={
                pid: PaymentModel(entry.method, entry.amount.amount)
                for pid, entry in zip(payment_ids, spec.plan, strict=True)
            },
        )
        return multiple(*payment_ids)

    # --- the clock --------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 90))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: self.now < self.model.due_at)
    @rule(offset=st.sampled_from([-1, 0, 1]))
    def clock_reaches_the_deadline(self, offset: int) -> None:
        """Set the clock to a microsecond before, at, or after the payment deadline."""
        self.now = self.model.due_at + timedelta(microseconds=offset)

    # --- payments ---------------------------------------------------------------------------

    @rule(
        payment_id=st.one_of(payments, st.just(UNKNOWN_PAYMENT)),
        data=st.data(),
        ref=refs(allow_empty=True),
    )
    def authorize(self, payment_id: UUID, data: st.DataObject | _Fixed, ref: Text) -> None:
        p = self.payment_or_none(payment_id)
        amount = data.draw(amounts(p.uncaptured if p else 100), label="amount")
        expected: Outcome
        if p is None:
            expected = Rejected.of(PAYMENT_NOT_FOUND)
        elif not ref.valid:
            expected = Rejected.of(INVALID_ORDER)
        elif p.has_seen(AUTHORIZE, ref.stripped):
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (self.model.status is not AWAITING, NOT_PAYABLE),
                (amount.currency != CNY, INVALID_ORDER),
                (p.state not in AUTHORIZABLE, PAYMENT_TRANSITION),
                (p.method is COD, PAYMENT_TRANSITION),
                (not 0 < amount.amount <= p.uncaptured, CAPTURE_EXCEEDS),
            ) or Accepted(("PaymentAuthorized",), True)
        if self.run(
            lambda: self.order.authorize_payment(
                payment_id, amount, provider_ref=ref.value, meta=new_meta(), now=self.now
            ),
            expected,
            "authorize",
        ):
            assert p is not None
            p.state, p.authorized = PaymentState.AUTHORIZED, amount.amount
            p.remember(AUTHORIZE, ref.stripped)

    def authorizable(self) -> list[UUID]:
        if self.model.status is not AWAITING:
            return []
        return sorted(pid for pid, p in self.model.payments.items() if p.authorizable)

    @precondition(lambda self: self.authorizable())
    @rule(data=st.data(), ref=USUAL_REFS)
    def authorize_what_is_due(self, data: st.DataObject, ref: Text) -> None:
        """What a provider usually does: hold all of what is still due (again after a
        failure or a void, and again after a refund)."""
        payment_id = data.draw(st.sampled_from(self.authorizable()), label="payment_id")
        amount = self.model.payments[payment_id].uncaptured
        self.authorize(payment_id, _Fixed(cny(amount)), ref)

    def _capture(
        self, payment_id: UUID, amount: Money, ref: Text, auto_release: bool, label: str
    ) -> object:
        p = self.payment_or_none(payment_id)
        model = self.model
        expected: Outcome
        if p is None:
            expected = Rejected.of(PAYMENT_NOT_FOUND)
        elif not ref.valid:
            expected = Rejected.of(INVALID_ORDER)
        elif p.has_seen(CAPTURE, ref.stripped):
            expected = Accepted((), False)
        else:
            # The provider's word wins: money it took is recorded in every payment state
            # (voided included) and on every order status; only the amount is limited.
            rejected = first_rejection(
                (amount.currency != CNY, INVALID_ORDER),
                (amount.amount <= 0, VALUE_INVALID),
                (amount.amount > p.uncaptured, CAPTURE_EXCEEDS),
            )
            settles = (
                model.status is AWAITING
                and not model.has_cod
                and all(
                    q.uncaptured == (amount.amount if q is p else 0)
                    for q in model.payments.values()
                    if q.method is not COD
                )
            )
            recorded = ["PaymentCaptured"]
            if settles:
                recorded.append("Paid")
                if auto_release:
                    recorded.append("ReleasedToFulfilment")
            expected = rejected or Accepted(tuple(recorded), True)
        if not self.run(
            lambda: self.order.capture_payment(
                payment_id,
                amount,
                provider_ref=ref.value,
                meta=new_meta(),
                now=self.now,
                auto_release=auto_release,
            ),
            expected,
            label,
        ):
            return multiple()
        assert p is not None
        assert isinstance(expected, Accepted)
        p.state, p.captured = PaymentState.CAPTURED, p.captured + amount.amount
        p.remember(CAPTURE, ref.stripped)
        if "Paid" in expected.events:
            model.status = OrderStatus.PAID
        if "ReleasedToFulfilment" in expected.events:
            model.status = OrderStatus.READY_TO_SHIP
        return (payment_id, ref.value) if ref.stripped else multiple()

    @rule(
        target=captures,
        payment_id=st.one_of(payments, st.just(UNKNOWN_PAYMENT)),
        data=st.data(),
        ref=refs(allow_empty=True),
        auto_release=st.booleans(),
    )
    def capture(
        self, payment_id: UUID, data: st.DataObject, ref: Text, auto_release: bool
    ) -> object:
        p = self.payment_or_none(payment_id)
        amount = data.draw(amounts(p.uncaptured if p else 100), label="amount")
        return self._capture(payment_id, amount, ref, auto_release, "capture")

    @rule(
        target=captures,
        payment_id=payments,
        ref=USUAL_REFS,
        auto_release=st.booleans(),
    )
    def capture_everything_still_due(
        self, payment_id: UUID, ref: Text, auto_release: bool
    ) -> object:
        """What a provider usually does: take all of it at once (again after a refund)."""
        p = self.model.payments[payment_id]
        return self._capture(payment_id, cny(max(p.uncaptured, 1)), ref, auto_release, "capture")

    @rule(capture=captures, data=st.data())
    def a_provider_resends_a_capture(self, capture: tuple[UUID, str], data: st.DataObject) -> None:
        """A duplicate callback: whatever the amount and state now, it records nothing."""
        payment_id, ref = capture
        amount = data.draw(amounts(100), label="amount")
        self.run(
            lambda: self.order.capture_payment(
                payment_id, amount, provider_ref=ref, meta=new_meta(), now=self.now
            ),
            Accepted((), False),
            "capture again",
        )

    @rule(
        payment_id=st.one_of(payments, st.just(UNKNOWN_PAYMENT)),
        reason=texts(500),
        ref=refs(allow_empty=True),
    )
    def fail(self, payment_id: UUID, reason: Text, ref: Text) -> None:
        p = self.payment_or_none(payment_id)
        expected: Outcome
        if p is None:
            expected = Rejected.of(PAYMENT_NOT_FOUND)
        elif not ref.valid:
            expected = Rejected.of(INVALID_ORDER)
        elif p.has_seen(FAIL, ref.stripped):
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (not reason.valid, INVALID_ORDER),
                (p.state not in FAILABLE, PAYMENT_TRANSITION),
            ) or Accepted(("PaymentFailed",), True)
        if self.run(
            lambda: self.order.fail_payment(
                payment_id, reason.value, provider_ref=ref.value, meta=new_meta(), now=self.now
            ),
            expected,
            "fail",
        ):
            assert p is not None
            p.state, p.authorized = PaymentState.FAILED, 0
            p.remember(FAIL, ref.stripped)

    @rule(payment_id=st.one_of(payments, st.just(UNKNOWN_PAYMENT)), reason=texts(500))
    def void(self, payment_id: UUID, reason: Text) -> None:
        p = self.payment_or_none(payment_id)
        expected = (
            Rejected.of(PAYMENT_NOT_FOUND)
            if p is None
            else first_rejection(
                (not reason.valid, INVALID_ORDER),
                (p.state is not PaymentState.AUTHORIZED, PAYMENT_TRANSITION),
            )
            or Accepted(("PaymentVoided",))
        )
        if self.run(
            lambda: self.order.void_payment(
                payment_id, reason.value, meta=new_meta(), now=self.now
            ),
            expected,
            "void",
        ):
            assert p is not None
            p.state, p.authorized = PaymentState.VOIDED, 0

    @precondition(
        lambda self: any(p.state is PaymentState.AUTHORIZED for p in self.model.payments.values())
    )
    @rule(data=st.data())
    def void_an_authorization(self, data: st.DataObject) -> None:
        held = sorted(
            pid for pid, p in self.model.payments.items() if p.state is PaymentState.AUTHORIZED
        )
        payment_id = data.draw(st.sampled_from(held), label="payment_id")
        self.void(payment_id, Text("customer switched cards", True))

    @precondition(lambda self: self.authorizable())
    @rule(data=st.data())
    def a_customer_switches_cards(self, data: st.DataObject) -> None:
        """An authorization is voided and a new attempt authorized: a void is not final."""
        payment_id = data.draw(st.sampled_from(self.authorizable()), label="payment_id")
        p = self.model.payments[payment_id]
        start = len(self.log.events)
        self.authorize(payment_id, _Fixed(cny(p.uncaptured)), Text(p.fresh_ref(AUTHORIZE), True))
        self.void(payment_id, Text("customer switched cards", True))
        self.authorize(payment_id, _Fixed(cny(p.uncaptured)), Text(p.fresh_ref(AUTHORIZE), True))
        recorded = [type(e).__name__ for e in self.log.events[start:]]
        assert recorded == ["PaymentAuthorized", "PaymentVoided", "PaymentAuthorized"]
        assert self.order.payments[payment_id].state is PaymentState.AUTHORIZED

    def voided(self) -> list[UUID]:
        return sorted(
            pid for pid, p in self.model.payments.items() if p.state is PaymentState.VOIDED
        )

    @precondition(lambda self: self.voided())
    @rule(target=captures, data=st.data(), capture=st.booleans(), auto_release=st.booleans())
    def after_a_void(self, data: st.DataObject, capture: bool, auto_release: bool) -> object:
        """A void is not the end: a new attempt may be authorized (while the order awaits
        payment), and money the provider says it took anyway is recorded (on any order,
        after the voids that cancelling or expiring it makes as well)."""
        payment_id = data.draw(st.sampled_from(self.voided()), label="payment_id")
        p = self.model.payments[payment_id]
        if capture:
            amount = cny(data.draw(st.integers(1, p.uncaptured), label="amount"))
            ref = Text(p.fresh_ref(CAPTURE), True)
            return self._capture(payment_id, amount, ref, auto_release, "capture")
        self.authorize(payment_id, _Fixed(cny(p.uncaptured)), Text(p.fresh_ref(AUTHORIZE), True))
        return multiple()

    def _refund(self, payment_id: UUID, amount: Money, ref: Text, reason: Text) -> object:
        p = self.payment_or_none(payment_id)
        expected: Outcome
        if p is None:
            expected = Rejected.of(PAYMENT_NOT_FOUND)
        elif not ref.valid:
            expected = Rejected.of(INVALID_ORDER)
        elif p.has_seen(REFUND, ref.stripped):
            expected = Accepted((), False)
        else:
            expected = first_rejection(
                (not reason.valid, INVALID_ORDER),
                (amount.currency != CNY, INVALID_ORDER),
                (amount.amount <= 0, VALUE_INVALID),
                (amount.amount > p.net_captured, REFUND_EXCEEDS),
            ) or Accepted(("PaymentRefunded",), True)
        if not self.run(
            lambda: self.order.refund_payment(
                payment_id,
                amount,
                refund_ref=ref.value,
                reason=reason.value,
                meta=new_meta(),
                now=self.now,
            ),
            expected,
            "refund",
        ):
            return multiple()
        assert p is not None
        p.refunded += amount.amount
        p.remember(REFUND, ref.stripped)
        return (payment_id, ref.value)

    @rule(
        target=refunds,
        payment_id=st.one_of(payments, st.just(UNKNOWN_PAYMENT)),
        data=st.data(),
        ref=refs(allow_empty=False),
        reason=texts(500),
    )
    def refund(self, payment_id: UUID, data: st.DataObject, ref: Text, reason: Text) -> object:
        p = self.payment_or_none(payment_id)
        amount = data.draw(amounts(p.net_captured if p else 100), label="amount")
        return self._refund(payment_id, amount, ref, reason)

    def refundable(self) -> list[UUID]:
        return sorted(pid for pid, p in self.model.payments.items() if p.net_captured > 0)

    @precondition(lambda self: self.refundable())
    @rule(target=refunds, data=st.data(), ref=USUAL_REFS)
    def refund_part_of_a_capture(self, data: st.DataObject, ref: Text) -> object:
        payment_id = data.draw(st.sampled_from(self.refundable()), label="payment_id")
        p = self.model.payments[payment_id]
        amount = cny(data.draw(st.integers(1, p.net_captured), label="amount"))
        return self._refund(payment_id, amount, ref, Text("customer asked", True))

    @precondition(lambda self: any(p.refunded > 0 for p in self.model.payments.values()))
    @rule(data=st.data())
    def refund_more_than_is_held(self, data: st.DataObject) -> None:
        """After a refund, a payment holds less than it ever captured: a refund above what
        it holds is refused even when it is within what was captured."""
        refunded = sorted(pid for pid, p in self.model.payments.items() if p.refunded > 0)
        payment_id = data.draw(st.sampled_from(refunded), label="payment_id")
        p = self.model.payments[payment_id]
        assert p.net_captured + 1 <= p.captured
        ref = Text(p.fresh_ref(REFUND), True)
        self._refund(payment_id, cny(p.net_captured + 1), ref, Text("refund too much", True))

    @rule(refund=refunds, data=st.data())
    def a_refund_is_sent_again(self, refund: tuple[UUID, str], data: st.DataObject) -> None:
        payment_id, ref = refund
        amount = data.draw(amounts(100), label="amount")
        self.run(
            lambda: self.order.refund_payment(
                payment_id, amount, refund_ref=ref, reason="again", meta=new_meta(), now=self.now
            ),
            Accepted((), False),
            "refund again",
        )

    # --- one reference for several actions ----------------------------------------------------

    def check_recorded_under(
        self, payment_id: UUID, ref: str, start: int, *actions: ProviderAction
    ) -> None:
        """The payment events recorded since event ``start`` are one for each of ``actions``,
        in that order, all under ``ref``, and the payment remembers ``ref`` for each."""
        recorded: list[tuple[ProviderAction, str]] = []
        for e in self.log.events[start:]:
            if isinstance(e, Order.PaymentAuthorized):
                recorded.append((AUTHORIZE, e.provider_ref))
            elif isinstance(e, Order.PaymentCaptured):
                recorded.append((CAPTURE, e.provider_ref))
            elif isinstance(e, Order.PaymentRefunded):
                recorded.append((REFUND, e.refund_ref))
            else:
                continue
            assert e.payment_id == payment_id
        assert recorded == [(action, ref) for action in actions], f"recorded {recorded}"
        payment = self.order.payments[payment_id]
        for action in actions:
            assert payment.has_seen(action, ref)
            assert f"{action.value}:{ref}" in payment.provider_refs

    def capturable(self) -> list[UUID]:
        return sorted(pid for pid, p in self.model.payments.items() if p.uncaptured > 0)

    @precondition(lambda self: self.capturable() or self.refundable())
    @rule(data=st.data(), auto_release=st.booleans())
    def one_reference_for_two_actions(self, data: st.DataObject, auto_release: bool) -> None:
        """A provider uses one transaction id for an authorization and its capture, for a
        capture and its refund, or for a refund of everything held and the capture that
        takes it anew: both are recorded, neither is taken for a retry of the other."""
        pairs = {
            (AUTHORIZE, CAPTURE): self.authorizable(),
            (CAPTURE, REFUND): self.capturable(),
            (REFUND, CAPTURE): self.refundable(),
        }
        pair = data.draw(st.sampled_from([pair for pair, pids in pairs.items() if pids]))
        payment_id = data.draw(st.sampled_from(pairs[pair]), label="payment_id")
        p = self.model.payments[payment_id]
        ref = Text(p.fresh_ref(*pair), True)
        captured_before, start = p.captured, len(self.log.events)
        if pair == (AUTHORIZE, CAPTURE):
            self.authorize(payment_id, _Fixed(cny(p.uncaptured)), ref)
            amount = data.draw(st.integers(1, p.uncaptured), label="amount")
            self._capture(payment_id, cny(amount), ref, auto_release, "capture")
        elif pair == (CAPTURE, REFUND):
            amount = data.draw(st.integers(1, p.uncaptured), label="amount")
            self._capture(payment_id, cny(amount), ref, auto_release, "capture")
            amount = data.draw(st.integers(1, p.net_captured), label="refund")
            self._refund(payment_id, cny(amount), ref, Text("returned", True))
        else:
            self._refund(payment_id, cny(p.net_captured), ref, Text("charged twice", True))
            assert p.uncaptured == p.amount
            self._capture(payment_id, cny(p.amount), ref, auto_release, "capture")
            # over its life the payment captured more than it holds, maybe more than its amount
            payment = self.order.payments[payment_id]
            assert payment.fully_captured
            assert payment.captured == cny(captured_before + p.amount)
        self.check_recorded_under(payment_id, ref.value, start, *pair)

    # --- lifecycle --------------------------------------------------------------------------

    @rule(auto_release=st.booleans())
    def confirm_cash_on_delivery(self, auto_release: bool) -> None:
        model = self.model
        cod = next((p for p in model.payments.values() if p.method is COD), None)
        expected = first_rejection(
            (cod is None, ORDER_TRANSITION),
            (model.status is not AWAITING, ORDER_TRANSITION),
            (not model.online_captured, ORDER_TRANSITION),
        ) or Accepted(
            ("CashOnDeliveryConfirmed", "ReleasedToFulfilment")
            if auto_release
            else ("CashOnDeliveryConfirmed",)
        )
        if self.run(
            lambda: self.order.confirm_cash_on_delivery(
                meta=new_meta(), now=self.now, auto_release=auto_release
            ),
            expected,
            "confirm COD",
        ):
            assert cod is not None
            confirmed = next(
                e for e in self.log.events if isinstance(e, Order.CashOnDeliveryConfirmed)
            )
            assert confirmed.amount_due_on_delivery == cny(cod.uncaptured)
            model.status = OrderStatus.READY_TO_SHIP if auto_release else OrderStatus.COD_CONFIRMED

    @rule()
    def release_to_fulfilment(self) -> None:
        releasable = self.model.status in (OrderStatus.PAID, OrderStatus.COD_CONFIRMED)
        expected: Outcome = (
            Accepted(("ReleasedToFulfilment",)) if releasable else Rejected.of(ORDER_TRANSITION)
        )
        if self.run(
            lambda: self.order.release_to_fulfilment(meta=new_meta(), now=self.now),
            expected,
            "release",
        ):
            self.model.status = OrderStatus.READY_TO_SHIP

    @rule(reason=texts(500))
    def cancel(self, reason: Text) -> None:
        model = self.model
        authorized = sum(p.state is PaymentState.AUTHORIZED for p in model.payments.values())
        expected = first_rejection(
            (not reason.valid, INVALID_ORDER),
            (model.status not in CANCELLABLE, NOT_CANCELLABLE),
        ) or Accepted(("Cancelled",) + ("PaymentVoided",) * authorized)
        previous = model.status
        if self.run(
            lambda: self.order.cancel(reason.value, meta=new_meta(), now=self.now),
            expected,
            "cancel",
        ):
            model.void_authorizations()
            model.status = OrderStatus.CANCELLED
            cancelled = next(e for e in self.log.events if isinstance(e, Order.Cancelled))
            assert cancelled.previous_status is previous

    @rule()
    def expire(self) -> None:
        model = self.model
        authorized = sum(p.state is PaymentState.AUTHORIZED for p in model.payments.values())
        expected = first_rejection(
            (model.status is not AWAITING, NOT_EXPIRABLE),
            (self.now < model.due_at, NOT_EXPIRABLE),
        ) or Accepted(("Expired",) + ("PaymentVoided",) * authorized)
        if self.run(lambda: self.order.expire(meta=new_meta(), now=self.now), expected, "expire"):
            model.void_authorizations()
            model.status = OrderStatus.EXPIRED

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def payments_stay_within_their_amounts(self) -> None:
        """A payment never holds more than its amount, net of refunds (captured alone may
        exceed it once refunded money was captured again), and refunds never exceed what
        was captured."""
        for payment in self.order.payments.values():
            assert payment.amount.currency == payment.captured.currency == CNY
            assert payment.refunded.currency == payment.authorized.currency == CNY
            assert 0 <= payment.refunded.amount <= payment.captured.amount
            net = payment.captured.amount - payment.refunded.amount
            assert 0 <= net <= payment.amount.amount
            assert payment.net_captured == payment.refundable == cny(net)
            assert payment.uncaptured == cny(payment.amount.amount - net)
            assert payment.fully_captured is (net == payment.amount.amount)
            assert 0 <= payment.authorized.amount <= payment.amount.amount
            assert len(set(payment.provider_refs)) == len(payment.provider_refs)

    @invariant()
    def refunds_never_exceed_what_was_captured(self) -> None:
        order = self.order
        assert order.refunded <= order.captured
        assert order.refund_due.amount >= 0
        # (cancelled and expired are the terminal statuses that this machine reaches)
        if order.status in ENDED_UNFULFILLED:
            assert order.refund_due == order.captured - order.refunded
        else:
            assert order.refund_due == cny(0)

    @invariant()
    def a_terminal_status_never_changes(self) -> None:
        status = self.order.status
        if self.terminal is not None:
            assert status is self.terminal, f"left {self.terminal} for {status}"
        elif status.is_terminal:
            self.terminal = status

    @invariant()
    def the_status_moves_only_along_allowed_edges(self) -> None:
        status = AWAITING
        for e in self.log.events[1:]:
            name = type(e).__name__
            if name in MOVES_TO:
                assert status in MOVES_FROM[name], f"{name} from {status}"
                if isinstance(e, Order.Expired):
                    assert e.timestamp >= e.payment_due_at == self.model.due_at
                if isinstance(e, Order.Cancelled):
                    assert e.previous_status is status
                status = MOVES_TO[name]
            elif isinstance(e, Order.PaymentAuthorized):
                assert status is AWAITING, "only an unpaid order takes authorizations"
            elif status.is_terminal:
                assert name in AFTER_THE_END, f"{name} on a {status} order"
        assert self.order.status is status

    @invariant()
    def state_matches_the_model(self) -> None:
        order, model = self.order, self.model
        assert order.status is model.status
        assert order.payment_due_at == model.due_at
        assert list(order.payments) == list(model.payments)
        for pid, expected in model.payments.items():
            payment = order.payments[pid]
            assert payment.payment_id == pid
            assert payment.method is expected.method
            assert payment.state is expected.state
            assert payment.amount == cny(expected.amount)
            assert payment.authorized == cny(expected.authorized)
            assert payment.captured == cny(expected.captured)
            assert payment.refunded == cny(expected.refunded)
            assert payment.uncaptured == cny(expected.uncaptured)
            assert payment.fully_captured is expected.fully_captured
            assert set(payment.provider_refs) == {
                f"{action.value}:{ref}" for action, ref in expected.refs
            }
            check_refs_per_action(payment, expected)
        assert order.is_paid is model.online_captured
        assert order.captured == cny(sum(p.captured for p in model.payments.values()))
        assert order.refunded == cny(sum(p.refunded for p in model.payments.values()))

    @invariant()
    def the_placed_figures_add_up(self) -> None:
        order, spec = self.order, self.spec
        assert order.subtotal == cny(sum(line.line_total.amount for line in order.lines))
        discounts = sum(d.amount.amount for d in order.discounts)
        assert order.total == order.subtotal + order.shipping_fee - cny(discounts)
        assert order.total == cny(spec.total)
        assert sum(p.amount.amount for p in order.payments.values()) == spec.total

    @invariant()
    def history_replays_to_the_same_order(self) -> None:
        # A step that recorded nothing left the order as it was (``perform`` checks that
        # every command that records nothing changes nothing, and nothing else touches the
        # order), so only a longer history needs folding again.
        if len(self.log.events) != self.replayed:
            self.log.check_rebuilds(self.order)
            self.replayed = len(self.log.events)


OrderMachine.TestCase.settings = settings(max_examples=250, stateful_step_count=40)
TestOrderStateMachine = OrderMachine.TestCase


# --- plain specifications -------------------------------------------------------------------


@given(spec=order_specs())
def test_a_valid_order_is_placed_awaiting_every_planned_payment(spec: OrderSpec) -> None:
    order = spec.place(START)
    assert order.status is AWAITING
    assert order.total == cny(spec.total)
    assert [(p.method, p.amount) for p in order.payments.values()] == [
        (entry.method, entry.amount) for entry in spec.plan
    ]
    assert all(p.state is PaymentState.PENDING for p in order.payments.values())
    assert order.refund_due == cny(0)
    log = EventLog()
    log.collect(order)
    log.check_rebuilds(order)


def _with_line(spec: OrderSpec, index: int, **changes: Any) -> OrderSpec:
    lines = list(spec.lines)
    lines[index] = dataclasses.replace(lines[index], **changes)
    return dataclasses.replace(spec, lines=tuple(lines))


def _with_plan(spec: OrderSpec, *plan: PlannedPayment) -> OrderSpec:
    return dataclasses.replace(spec, plan=plan)


def _pays_too_little(spec: OrderSpec) -> OrderSpec:
    if len(spec.plan) > 1:
        return _with_plan(spec, *spec.plan[:-1])
    (only,) = spec.plan
    return _with_plan(spec, PlannedPayment(only.method, only.amount - cny(1)))


#: A defect, how to put it into a valid order, and the error that placing it must raise.
DEFECTS: dict[str, tuple[Callable[[OrderSpec], OrderSpec], type[DomainError]]] = {
    "no lines": (lambda s: dataclasses.replace(s, lines=()), InvalidOrder),
    "lines numbered from 0": (
        lambda s: dataclasses.replace(
            s, lines=tuple(dataclasses.replace(li, line_no=li.line_no - 1) for li in s.lines)
        ),
        InvalidOrder,
    ),
    "zero quantity": (lambda s: _with_line(s, 0, quantity=0), InvalidOrder),
    "negative quantity": (lambda s: _with_line(s, 0, quantity=-3), InvalidOrder),
    "quantity over the limit": (
        lambda s: _with_line(s, 0, quantity=MAX_LINE_QUANTITY + 1),
        InvalidOrder,
    ),
    "a SKU twice in one group": (
        lambda s: dataclasses.replace(
            s, lines=(*s.lines, dataclasses.replace(s.lines[0], line_no=len(s.lines) + 1))
        ),
        InvalidOrder,
    ),
    "an unknown delivery group": (
        lambda s: _with_line(s, 0, delivery_group="nowhere-x"),
        InvalidOrder,
    ),
    "a delivery group without lines": (
        lambda s: dataclasses.replace(
            s, groups=(*s.groups, DeliveryGroup("unused-zz", s.groups[0].address))
        ),
        InvalidOrder,
    ),
    "a delivery group twice": (
        lambda s: dataclasses.replace(s, groups=(*s.groups, s.groups[0])),
        InvalidOrder,
    ),
    "a line in another currency": (
        lambda s: _with_line(s, -1, unit_price=Money(s.lines[-1].unit_price.amount, "USD")),
        InvalidOrder,
    ),
    "a free line": (lambda s: _with_line(s, 0, unit_price=cny(0)), InvalidOrder),
    "a negative shipping fee": (
        lambda s: dataclasses.replace(s, shipping_fee=cny(-1)),
        InvalidOrder,
    ),
    "a shipping fee in another currency": (
        lambda s: dataclasses.replace(s, shipping_fee=Money(s.shipping_fee.amount, "USD")),
        InvalidOrder,
    ),
    "a discount in another currency": (
        lambda s: dataclasses.replace(s, discounts=(*s.discounts, Discount("FX", Money(1, "USD")))),
        InvalidOrder,
    ),
    "a discount code twice": (
        lambda s: dataclasses.replace(
            s, discounts=(*s.discounts, Discount("TWICE", cny(1)), Discount("TWICE", cny(1)))
        ),
        InvalidOrder,
    ),
    "discounts above the order amount": (
        lambda s: dataclasses.replace(
            s, discounts=(*s.discounts, Discount("TOO-MUCH", cny(s.total + 1)))
        ),
        InvalidOrder,
    ),
    "a customer id with spaces": (
        lambda s: dataclasses.replace(s, customer_id="not an id"),
        InvalidOrder,
    ),
    "a customer id ending in a newline": (
        lambda s: dataclasses.replace(s, customer_id=s.customer_id + "\n"),
        InvalidOrder,
    ),
    "a line total out of range": (
        lambda s: _with_line(s, 0, unit_price=cny(MAX_MINOR_UNITS), quantity=2),
        InvalidOrder,
    ),
    "a subtotal out of range": (
        lambda s: dataclasses.replace(
            s,
            lines=(
                *s.lines,
                dataclasses.replace(
                    s.lines[0],
                    line_no=len(s.lines) + 1,
                    sku="BIG-1",
                    unit_price=cny(MAX_MINOR_UNITS),
                    quantity=1,
                ),
            ),
        ),
        InvalidOrder,
    ),
    "a shipping fee that takes the total out of range": (
        lambda s: dataclasses.replace(s, shipping_fee=cny(MAX_MINOR_UNITS)),
        InvalidOrder,
    ),
    "discounts that add up out of range": (
        lambda s: dataclasses.replace(
            s,
            discounts=(Discount("BIG-1", cny(MAX_MINOR_UNITS)), Discount("BIG-2", cny(10))),
        ),
        InvalidOrder,
    ),
    "a payment deadline now": (
        lambda s: dataclasses.replace(s, due_in=timedelta(0)),
        InvalidOrder,
    ),
    "a payment deadline in the past": (
        lambda s: dataclasses.replace(s, due_in=timedelta(minutes=-5)),
        InvalidOrder,
    ),
    "no payment plan": (_with_plan, PaymentPlanMismatch),
    "a plan that pays too much": (
        lambda s: _with_plan(
            s, PlannedPayment(s.plan[0].method, s.plan[0].amount + cny(1)), *s.plan[1:]
        ),
        PaymentPlanMismatch,
    ),
    "a plan that pays too little": (_pays_too_little, PaymentPlanMismatch),
    "a zero payment": (
        lambda s: _with_plan(s, *s.plan, PlannedPayment(PaymentMethod.ALIPAY, cny(0))),
        PaymentPlanMismatch,
    ),
    "a negative payment": (
        lambda s: _with_plan(
            s,
            PlannedPayment(s.plan[0].method, s.plan[0].amount + cny(5)),
            *s.plan[1:],
            PlannedPayment(PaymentMethod.CARD, cny(-5)),
        ),
        PaymentPlanMismatch,
    ),
    "two cash-on-delivery payments": (
        lambda s: _with_plan(
            s,
            PlannedPayment(COD, s.plan[0].amount + cny(1)),
            *s.plan[1:],
            PlannedPayment(COD, cny(1)),
        ),
        PaymentPlanMismatch,
    ),
    "a plan in another currency": (
        lambda s: _with_plan(
            s, *(PlannedPayment(p.method, Money(p.amount.amount, "USD")) for p in s.plan)
        ),
        PaymentPlanMismatch,
    ),
    "six payments": (
        lambda s: _with_plan(s, *s.plan, *[PlannedPayment(PaymentMethod.CARD, cny(1))] * 6),
        PaymentPlanMismatch,
    ),
}


@given(spec=order_specs(), defect=st.sampled_from(sorted(DEFECTS)))
def test_an_invalid_order_is_refused_with_a_typed_error(spec: OrderSpec, defect: str) -> None:
    break_it, error = DEFECTS[defect]
    broken = break_it(spec)
    with pytest.raises(error) as refused:
        broken.place(START)
    assert type(refused.value) is error, f"{defect}: raised {refused.value!r}"
    assert refused.value.code == error.code


@given(
    spec=order_specs(),
    moves=st.lists(st.tuples(st.booleans(), st.integers(-5, 50_000)), max_size=12),
    cancel_first=st.booleans(),
)
def test_refunds_never_exceed_what_was_captured(
    spec: OrderSpec, moves: list[tuple[bool, int]], cancel_first: bool
) -> None:
    """Captures and refunds, interleaved: one reference serves a capture and a refund,
    what is refunded is due again, and a payment never holds more than its amount."""
    order = spec.place(START)
    if cancel_first:
        order.cancel("changed my mind", meta=new_meta(), now=START)
    payment_ids = list(order.payments)
    for n, (is_refund, amount) in enumerate(moves):
        pid = payment_ids[n % len(payment_ids)]
        before = order.payments[pid]
        limit = (before.refundable if is_refund else before.uncaptured).amount
        try:
            if is_refund:
                order.refund_payment(
                    pid,
                    cny(amount),
                    refund_ref=f"T-{n}",
                    reason="returned",
                    meta=new_meta(),
                    now=START,
                )
            else:
                # under the reference of the move before: often a refund of this payment
                order.capture_payment(
                    pid, cny(amount), provider_ref=f"T-{n - 1}", meta=new_meta(), now=START
                )
        except DomainError as refused:
            assert amount <= 0 or amount > limit
            assert refused.code in (VALUE_INVALID, REFUND_EXCEEDS if is_refund else CAPTURE_EXCEEDS)
        else:
            assert 0 < amount <= limit
            after = order.payments[pid]
            change = -amount if is_refund else amount
            assert after.net_captured == before.net_captured + cny(change)
        for payment in order.payments.values():
            assert 0 <= payment.refunded.amount <= payment.captured.amount
            assert 0 <= payment.net_captured.amount <= payment.amount.amount
        assert order.refunded <= order.captured
    assert order.refund_due.amount >= 0


@given(spec=order_specs(), late_by=st.integers(-120, 120))
def test_an_unpaid_order_expires_only_once_its_deadline_has_passed(
    spec: OrderSpec, late_by: int
) -> None:
    order = spec.place(START)
    order.collect_events()
    now = order.payment_due_at + timedelta(seconds=late_by)
    if late_by < 0:
        with pytest.raises(DomainError) as refused:
            order.expire(meta=new_meta(), now=now)
        assert refused.value.code == NOT_EXPIRABLE
        assert order.pending_events == []
        assert order.status is AWAITING
    else:
        order.expire(meta=new_meta(), now=now)
        assert order.status is OrderStatus.EXPIRED
        with pytest.raises(DomainError):
            order.cancel("too late", meta=new_meta(), now=now)
        assert order.status is OrderStatus.EXPIRED


#: Codes are matched in full: a trailing newline is not part of a valid one.
NEWLINE_ENDED: dict[str, tuple[Callable[[], object], type[DomainError]]] = {
    "a discount code": (lambda: Discount.create("COUPON-1\n", cny(1)), InvalidOrder),
    "a country": (
        lambda: Address.create(
            recipient="Li Lei",
            phone="021-6000-0000",
            line1="1 Road",
            city="Hangzhou",
            country="CN\n",
        ),
        InvalidOrder,
    ),
    "a currency": (lambda: Money(1, "CNY\n"), InvalidValue),
}


@pytest.mark.parametrize("what", sorted(NEWLINE_ENDED))
def test_a_code_ending_in_a_newline_is_refused(what: str) -> None:
    make, error = NEWLINE_ENDED[what]
    with pytest.raises(error) as refused:
        make()
    assert type(refused.value) is error
