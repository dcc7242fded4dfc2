"""After-sales commands on cases (approve, reject, receive, inspect, link, close).

Opening a case, refunding it and sending an exchange's replacement also touch orders,
inventory and logistics: see ``aftersales_flows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ordertrail.application.base import Decision, OrdertrailApplication
from ordertrail.application.context import CommandContext
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.aftersales import (
    AfterSalesCase,
    CaseKind,
    CaseStatus,
    LineInspection,
    ReturnLedger,
)
from ordertrail.domain.errors import CaseNotFound
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money


@dataclass(frozen=True)
class ApproveCase:
    case_id: UUID
    note: str = ""


@dataclass(frozen=True)
class RejectCase:
    case_id: UUID
    reason: str


@dataclass(frozen=True)
class ReceiveReturn:
    case_id: UUID
    received_at: datetime
    tracking_number: str = ""


@dataclass(frozen=True)
class InspectReturn:
    case_id: UUID
    results: tuple[LineInspection, ...]


@dataclass(frozen=True)
class LinkArticle:
    case_id: UUID
    article_id: UUID


@dataclass(frozen=True)
class CloseCase:
    case_id: UUID
    resolution: str


@dataclass(frozen=True)
class CaseSnapshot:
    case_id: UUID
    order_id: UUID
    kind: CaseKind
    status: CaseStatus
    value: Money
    refunded: Money
    replacement_shipment_id: UUID | None
    version: int

    @classmethod
    def of(cls, case: AfterSalesCase) -> CaseSnapshot:
        return cls(
            case.id,
            case.order_id,
            case.kind,
            case.status,
            case.value,
            case.refunded,
            case.replacement_shipment_id,
            case.version,
        )


class AfterSalesApplication(OrdertrailApplication):
    name = "AfterSales"

    def case(self, case_id: UUID) -> AfterSalesCase:
        found = self.find_as(case_id, AfterSalesCase)
        if found is None:
            raise CaseNotFound(f"no after-sales case {case_id}", case_id=str(case_id))
        return found

    def ledger(self, order_id: UUID, meta: EventMeta, now: datetime) -> ReturnLedger:
        found = self.find_as(ids.return_ledger_id(order_id), ReturnLedger)
        return found or ReturnLedger.open(order_id, meta=meta, now=now)

    def approve(self, command: ApproveCase, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            case.approve(command.note, meta=ctx.meta, now=now)
            return Decision(CaseSnapshot.of(case), [case])

        return self.execute(command, ctx, decide, CaseSnapshot)

    def reject(self, command: RejectCase, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        """Refuse a case; what it claimed may be asked back again."""

        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            case.reject(command.reason, meta=ctx.meta, now=now)
            ledger = self.ledger(case.order_id, ctx.meta, now)
            ledger.release(case.id, case.claimed_lines(), "case rejected", meta=ctx.meta, now=now)
            return Decision(CaseSnapshot.of(case), [case, ledger])

        return self.execute(command, ctx, decide, CaseSnapshot)

    def receive_return(self, command: ReceiveReturn, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            case.receive_return(
                received_at=command.received_at,
                tracking_number=command.tracking_number,
                meta=ctx.meta,
                now=now,
            )
            return Decision(CaseSnapshot.of(case), [case])

        return self.execute(command, ctx, decide, CaseSnapshot)

    def inspect(self, command: InspectReturn, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        """Judge each returned unit; rejected units stop counting as returned."""

        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            case.inspect(command.results, meta=ctx.meta, now=now)
            ledger = self.ledger(case.order_id, ctx.meta, now)
            ledger.release(
                case.id,
                case.rejected_lines(),
                "units rejected at inspection",
                meta=ctx.meta,
                now=now,
            )
            return Decision(CaseSnapshot.of(case), [case, ledger])

        return self.execute(command, ctx, decide, CaseSnapshot)

    def link_article(self, command: LinkArticle, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            case.link_article(command.article_id, meta=ctx.meta, now=now)
            return Decision(CaseSnapshot.of(case), [case])

        return self.execute(command, ctx, decide, CaseSnapshot)

    def close_case(self, command: CloseCase, ctx: CommandContext) -> Accepted[CaseSnapshot]:
        """Close a case. Closed before its goods were judged, it stops claiming them."""

        def decide(now: datetime) -> Decision[CaseSnapshot]:
            case = self.case(command.case_id)
            unjudged = case.status in (
                CaseStatus.REQUESTED,
                CaseStatus.APPROVED,
                CaseStatus.RETURN_RECEIVED,
            )
            # An approved refund-only case's refund is due even if it closes first: its
            # units stay claimed, so another case cannot claim (and be refunded) them again.
            keeps_claim = case.kind is CaseKind.REFUND_ONLY and case.approved
            case.close(command.resolution, meta=ctx.meta, now=now)
            changed: list[AfterSalesCase | ReturnLedger] = [case]
            if unjudged and not keeps_claim:
                ledger = self.ledger(case.order_id, ctx.meta, now)
                ledger.release(
                    case.id, case.claimed_lines(), "case closed unresolved", meta=ctx.meta, now=now
                )
                changed.append(ledger)
            return Decision(CaseSnapshot.of(case), changed)

        return self.execute(command, ctx, decide, CaseSnapshot)
