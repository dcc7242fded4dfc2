"""After-sales: returns, exchanges and refunds, one case at a time, and the ledger that
keeps an order's returns within what was delivered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import (
    InvalidCase,
    InvalidCaseTransition,
    RefundExceedsCase,
    ReturnExceedsDelivered,
)
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money, total

MAX_CASE_LINES = 50
MAX_PHOTOS = 10


class CaseKind(StrEnum):
    RETURN = "return"  # goods come back, money goes back
    EXCHANGE = "exchange"  # goods come back, a replacement goes out
    REFUND_ONLY = "refund_only"  # money goes back, nothing comes back (e.g. missing item)


class CaseReason(StrEnum):
    QUALITY_PROBLEM = "quality_problem"
    WRONG_ITEM = "wrong_item"
    MISSING_ITEM = "missing_item"
    NOT_AS_DESCRIBED = "not_as_described"
    CHANGED_MIND = "changed_mind"


class CaseStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURN_RECEIVED = "return_received"
    INSPECTED = "inspected"
    CLOSED = "closed"


@dataclass(frozen=True)
class CaseLine:
    """Units of one order line that the case is about, at the price they were sold for."""

    line_no: int
    sku: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class LineInspection:
    line_no: int
    accepted: int
    rejected: int
    note: str = ""


@dataclass(frozen=True)
class ClaimLine:
    line_no: int
    quantity: int


class AfterSalesCase(Aggregate):
    """A customer's request about delivered goods, from request to closing."""

    TOPIC = "ordertrail.aftersales:AfterSalesCase"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Requested(Event, Aggregate.Created):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.Requested"
        class_version = 1
        order_id: UUID
        customer_id: str
        kind: CaseKind
        reason: CaseReason
        lines: tuple[CaseLine, ...]
        photo_urls: tuple[str, ...]
        description: str

    Created = Requested

    class Approved(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.Approved"
        class_version = 1
        note: str

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.status = CaseStatus.APPROVED
            aggregate.approved = True

    class Rejected(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.Rejected"
        class_version = 1
        reason: str

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.status = CaseStatus.REJECTED

    class ReturnReceived(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.ReturnReceived"
        class_version = 1
        received_at: datetime
        tracking_number: str

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.status = CaseStatus.RETURN_RECEIVED

    class Inspected(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.Inspected"
        class_version = 1
        results: tuple[LineInspection, ...]
        accepted_value: Money

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.status = CaseStatus.INSPECTED
            aggregate.inspections = self.results

    class RefundIssued(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.RefundIssued"
        class_version = 1
        amount: Money
        refund_ref: str

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.refunded = aggregate.refunded + self.amount
            aggregate.refund_refs.add(self.refund_ref)

    class ReplacementArranged(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.ReplacementArranged"
        class_version = 1
        shipment_id: UUID
        lines: tuple[ClaimLine, ...]

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.replacement_shipment_id = self.shipment_id

    class ArticleLinked(Event):
        """Staff record the knowledge-base article that resolved the case."""

        TOPIC = "ordertrail.aftersales:AfterSalesCase.ArticleLinked"
        class_version = 1
        article_id: UUID

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.articles = (*aggregate.articles, self.article_id)

    class Closed(Event):
        TOPIC = "ordertrail.aftersales:AfterSalesCase.Closed"
        class_version = 1
        resolution: str
        previous_status: CaseStatus

        def apply(self, aggregate: AfterSalesCase) -> None:
            aggregate.status = CaseStatus.CLOSED

    def __init__(
        self,
        *,
        order_id: UUID,
        customer_id: str,
        kind: CaseKind,
        reason: CaseReason,
        lines: tuple[CaseLine, ...],
        photo_urls: tuple[str, ...],
        description: str,
    ) -> None:
        self.order_id = order_id
        self.customer_id = customer_id
        self.kind = kind
        self.reason = reason
        self.lines = lines
        self.photo_urls = photo_urls
        self.description = description
        self.status = CaseStatus.REQUESTED
        self.approved = False
        self.inspections: tuple[LineInspection, ...] = ()
        self.refunded = Money.zero(lines[0].unit_price.currency)
        self.refund_refs: set[str] = set()
        self.replacement_shipment_id: UUID | None = None
        self.articles: tuple[UUID, ...] = ()

    # --- commands ------------------------------------------------------------------------

    @classmethod
    def request(
        cls,
        *,
        case_id: UUID,
        order_id: UUID,
        customer_id: str,
        kind: CaseKind | str,
        reason: CaseReason | str,
        lines: Sequence[CaseLine],
        photo_urls: Sequence[str] = (),
        description: str = "",
        meta: EventMeta,
        now: datetime,
    ) -> AfterSalesCase:
        """Open a case. Whether the lines were delivered, are within the after-sales
        window and are not already being returned is checked with the order's ledger."""
        try:
            checked_kind, checked_reason = CaseKind(kind), CaseReason(reason)
        except ValueError as error:
            raise InvalidCase(str(error), field="kind/reason") from None
        if not lines or len(lines) > MAX_CASE_LINES:
            raise InvalidCase(f"a case is about 1 to {MAX_CASE_LINES} lines", field="lines")
        if len({line.line_no for line in lines}) != len(lines):
            raise InvalidCase("a case lists each order line once", field="lines")
        currency = lines[0].unit_price.currency
        for line in lines:
            rules.positive_quantity(line.quantity, "quantity", error=InvalidCase)
            if line.unit_price.currency != currency:
                raise InvalidCase("a case is in one currency", field="lines")
        return cls._create(
            cls.Requested,
            id=case_id,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            customer_id=rules.code(customer_id, "customer id", error=InvalidCase),
            kind=checked_kind,
            reason=checked_reason,
            lines=tuple(lines),
            photo_urls=rules.urls(photo_urls, "photo URLs", error=InvalidCase, limit=MAX_PHOTOS),
            description=rules.text(
                description, "description", max_length=2000, error=InvalidCase, allow_empty=True
            ),
        )

    def approve(self, note: str = "", *, meta: EventMeta, now: datetime) -> None:
        self._require(CaseStatus.REQUESTED, "approved")
        self.trigger_event(self.Approved, timestamp=now, meta=meta, note=_note(note))

    def reject(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        why = rules.text(reason, "reason", max_length=500, error=InvalidCase)
        self._require(CaseStatus.REQUESTED, "rejected")
        self.trigger_event(self.Rejected, timestamp=now, meta=meta, reason=why)

    def receive_return(
        self, *, received_at: datetime, tracking_number: str = "", meta: EventMeta, now: datetime
    ) -> None:
        if self.kind is CaseKind.REFUND_ONLY:
            raise InvalidCaseTransition("nothing comes back on a refund-only case")
        self._require(CaseStatus.APPROVED, "received")
        ref = rules.text(
            tracking_number, "tracking number", max_length=64, error=InvalidCase, allow_empty=True
        )
        self.trigger_event(
            self.ReturnReceived,
            timestamp=now,
            meta=meta,
            received_at=received_at,
            tracking_number=ref,
        )

    def inspect(self, results: Sequence[LineInspection], *, meta: EventMeta, now: datetime) -> None:
        """Accept or reject each returned unit, line by line; every unit is judged once."""
        self._require(CaseStatus.RETURN_RECEIVED, "inspected")
        by_line = {result.line_no: result for result in results}
        if len(by_line) != len(results) or set(by_line) != {ln.line_no for ln in self.lines}:
            raise InvalidCase("inspect every line of the case once", field="results")
        for line in self.lines:
            result = by_line[line.line_no]
            if (
                type(result.accepted) is not int
                or type(result.rejected) is not int
                or result.accepted < 0
                or result.rejected < 0
                or result.accepted + result.rejected != line.quantity
            ):
                raise InvalidCase(
                    f"line {line.line_no}: accepted and rejected must add up to {line.quantity}",
                    field="results",
                    line_no=line.line_no,
                )
            rules.text(result.note, "note", max_length=500, error=InvalidCase, allow_empty=True)
        ordered = tuple(by_line[line.line_no] for line in self.lines)
        accepted = total(
            [line.unit_price * by_line[line.line_no].accepted for line in self.lines], self.currency
        )
        self.trigger_event(
            self.Inspected, timestamp=now, meta=meta, results=ordered, accepted_value=accepted
        )

    def issue_refund(
        self, amount: Money, *, refund_ref: str, meta: EventMeta, now: datetime
    ) -> bool:
        """Record money given back for this case (partial allowed, never more than the
        case is worth). The same refund reference twice records nothing."""
        ref = rules.text(refund_ref, "refund reference", max_length=200, error=InvalidCase)
        if ref in self.refund_refs:
            return False
        self.check_refund(amount)
        self.trigger_event(
            self.RefundIssued, timestamp=now, meta=meta, amount=amount, refund_ref=ref
        )
        return True

    def record_refund_made(
        self, amount: Money, *, refund_ref: str, meta: EventMeta, now: datetime
    ) -> bool:
        """Record a refund the order already made for this case (whatever the case's
        status now: the money has moved; the order kept it within the case's limit).
        Once per reference."""
        ref = rules.text(refund_ref, "refund reference", max_length=200, error=InvalidCase)
        if ref in self.refund_refs:
            return False
        if not isinstance(amount, Money) or amount.currency != self.currency:
            raise InvalidCase(f"refunds are in {self.currency}", field="amount")
        self.trigger_event(
            self.RefundIssued, timestamp=now, meta=meta, amount=amount, refund_ref=ref
        )
        return True

    def check_refund(self, amount: Money) -> None:
        """Raise if the case may not refund ``amount`` now (nothing is recorded)."""
        if self.kind is CaseKind.EXCHANGE:
            raise InvalidCaseTransition("an exchange is settled with a replacement")
        due_status = (
            CaseStatus.APPROVED if self.kind is CaseKind.REFUND_ONLY else CaseStatus.INSPECTED
        )
        if self.status is not CaseStatus.CLOSED:  # what was due before closing stays due
            self._require(due_status, "refunded")
        if not isinstance(amount, Money) or amount.currency != self.currency:
            raise InvalidCase(f"refunds are in {self.currency}", field="amount")
        if amount.amount <= 0:
            raise InvalidCase("a refund is a positive amount", field="amount")
        if amount > self.refundable:
            raise RefundExceedsCase(
                f"refund of {amount.amount} exceeds the {self.refundable.amount} this case "
                "can still refund",
                requested=amount.amount,
                refundable=self.refundable.amount,
            )

    def arrange_replacement(self, shipment_id: UUID, *, meta: EventMeta, now: datetime) -> bool:
        """An approved exchange sends the requested units again; arranged once."""
        if self.replacement_shipment_id is not None:
            return False
        self.check_replacement()
        self.trigger_event(
            self.ReplacementArranged,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            lines=self.replacement_lines(),
        )
        return True

    def check_replacement(self) -> None:
        """Raise unless the case is an exchange that may get its replacement now."""
        if self.kind is not CaseKind.EXCHANGE:
            raise InvalidCaseTransition("only an exchange gets a replacement")
        if self.status not in (
            CaseStatus.APPROVED,
            CaseStatus.RETURN_RECEIVED,
            CaseStatus.INSPECTED,
        ):
            raise InvalidCaseTransition(
                f"a {self.status.value} case gets no replacement", status=self.status.value
            )
        if self.inspections and not self.accepted_lines():
            raise InvalidCaseTransition("no returned unit was accepted: nothing to replace")

    def link_article(self, article_id: UUID, *, meta: EventMeta, now: datetime) -> bool:
        if article_id in self.articles:
            return False
        self.trigger_event(self.ArticleLinked, timestamp=now, meta=meta, article_id=article_id)
        return True

    def close(self, resolution: str, *, meta: EventMeta, now: datetime) -> None:
        text = rules.text(resolution, "resolution", max_length=500, error=InvalidCase)
        if self.status is CaseStatus.CLOSED:
            raise InvalidCaseTransition("the case is already closed")
        self.trigger_event(
            self.Closed, timestamp=now, meta=meta, resolution=text, previous_status=self.status
        )

    # --- queries -------------------------------------------------------------------------

    @property
    def currency(self) -> str:
        return self.lines[0].unit_price.currency

    @property
    def value(self) -> Money:
        return total([line.unit_price * line.quantity for line in self.lines], self.currency)

    @property
    def refund_limit(self) -> Money:
        """What the case may refund in all: accepted units of a return, every unit of a
        refund-only case (once approved), nothing for an exchange."""
        if self.kind is CaseKind.REFUND_ONLY:
            return self.value if self.approved else Money.zero(self.currency)
        if self.kind is CaseKind.RETURN and self.inspections:
            by_line = {r.line_no: r.accepted for r in self.inspections}
            return total(
                [line.unit_price * by_line.get(line.line_no, 0) for line in self.lines],
                self.currency,
            )
        return Money.zero(self.currency)

    @property
    def refundable(self) -> Money:
        return self.refund_limit - self.refunded

    def accepted_lines(self) -> tuple[ClaimLine, ...]:
        return tuple(ClaimLine(r.line_no, r.accepted) for r in self.inspections if r.accepted)

    def rejected_lines(self) -> tuple[ClaimLine, ...]:
        return tuple(ClaimLine(r.line_no, r.rejected) for r in self.inspections if r.rejected)

    def replacement_lines(self) -> tuple[ClaimLine, ...]:
        """What an exchange sends again: the accepted units once inspected, else all."""
        return self.accepted_lines() if self.inspections else self.claimed_lines()

    def claimed_lines(self) -> tuple[ClaimLine, ...]:
        return tuple(ClaimLine(line.line_no, line.quantity) for line in self.lines)

    def _require(self, status: CaseStatus, doing: str) -> None:
        if self.status is not status:
            raise InvalidCaseTransition(
                f"a {self.status.value} case cannot be {doing}", status=self.status.value
            )


class ReturnLedger(Aggregate):
    """Per order: how many units of each line open or accepted cases claim back, so that
    nothing is returned beyond what was delivered."""

    TOPIC = "ordertrail.aftersales:ReturnLedger"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Opened(Event, Aggregate.Created):
        TOPIC = "ordertrail.aftersales:ReturnLedger.Opened"
        class_version = 1
        order_id: UUID

    Created = Opened

    class Claimed(Event):
        TOPIC = "ordertrail.aftersales:ReturnLedger.Claimed"
        class_version = 1
        case_id: UUID
        lines: tuple[ClaimLine, ...]

        def apply(self, aggregate: ReturnLedger) -> None:
            for line in self.lines:
                aggregate.claimed[line.line_no] = (
                    aggregate.claimed.get(line.line_no, 0) + line.quantity
                )
            aggregate.cases.add(self.case_id)

    class Released(Event):
        """Units a case no longer claims (rejected case, or units rejected at inspection)."""

        TOPIC = "ordertrail.aftersales:ReturnLedger.Released"
        class_version = 1
        case_id: UUID
        lines: tuple[ClaimLine, ...]
        reason: str

        def apply(self, aggregate: ReturnLedger) -> None:
            for line in self.lines:
                aggregate.claimed[line.line_no] -= line.quantity
            aggregate.released.add(self.case_id)

    def __init__(self, *, order_id: UUID) -> None:
        self.order_id = order_id
        self.claimed: dict[int, int] = {}
        self.cases: set[UUID] = set()
        self.released: set[UUID] = set()

    @classmethod
    def open(cls, order_id: UUID, *, meta: EventMeta, now: datetime) -> ReturnLedger:
        return cls._create(
            cls.Opened,
            id=ids.return_ledger_id(order_id),
            timestamp=now,
            meta=meta,
            order_id=order_id,
        )

    def claim(
        self,
        case_id: UUID,
        lines: Sequence[ClaimLine],
        delivered: Mapping[int, int],
        *,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """Claim units for a case; each line stays within delivered minus claimed."""
        if case_id in self.cases:
            return False
        if not lines or len({line.line_no for line in lines}) != len(lines):
            raise InvalidCase("a claim lists each order line once", field="lines")
        for line in lines:
            rules.positive_quantity(line.quantity, "quantity", error=InvalidCase)
            room = delivered.get(line.line_no, 0) - self.claimed.get(line.line_no, 0)
            if line.quantity > room:
                raise ReturnExceedsDelivered(
                    f"line {line.line_no}: {line.quantity} asked back, {max(room, 0)} "
                    "delivered and not already returned",
                    line_no=line.line_no,
                    requested=line.quantity,
                    available=max(room, 0),
                )
        self.trigger_event(
            self.Claimed, timestamp=now, meta=meta, case_id=case_id, lines=tuple(lines)
        )
        return True

    def release(
        self,
        case_id: UUID,
        lines: Sequence[ClaimLine],
        reason: str,
        *,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """Give back what a case claimed and no longer needs; once per case."""
        if case_id not in self.cases or case_id in self.released or not lines:
            return False
        self.trigger_event(
            self.Released,
            timestamp=now,
            meta=meta,
            case_id=case_id,
            lines=tuple(lines),
            reason=reason,
        )
        return True

    def claimed_quantity(self, line_no: int) -> int:
        return self.claimed.get(line_no, 0)


def _note(note: str) -> str:
    return rules.text(note, "note", max_length=500, error=InvalidCase, allow_empty=True)
