"""After-sales cases of one order never give back more than was delivered or captured:
whatever valid and invalid commands arrive, in any order, the order's return ledger never
claims more of a line than was delivered, each case refunds at most what it is worth
(accepted units of a return, every unit of an approved refund-only case, nothing for an
exchange) and a refund reference counts once, the cases together stay within what the order
captured, inspection judges every requested unit once, an exchange gets one replacement,
and a closed case stays closed.

The machine pairs the case and the ledger the way ``application/aftersales.py`` and
``application/aftersales_flows.py`` do: the ledger claims a case's units when it is
requested (both or neither), gives them all back when the case is rejected or closed
before its goods were judged (unless a refund-only case already refunded money), and gives
back the units rejected at inspection. A refund is checked by the case, then by the order
(a plain model of captured minus refunded here), and only then recorded on the case.

A note on refunds and closed cases: the domain deliberately still records a refund on a
closed case ("money moved before closing still counts", for the case-refund recorder), and
``check_refund`` lets a brand-new refund through on a closed case too. The machine follows
the domain there; every other command on a closed case but linking an article must be
refused. (Together with closing releasing a refund-only case's claim, a new refund on a
closed case lets the same units be claimed and refunded by a second case; that is not
checked here: it would need "every refund is backed by units its case still claims".)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import settings
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
from ordertrail.domain.aftersales import (
    AfterSalesCase,
    CaseKind,
    CaseLine,
    CaseReason,
    CaseStatus,
    ClaimLine,
    LineInspection,
    ReturnLedger,
)
from ordertrail.domain.errors import DomainError, RefundExceedsCaptured
from ordertrail.domain.money import Money
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

INVALID = "aftersales.invalid_case"
TRANSITION = "aftersales.invalid_transition"
EXCEEDS_DELIVERED = "aftersales.exceeds_delivered"
EXCEEDS_CASE = "aftersales.refund_exceeds_case"
EXCEEDS_CAPTURED = "payment.refund_exceeds_captured"

CURRENCY = "CNY"
ORDER_ID = UUID(int=7)
SKUS = ("TEA-1", "CUP-1", "POT-1")
MAX_CASES = 5
ARTICLES = tuple(UUID(int=n) for n in range(501, 504))
#: Statuses in which a case's goods have not been judged: closing releases their claim.
UNJUDGED = (CaseStatus.REQUESTED, CaseStatus.APPROVED, CaseStatus.RETURN_RECEIVED)


# --- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLine:
    line_no: int
    sku: str
    quantity: int
    unit_price: int


@dataclass
class OrderModel:
    """What the order knows that after-sales depends on: lines, deliveries, money."""

    lines: dict[int, OrderLine]
    delivered: dict[int, int]
    captured: int
    refunds: dict[tuple[UUID, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(line.unit_price * line.quantity for line in self.lines.values())

    @property
    def refunded(self) -> int:
        return sum(self.refunds.values())

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded


@dataclass
class CaseModel:
    case: AfterSalesCase
    log: EventLog
    kind: CaseKind
    lines: tuple[CaseLine, ...]
    claim: dict[int, int]  # the units this case still claims in the ledger
    status: CaseStatus = CaseStatus.REQUESTED
    approved: bool = False
    inspections: dict[int, tuple[int, int]] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)
    replacement: UUID | None = None
    articles: list[UUID] = field(default_factory=list)
    released: bool = False

    def __repr__(self) -> str:  # what a failing example prints
        return f"<{self.kind.value} case {self.case.id.int} {self.status.value}>"

    @property
    def value(self) -> int:
        return sum(line.unit_price.amount * line.quantity for line in self.lines)

    @property
    def refund_limit(self) -> int:
        if self.kind is CaseKind.REFUND_ONLY:
            return self.value if self.approved else 0
        if self.kind is CaseKind.RETURN:
            return sum(
                line.unit_price.amount * self.inspections.get(line.line_no, (0, 0))[0]
                for line in self.lines
            )
        return 0

    @property
    def refunded(self) -> int:
        return sum(self.refunds.values())


# --- strategies ---------------------------------------------------------------------------

REQUEST_FLAWS = (
    "no lines",
    "a line twice",
    "zero quantity",
    "quantity as bool",
    "two currencies",
    "unknown kind",
    "unknown reason",
    "bad customer id",
    "bad photo URL",
    "too many photos",
    "description too long",
)
INSPECTION_FLAWS = (
    "a line missing",
    "a line it does not have",
    "a line twice",
    "one unit too many",
    "one unit too few",
    "negative",
    "count as bool",
    "note too long",
)
kinds = st.sampled_from(CaseKind)
flaws = st.one_of(st.just("none"), st.just("none"), st.just("none"), st.sampled_from(REQUEST_FLAWS))
refund_amounts = st.one_of(
    st.sampled_from(["all", "all", "half", "one more", "one", "zero", "negative", "order + 1"]),
    st.integers(1, 60_000),
)


class AfterSalesMachine(RuleBasedStateMachine):
    """One delivered order; customers open return, exchange and refund-only cases about
    it, and staff approve, reject, receive, inspect, refund, replace, link and close them,
    in any order."""

    cases = Bundle("cases")

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = START
        self.order: OrderModel
        self.ledger: ReturnLedger
        self.ledger_log = EventLog()
        self.all_cases: list[CaseModel] = []
        self.refund_commands = 0

    @initialize(
        target=cases,
        quantities=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2)),
        prices=st.tuples(st.integers(1, 20_000), st.integers(1, 20_000), st.integers(1, 20_000)),
        delivered_share=st.tuples(st.integers(1, 4), st.integers(0, 4), st.integers(0, 2)),
        captured_share=st.sampled_from([0, 1, 2, 4, 4, 4]),
        kind=kinds,
        quantity=st.integers(1, 4),
    )
    def a_delivered_order_and_a_first_case(
        self,
        quantities: tuple[int, int, int],
        prices: tuple[int, int, int],
        delivered_share: tuple[int, int, int],
        captured_share: int,
        kind: CaseKind,
        quantity: int,
    ) -> object:
        lines = {
            n: OrderLine(n, sku, ordered, price)
            for n, (sku, ordered, price) in enumerate(
                zip(SKUS, quantities, prices, strict=True), start=1
            )
        }
        delivered = {n: min(share, lines[n].quantity) for n, share in enumerate(delivered_share, 1)}
        self.order = OrderModel(lines, delivered, 0)
        self.order.captured = self.order.total * captured_share // 4  # none, some, or all
        self.ledger = ReturnLedger.open(ORDER_ID, meta=new_meta(), now=self.now)
        assert self.ledger.id == ids.return_ledger_id(ORDER_ID)
        assert [type(e).__name__ for e in self.ledger_log.collect(self.ledger)] == ["Opened"]
        first = min(quantity, delivered[1])
        return self.customer_requests_a_case(
            kind, CaseReason.QUALITY_PROBLEM, [(1, first)], "none", as_text=False
        )

    # --- the order's side -------------------------------------------------------------------

    @rule(minutes=st.integers(0, 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(line_no=st.sampled_from([1, 2, 3]), quantity=st.integers(1, 3))
    def more_units_are_delivered(self, line_no: int, quantity: int) -> None:
        ordered = self.order.lines[line_no].quantity
        self.order.delivered[line_no] = min(ordered, self.order.delivered[line_no] + quantity)

    @rule(amount=st.integers(1, 40_000))
    def more_money_is_captured(self, amount: int) -> None:
        """Cash collected on delivery, or a late online capture: never beyond the total."""
        self.order.captured = min(self.order.total, self.order.captured + amount)

    # --- opening a case ---------------------------------------------------------------------

    @precondition(lambda self: len(self.all_cases) < MAX_CASES)
    @rule(
        target=cases,
        kind=kinds,
        reason=st.sampled_from(CaseReason),
        wanted=st.lists(
            st.tuples(st.sampled_from([1, 2, 3]), st.integers(1, 5)),
            min_size=1,
            max_size=3,
            unique_by=lambda pair: pair[0],
        ),
        flaw=flaws,
        as_text=st.booleans(),
    )
    def customer_requests_a_case(
        self,
        kind: CaseKind,
        reason: CaseReason,
        wanted: list[tuple[int, int]],
        flaw: str,
        as_text: bool,
    ) -> object:
        order = self.order
        lines = [
            CaseLine(n, order.lines[n].sku, q, Money(order.lines[n].unit_price, CURRENCY))
            for n, q in wanted
        ]
        given_kind: CaseKind | str = kind.value if as_text else kind  # the API sends text
        given_reason: CaseReason | str = reason.value if as_text else reason
        customer, description = "li-lei", "dented"
        photos: tuple[str, ...] = ("https://img.example.com/1.jpg",)
        if flaw == "no lines":
            lines = []
        elif flaw == "a line twice":
            lines = [*lines, lines[0]]
        elif flaw == "zero quantity":
            lines[0] = CaseLine(lines[0].line_no, lines[0].sku, 0, lines[0].unit_price)
        elif flaw == "quantity as bool":
            lines[0] = CaseLine(lines[0].line_no, lines[0].sku, True, lines[0].unit_price)
        elif flaw == "two currencies":
            price = Money(lines[-1].unit_price.amount, "USD")
            lines[-1] = CaseLine(lines[-1].line_no, lines[-1].sku, lines[-1].quantity, price)
            if len(lines) == 1:
                first = order.lines[1 if lines[0].line_no != 1 else 2]
                lines.append(CaseLine(first.line_no, first.sku, 1, Money(1, CURRENCY)))
        elif flaw == "unknown kind":
            given_kind = "repair"
        elif flaw == "unknown reason":
            given_reason = "bored"
        elif flaw == "bad customer id":
            customer = "li lei"
        elif flaw == "bad photo URL":
            photos = ("file:///etc/passwd",)
        elif flaw == "too many photos":
            photos = tuple(f"https://img.example.com/{n}.jpg" for n in range(11))
        elif flaw == "description too long":
            description = "x" * 2001
        number = len(self.all_cases) + 1
        case_id = UUID(int=number)
        expected: Outcome
        if flaw != "none":
            expected = Rejected.of(INVALID)
        else:
            expected = first_rejection(
                *(
                    (
                        line.quantity
                        > order.delivered[line.line_no]
                        - self.ledger.claimed_quantity(line.line_no),
                        EXCEEDS_DELIVERED,
                    )
                    for line in lines
                )
            ) or Accepted(("Claimed",), True)
        made: list[AfterSalesCase] = []

        def request() -> bool:
            """Decided together, saved together: the case and the ledger's claim."""
            case = AfterSalesCase.request(
                case_id=case_id,
                order_id=ORDER_ID,
                customer_id=customer,
                kind=given_kind,
                reason=given_reason,
                lines=lines,
                photo_urls=photos,
                description=description,
                meta=new_meta(),
                now=self.now,
            )
            made.append(case)
            return self.ledger.claim(
                case.id, case.claimed_lines(), dict(order.delivered), meta=new_meta(), now=self.now
            )

        claimed = perform(self.ledger, self.ledger_log, request, expected, "request")
        if not claimed:
            return multiple()  # nothing saved: the case does not exist
        (case,) = made
        log = EventLog()
        assert [type(e).__name__ for e in log.collect(case)] == ["Requested"]
        claim = claimed[0]
        assert isinstance(claim, ReturnLedger.Claimed)
        assert claim.case_id == case.id
        assert claim.lines == tuple(ClaimLine(line.line_no, line.quantity) for line in lines)
        assert case.kind is kind
        assert case.reason is reason
        model = CaseModel(case, log, kind, tuple(lines), {ln.line_no: ln.quantity for ln in lines})
        self.all_cases.append(model)
        return model

    @rule(case=cases)
    def the_same_request_claims_nothing_twice(self, case: CaseModel) -> None:
        """A retried request finds its claim made: even beyond what is left, it is ignored."""
        lines = [ClaimLine(n, 99) for n in self.order.lines]
        perform(
            self.ledger,
            self.ledger_log,
            lambda: self.ledger.claim(
                case.case.id, lines, dict(self.order.delivered), meta=new_meta(), now=self.now
            ),
            Accepted((), False),
            "claim again",
        )

    # --- staff decide -----------------------------------------------------------------------

    @rule(case=cases, note=texts(500, allow_empty=True))
    def staff_approve(self, case: CaseModel, note: Text) -> None:
        expected = first_rejection(
            (case.status is not CaseStatus.REQUESTED, TRANSITION), (not note.valid, INVALID)
        ) or Accepted(("Approved",))
        aggregate = case.case
        if perform(
            aggregate,
            case.log,
            lambda: aggregate.approve(note.value, meta=new_meta(), now=self.now),
            expected,
            "approve",
        ):
            case.status, case.approved = CaseStatus.APPROVED, True

    @rule(case=cases, reason=texts(500))
    def staff_reject(self, case: CaseModel, reason: Text) -> None:
        expected = first_rejection(
            (case.status is not CaseStatus.REQUESTED, TRANSITION), (not reason.valid, INVALID)
        ) or Accepted(("Rejected",))
        aggregate = case.case
        if not perform(
            aggregate,
            case.log,
            lambda: aggregate.reject(reason.value, meta=new_meta(), now=self.now),
            expected,
            "reject",
        ):
            return
        case.status = CaseStatus.REJECTED
        # The application, in the same decision: the case's units may be asked back again.
        self.release(case, aggregate.claimed_lines(), "case rejected", dict(case.claim))

    def release(
        self, case: CaseModel, lines: tuple[ClaimLine, ...], reason: str, freed: dict[int, int]
    ) -> None:
        expected = (
            Accepted((), False) if case.released or not lines else Accepted(("Released",), True)
        )
        events = perform(
            self.ledger,
            self.ledger_log,
            lambda: self.ledger.release(case.case.id, lines, reason, meta=new_meta(), now=self.now),
            expected,
            "release",
        )
        if events:
            released = events[0]
            assert isinstance(released, ReturnLedger.Released)
            assert {ln.line_no: ln.quantity for ln in released.lines} == {
                n: q for n, q in freed.items() if q
            }
            for line_no, quantity in freed.items():
                case.claim[line_no] -= quantity
            case.released = True

    @rule(case=cases, tracking=texts(64, allow_empty=True))
    def warehouse_receives_the_goods(self, case: CaseModel, tracking: Text) -> None:
        expected = first_rejection(
            (case.kind is CaseKind.REFUND_ONLY, TRANSITION),
            (case.status is not CaseStatus.APPROVED, TRANSITION),
            (not tracking.valid, INVALID),
        ) or Accepted(("ReturnReceived",))
        aggregate = case.case
        events = perform(
            aggregate,
            case.log,
            lambda: aggregate.receive_return(
                received_at=self.now, tracking_number=tracking.value, meta=new_meta(), now=self.now
            ),
            expected,
            "receive",
        )
        if events:
            received = events[0]
            assert isinstance(received, AfterSalesCase.ReturnReceived)
            assert received.tracking_number == tracking.stripped
            case.status = CaseStatus.RETURN_RECEIVED

    @rule(
        case=cases,
        data=st.data(),
        flaw=st.one_of(st.just("none"), st.sampled_from(INSPECTION_FLAWS)),
    )
    def warehouse_inspects_the_goods(self, case: CaseModel, data: st.DataObject, flaw: str) -> None:
        judged = {
            line.line_no: data.draw(
                st.integers(0, line.quantity), label=f"accepted of {line.line_no}"
            )
            for line in case.lines
        }
        results = [
            LineInspection(line.line_no, judged[line.line_no], line.quantity - judged[line.line_no])
            for line in case.lines
        ]
        first = results[0]
        if flaw == "a line missing":
            results = results[1:]
        elif flaw == "a line it does not have":
            results.append(LineInspection(9, 0, 1))
        elif flaw == "a line twice":
            results.append(first)
        elif flaw == "one unit too many":
            results[0] = LineInspection(first.line_no, first.accepted + 1, first.rejected)
        elif flaw == "one unit too few" and first.accepted:
            results[0] = LineInspection(first.line_no, first.accepted - 1, first.rejected)
        elif flaw == "one unit too few":
            results[0] = LineInspection(first.line_no, first.accepted, first.rejected - 1)
        elif flaw == "negative":
            results[0] = LineInspection(first.line_no, first.accepted + first.rejected + 1, -1)
        elif flaw == "count as bool":
            line_quantity = first.accepted + first.rejected
            results[0] = LineInspection(first.line_no, True, line_quantity - 1)
        elif flaw == "note too long":
            results[0] = LineInspection(first.line_no, first.accepted, first.rejected, "n" * 501)
        expected = first_rejection(
            (case.status is not CaseStatus.RETURN_RECEIVED, TRANSITION), (flaw != "none", INVALID)
        ) or Accepted(("Inspected",))
        aggregate = case.case
        events = perform(
            aggregate,
            case.log,
            lambda: aggregate.inspect(results, meta=new_meta(), now=self.now),
            expected,
            "inspect",
        )
        if not events:
            return
        inspected = events[0]
        assert isinstance(inspected, AfterSalesCase.Inspected)
        case.status = CaseStatus.INSPECTED
        case.inspections = {
            line.line_no: (judged[line.line_no], line.quantity - judged[line.line_no])
            for line in case.lines
        }
        assert inspected.accepted_value == Money(
            sum(line.unit_price.amount * judged[line.line_no] for line in case.lines), CURRENCY
        )
        # The application, in the same decision: rejected units stop counting as returned.
        rejected = {n: r for n, (_, r) in case.inspections.items()}
        self.release(case, aggregate.rejected_lines(), "units rejected at inspection", rejected)

    @precondition(lambda self: any(c.status is CaseStatus.RETURN_RECEIVED for c in self.all_cases))
    @rule(data=st.data(), flaw=st.one_of(st.just("none"), st.sampled_from(INSPECTION_FLAWS)))
    def warehouse_inspects_goods_it_received(self, data: st.DataObject, flaw: str) -> None:
        """Aim at received returns, so that inspections (valid or not) are judged often."""
        waiting = [c for c in self.all_cases if c.status is CaseStatus.RETURN_RECEIVED]
        case = data.draw(st.sampled_from(waiting), label="case")
        self.warehouse_inspects_the_goods(case, data, flaw)

    @rule(case=cases, data=st.data())
    def the_case_moves_along(self, case: CaseModel, data: st.DataObject) -> None:
        """The next step a case would take in a shop that works: so that long stories (a
        return received, inspected, refunded, then closed) happen often."""
        choose = data.draw
        status, kind = case.status, case.kind
        if case.refunds and not choose(st.integers(0, 3), label="recorder runs again?"):
            self.a_refund_is_recorded_again(data, choose(st.integers(-5, 60_000)), "")
        elif status is CaseStatus.REQUESTED:
            if choose(st.integers(0, 4), label="reject?"):
                self.staff_approve(case, Text("ok", True))
            else:
                self.staff_reject(case, Text("no damage visible", True))
        elif status is CaseStatus.APPROVED and kind is CaseKind.REFUND_ONLY:
            self.staff_refund_the_case(case, choose(refund_amounts, label="amount"), CURRENCY)
        elif status is CaseStatus.APPROVED:
            if kind is CaseKind.EXCHANGE and choose(st.booleans(), label="replace first?"):
                self.staff_arrange_a_replacement(case, UUID(int=801))
            self.warehouse_receives_the_goods(case, Text("SF123", True))
        elif status is CaseStatus.RETURN_RECEIVED:
            flaw = choose(st.one_of(*[st.just("none")] * 2, st.sampled_from(INSPECTION_FLAWS)))
            self.warehouse_inspects_the_goods(case, data, flaw)
        elif (
            status is CaseStatus.INSPECTED
            and kind is CaseKind.RETURN
            and (case.refunded < case.refund_limit)
        ):
            self.staff_refund_the_case(case, choose(refund_amounts, label="amount"), CURRENCY)
        elif status is CaseStatus.INSPECTED and kind is CaseKind.EXCHANGE and not case.replacement:
            self.staff_arrange_a_replacement(case, UUID(int=802))
        elif status is not CaseStatus.CLOSED:
            self.staff_close_the_case(case, Text("resolved", True))

    # --- money ------------------------------------------------------------------------------

    @rule(
        case=cases,
        amount=refund_amounts,
        currency=st.sampled_from([CURRENCY, CURRENCY, CURRENCY, "USD"]),
    )
    def staff_refund_the_case(self, case: CaseModel, amount: int | str, currency: str) -> None:
        """The IssueRefund flow: the case's limits, then the order's (captured minus
        refunded, across all its cases), then the case records it. Its reference comes from
        the command, so it is new each time."""
        order = self.order
        room = case.refund_limit - case.refunded
        named = {
            "all": room,
            "half": room // 2,
            "one more": room + 1,
            "one": 1,
            "zero": 0,
            "negative": -100,
            "order + 1": order.refundable + 1,
        }
        value = named[amount] if isinstance(amount, str) else amount
        self.refund_commands += 1
        reference = f"case:{case.case.id.int}:cmd-{self.refund_commands}"
        due = CaseStatus.APPROVED if case.kind is CaseKind.REFUND_ONLY else CaseStatus.INSPECTED
        expected: Outcome = (
            (Rejected.of(TRANSITION) if case.kind is CaseKind.EXCHANGE else None)
            or first_rejection(
                # A closed case still records money: see the module's note on refunds.
                (case.status not in (due, CaseStatus.CLOSED), TRANSITION),
                (currency != CURRENCY, INVALID),
                (value <= 0, INVALID),
                (currency == CURRENCY and value > room, EXCEEDS_CASE),
            )
            or first_rejection((value > order.refundable, EXCEEDS_CAPTURED))
            or Accepted(("RefundIssued",), True)
        )
        aggregate, money = case.case, Money(value, currency)

        def issue_refund() -> bool:
            aggregate.check_refund(money)  # the case's limits, before money moves
            if money.amount > order.refundable:  # the order's ceiling, across its cases
                raise RefundExceedsCaptured(
                    f"refund of {value} exceeds the {order.refundable} the order can refund"
                )
            return aggregate.issue_refund(
                money, refund_ref=reference, meta=new_meta(), now=self.now
            )

        label = "refund on a closed case" if case.status is CaseStatus.CLOSED else "refund"
        if expected == Rejected.of(EXCEEDS_CAPTURED):
            label += " beyond what the order captured"
        events = perform(aggregate, case.log, issue_refund, expected, label)
        if events:
            issued = events[0]
            assert isinstance(issued, AfterSalesCase.RefundIssued)
            assert (issued.amount, issued.refund_ref) == (money, reference)
            case.refunds[reference] = value
            order.refunds[(aggregate.id, reference)] = value

    @precondition(lambda self: any(c.refund_limit > c.refunded for c in self.all_cases))
    @rule(data=st.data(), amount=refund_amounts)
    def staff_refund_a_case_that_owes_money(self, data: st.DataObject, amount: int | str) -> None:
        """Aim at cases that may still refund, so that the order's ceiling is reached."""
        owing = [c for c in self.all_cases if c.refund_limit > c.refunded]
        case = data.draw(st.sampled_from(owing), label="case")
        self.staff_refund_the_case(case, amount, CURRENCY)

    @precondition(lambda self: any(c.refunds for c in self.all_cases))
    @rule(data=st.data(), amount=st.integers(-5, 60_000), pad=st.sampled_from(["", " "]))
    def a_refund_is_recorded_again(self, data: st.DataObject, amount: int, pad: str) -> None:
        """The case-refund recorder copying a refund the case already has, whatever the
        case's state now and whatever amount it carries: it counts once."""
        case = data.draw(st.sampled_from([c for c in self.all_cases if c.refunds]), label="case")
        reference = data.draw(st.sampled_from(sorted(case.refunds)), label="reference")
        aggregate = case.case
        perform(
            aggregate,
            case.log,
            lambda: aggregate.issue_refund(
                Money(amount, CURRENCY), refund_ref=pad + reference, meta=new_meta(), now=self.now
            ),
            Accepted((), False),
            "refund again",
        )

    @rule(
        case=cases,
        reference=st.sampled_from(["", "   ", "x" * 201, "bad\x00ref"]).map(
            lambda r: Text(r, False)
        ),
    )
    def a_refund_reference_must_be_text(self, case: CaseModel, reference: Text) -> None:
        aggregate = case.case
        perform(
            aggregate,
            case.log,
            lambda: aggregate.issue_refund(
                Money(1, CURRENCY), refund_ref=reference.value, meta=new_meta(), now=self.now
            ),
            Rejected.of(INVALID),
            "refund reference",
        )

    # --- exchanges, articles, closing -------------------------------------------------------

    @rule(case=cases, shipment=st.sampled_from([UUID(int=801), UUID(int=802)]))
    def staff_arrange_a_replacement(self, case: CaseModel, shipment: UUID) -> None:
        expected: Outcome
        if case.kind is not CaseKind.EXCHANGE:
            expected = Rejected.of(TRANSITION)
        elif case.replacement is not None:
            expected = Accepted((), False)
        elif case.status not in (
            CaseStatus.APPROVED,
            CaseStatus.RETURN_RECEIVED,
            CaseStatus.INSPECTED,
        ):
            expected = Rejected.of(TRANSITION)
        elif case.inspections and not any(good for good, _ in case.inspections.values()):
            expected = Rejected.of(TRANSITION)  # nothing accepted: nothing to replace
        else:
            expected = Accepted(("ReplacementArranged",), True)
        aggregate = case.case
        events = perform(
            aggregate,
            case.log,
            lambda: aggregate.arrange_replacement(shipment, meta=new_meta(), now=self.now),
            expected,
            "replace",
        )
        if events:
            arranged = events[0]
            assert isinstance(arranged, AfterSalesCase.ReplacementArranged)
            assert arranged.shipment_id == shipment
            if case.inspections:  # the accepted units, once inspected
                wanted = tuple(
                    ClaimLine(ln.line_no, case.inspections[ln.line_no][0])
                    for ln in case.lines
                    if case.inspections[ln.line_no][0]
                )
            else:
                wanted = tuple(ClaimLine(ln.line_no, ln.quantity) for ln in case.lines)
            assert arranged.lines == wanted
            case.replacement = shipment

    @rule(case=cases, article=st.sampled_from(ARTICLES))
    def staff_link_an_article(self, case: CaseModel, article: UUID) -> None:
        """Allowed in every state, closed included; the same article twice is ignored."""
        aggregate = case.case
        seen = article in case.articles
        if perform(
            aggregate,
            case.log,
            lambda: aggregate.link_article(article, meta=new_meta(), now=self.now),
            Accepted((), False) if seen else Accepted(("ArticleLinked",), True),
            "link",
        ):
            case.articles.append(article)

    @rule(case=cases, resolution=texts(500))
    def staff_close_the_case(self, case: CaseModel, resolution: Text) -> None:
        expected = first_rejection(
            (not resolution.valid, INVALID), (case.status is CaseStatus.CLOSED, TRANSITION)
        ) or Accepted(("Closed",))
        aggregate, before = case.case, case.status
        unjudged = before in UNJUDGED
        keeps_claim = case.kind is CaseKind.REFUND_ONLY and case.refunded > 0
        events = perform(
            aggregate,
            case.log,
            lambda: aggregate.close(resolution.value, meta=new_meta(), now=self.now),
            expected,
            "close",
        )
        if not events:
            return
        closed = events[0]
        assert isinstance(closed, AfterSalesCase.Closed)
        assert closed.previous_status is before
        assert closed.resolution == resolution.stripped
        case.status = CaseStatus.CLOSED
        if unjudged and not keeps_claim:
            # The application, in the same decision: closed unresolved, it claims nothing.
            self.release(
                case, aggregate.claimed_lines(), "case closed unresolved", dict(case.claim)
            )

    @precondition(lambda self: any(c.status is CaseStatus.CLOSED for c in self.all_cases))
    @rule(data=st.data())
    def nothing_leaves_a_closed_case(self, data: st.DataObject) -> None:
        """Every command but linking an article (and recording money: see the notes on
        refunds) is refused on a closed case, and records nothing."""
        closed = [c for c in self.all_cases if c.status is CaseStatus.CLOSED]
        case = data.draw(st.sampled_from(closed), label="closed case")
        aggregate = case.case
        command = data.draw(
            st.sampled_from(["approve", "reject", "receive", "inspect", "replace", "close"]),
            label="command",
        )
        results = tuple(LineInspection(line.line_no, line.quantity, 0) for line in case.lines)
        calls = {
            "approve": lambda: aggregate.approve(meta=new_meta(), now=self.now),
            "reject": lambda: aggregate.reject("too late", meta=new_meta(), now=self.now),
            "receive": lambda: aggregate.receive_return(
                received_at=self.now, meta=new_meta(), now=self.now
            ),
            "inspect": lambda: aggregate.inspect(results, meta=new_meta(), now=self.now),
            "replace": lambda: aggregate.arrange_replacement(
                UUID(int=803), meta=new_meta(), now=self.now
            ),
            "close": lambda: aggregate.close("again", meta=new_meta(), now=self.now),
        }
        expected: Outcome = Rejected.of(TRANSITION)
        if command == "replace" and case.replacement is not None:
            expected = Accepted((), False)  # arranged before closing: already done
        perform(aggregate, case.log, calls[command], expected, f"closed: {command}")

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def the_ledger_never_claims_more_than_was_delivered(self) -> None:
        ledger, order = self.ledger, self.order
        for line_no, delivered in order.delivered.items():
            claimed = ledger.claimed_quantity(line_no)
            assert 0 <= claimed <= delivered, f"line {line_no}: {claimed} of {delivered} claimed"
            assert claimed == sum(c.claim.get(line_no, 0) for c in self.all_cases)
        assert set(ledger.claimed) <= set(order.lines)
        assert ledger.cases == {c.case.id for c in self.all_cases}
        assert ledger.released == {c.case.id for c in self.all_cases if c.released}
        for case in self.all_cases:
            assert all(q >= 0 for q in case.claim.values())
            if case.status is CaseStatus.REJECTED:
                assert not any(case.claim.values()), "a rejected case still claims units"

    @invariant()
    def a_case_never_refunds_more_than_it_is_worth(self) -> None:
        for case in self.all_cases:
            aggregate = case.case
            assert aggregate.refund_limit == Money(case.refund_limit, CURRENCY)
            assert aggregate.refunded == Money(case.refunded, CURRENCY)
            assert 0 <= case.refunded <= case.refund_limit <= case.value
            assert aggregate.refund_refs == set(case.refunds)
            issued = [e for e in case.log.events if isinstance(e, AfterSalesCase.RefundIssued)]
            refs = Counter(e.refund_ref for e in issued)
            assert all(n == 1 for n in refs.values()), refs
            assert sum(e.amount.amount for e in issued) == case.refunded
            if case.kind is CaseKind.EXCHANGE:
                assert not issued

    @invariant()
    def refunds_across_cases_stay_within_what_was_captured(self) -> None:
        order = self.order
        refunded = sum(c.case.refunded.amount for c in self.all_cases)
        assert refunded == order.refunded <= order.captured <= order.total

    @invariant()
    def the_status_follows_the_model_and_closed_is_final(self) -> None:
        for case in self.all_cases:
            assert case.case.status is case.status
            assert case.case.approved is case.approved
            names = [type(e).__name__ for e in case.log.events]
            if "Closed" in names:
                after = names[names.index("Closed") + 1 :]
                assert set(after) <= {"ArticleLinked", "RefundIssued"}, after
            assert Counter(names)["Closed"] <= 1

    @invariant()
    def inspection_judges_every_requested_unit_once(self) -> None:
        for case in self.all_cases:
            inspected = [e for e in case.log.events if isinstance(e, AfterSalesCase.Inspected)]
            assert len(inspected) <= 1
            if not inspected:
                assert case.case.inspections == ()
                continue
            assert case.kind is not CaseKind.REFUND_ONLY
            results = {r.line_no: r for r in case.case.inspections}
            assert [r.line_no for r in case.case.inspections] == [ln.line_no for ln in case.lines]
            for line in case.lines:
                result = results[line.line_no]
                assert result.accepted + result.rejected == line.quantity
                assert (result.accepted, result.rejected) == case.inspections[line.line_no]
                # Units rejected at inspection no longer count as returned.
                assert case.claim[line.line_no] == result.accepted

    @invariant()
    def a_replacement_is_arranged_once_and_only_for_an_exchange(self) -> None:
        for case in self.all_cases:
            arranged = [
                e for e in case.log.events if isinstance(e, AfterSalesCase.ReplacementArranged)
            ]
            assert len(arranged) <= 1
            assert case.case.replacement_shipment_id == case.replacement
            if arranged:
                assert case.kind is CaseKind.EXCHANGE
                assert arranged[0].shipment_id == case.replacement

    @invariant()
    def history_replays_to_the_same_aggregates(self) -> None:
        for case in self.all_cases:
            case.log.check_rebuilds(case.case)
            assert case.case.articles == tuple(case.articles)
        self.ledger_log.check_rebuilds(self.ledger)


AfterSalesMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestAfterSalesStateMachine = AfterSalesMachine.TestCase


# --- plain specifications -------------------------------------------------------------------


def requested(kind: CaseKind, quantity: int = 2, price: int = 1000) -> AfterSalesCase:
    case = AfterSalesCase.request(
        case_id=UUID(int=1),
        order_id=ORDER_ID,
        customer_id="li-lei",
        kind=kind,
        reason=CaseReason.QUALITY_PROBLEM,
        lines=[CaseLine(1, "TEA-1", quantity, Money(price, CURRENCY))],
        meta=new_meta(),
        now=START,
    )
    case.collect_events()
    return case


def test_a_return_refunds_only_its_accepted_units() -> None:
    case = requested(CaseKind.RETURN, quantity=3)
    case.approve(meta=new_meta(), now=START)
    case.receive_return(received_at=START, meta=new_meta(), now=START)
    case.inspect([LineInspection(1, accepted=2, rejected=1)], meta=new_meta(), now=START)
    assert case.refund_limit == Money(2000, CURRENCY)
    assert case.issue_refund(Money(1500, CURRENCY), refund_ref="R1", meta=new_meta(), now=START)
    assert not case.issue_refund(Money(1500, CURRENCY), refund_ref="R1", meta=new_meta(), now=START)
    with pytest.raises(DomainError) as refused:
        case.issue_refund(Money(501, CURRENCY), refund_ref="R2", meta=new_meta(), now=START)
    assert refused.value.code == EXCEEDS_CASE
    assert case.refunded == Money(1500, CURRENCY)


def test_an_exchange_refunds_nothing_and_is_replaced_once() -> None:
    case = requested(CaseKind.EXCHANGE)
    case.approve(meta=new_meta(), now=START)
    with pytest.raises(DomainError) as refused:
        case.check_refund(Money(1, CURRENCY))
    assert refused.value.code == TRANSITION
    assert case.arrange_replacement(UUID(int=801), meta=new_meta(), now=START)
    assert not case.arrange_replacement(UUID(int=802), meta=new_meta(), now=START)
    assert case.replacement_shipment_id == UUID(int=801)


@pytest.mark.parametrize("kind", list(CaseKind))
def test_a_closed_case_cannot_be_closed_or_approved_again(kind: CaseKind) -> None:
    case = requested(kind)
    case.close("withdrawn", meta=new_meta(), now=START)
    case.collect_events()
    commands: list[Callable[[], None]] = [
        lambda: case.close("again", meta=new_meta(), now=START),
        lambda: case.approve(meta=new_meta(), now=START),
        lambda: case.reject("no", meta=new_meta(), now=START),
    ]
    for command in commands:
        with pytest.raises(DomainError) as refused:
            command()
        assert refused.value.code == TRANSITION
    assert case.pending_events == []
    assert case.link_article(ARTICLES[0], meta=new_meta(), now=START)


def test_the_ledger_claims_within_what_was_delivered() -> None:
    ledger = ReturnLedger.open(ORDER_ID, meta=new_meta(), now=START)
    delivered = {1: 3}
    assert ledger.claim(UUID(int=1), [ClaimLine(1, 2)], delivered, meta=new_meta(), now=START)
    with pytest.raises(DomainError) as refused:
        ledger.claim(UUID(int=2), [ClaimLine(1, 2)], delivered, meta=new_meta(), now=START)
    assert refused.value.code == EXCEEDS_DELIVERED
    assert refused.value.details["available"] == 1
    assert ledger.release(UUID(int=1), [ClaimLine(1, 2)], "rejected", meta=new_meta(), now=START)
    assert not ledger.release(UUID(int=1), [ClaimLine(1, 2)], "again", meta=new_meta(), now=START)
    assert ledger.claim(UUID(int=2), [ClaimLine(1, 3)], delivered, meta=new_meta(), now=START)
    assert ledger.claimed == {1: 3}
