"""Logistics commands: booking parcels, carrier notifications, cash-on-delivery accounts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ordertrail.application.base import (
    DEFAULT_MAX_ATTEMPTS,
    Decision,
    OrdertrailApplication,
)
from ordertrail.application.carriers import TrackingNotice
from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.cod import CarrierAccount
from ordertrail.domain.errors import ShipmentNotFound
from ordertrail.domain.money import Money
from ordertrail.domain.shipments import Shipment, ShipmentStatus, TrackingNumber


@dataclass(frozen=True)
class RecordTrackingNotice:
    """What a carrier told us about one parcel (already verified and parsed)."""

    notice: TrackingNotice


@dataclass(frozen=True)
class RecordRemittance:
    carrier: str
    amount: Money
    reference: str
    remitted_at: datetime


@dataclass(frozen=True)
class CancelParcel:
    shipment_id: UUID
    reason: str


@dataclass(frozen=True)
class ShipmentSnapshot:
    shipment_id: UUID
    order_id: UUID
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    cod_amount: Money | None
    cash_collected: Money | None
    version: int

    @classmethod
    def of(cls, shipment: Shipment) -> ShipmentSnapshot:
        return cls(
            shipment.id,
            shipment.order_id,
            shipment.carrier,
            shipment.tracking_number,
            shipment.status,
            shipment.cod_amount,
            shipment.cash_collected,
            shipment.version,
        )


@dataclass(frozen=True)
class CodBalance:
    carrier: str
    collected: Money
    remitted: Money
    outstanding: Money
    parcels: int


class LogisticsApplication(OrdertrailApplication):
    name = "Logistics"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        currency: str = "CNY",
        clock: Clock = system_clock,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.currency = currency
        super().__init__(env, clock=clock, max_attempts=max_attempts)

    def shipment(self, shipment_id: UUID) -> Shipment:
        found = self.find_as(shipment_id, Shipment)
        if found is None:
            raise ShipmentNotFound(f"no shipment {shipment_id}", shipment_id=str(shipment_id))
        return found

    def by_tracking_number(self, carrier: str, tracking_number: str) -> Shipment:
        index = self.find_as(ids.tracking_number_id(carrier, tracking_number), TrackingNumber)
        if index is None:
            raise ShipmentNotFound(
                f"no {carrier} parcel {tracking_number}",
                carrier=carrier,
                tracking_number=tracking_number,
            )
        return self.shipment(index.shipment_id)

    def record_notice(
        self, command: RecordTrackingNotice, ctx: CommandContext
    ) -> Accepted[ShipmentSnapshot]:
        """Apply a carrier's scans (and any cash it collected) to the parcel.

        Duplicates and late scans are harmless; cash collected also counts, once, on the
        carrier's cash-on-delivery account, in the same transaction.
        """
        notice = command.notice

        def decide(now: datetime) -> Decision[ShipmentSnapshot]:
            shipment = self.by_tracking_number(notice.carrier, notice.tracking_number)
            for scan in notice.scans:
                shipment.record_scan(scan, meta=ctx.meta, now=now)
            changed: list[Shipment | CarrierAccount] = [shipment]
            if notice.cash_collected is not None and shipment.record_cash_collected(
                notice.cash_collected,
                collected_at=notice.cash_collected_at or now,
                reference=notice.cash_reference or f"{notice.carrier}:{notice.tracking_number}",
                meta=ctx.meta,
                now=now,
            ):
                account = self.carrier_account(shipment.carrier, ctx, now)
                account.record_collection(
                    shipment.id, notice.cash_collected, meta=ctx.meta, now=now
                )
                changed.append(account)
            return Decision(ShipmentSnapshot.of(shipment), changed)

        return self.execute(command, ctx, decide, ShipmentSnapshot)

    def record_remittance(
        self, command: RecordRemittance, ctx: CommandContext
    ) -> Accepted[CodBalance]:
        """The carrier paid over cash it collected (never more than it owes)."""

        def decide(now: datetime) -> Decision[CodBalance]:
            account = self.carrier_account(command.carrier, ctx, now)
            account.record_remittance(
                command.amount,
                reference=command.reference,
                remitted_at=command.remitted_at,
                meta=ctx.meta,
                now=now,
            )
            return Decision(_balance(account), [account])

        return self.execute(command, ctx, decide, CodBalance)

    def cod_balance(self, carrier: str) -> CodBalance:
        account = self.find_as(ids.carrier_account_id(carrier), CarrierAccount)
        if account is None:
            zero = Money.zero(self.currency)
            return CodBalance(carrier, zero, zero, zero, 0)
        return _balance(account)

    def carrier_account(self, carrier: str, ctx: CommandContext, now: datetime) -> CarrierAccount:
        found = self.find_as(ids.carrier_account_id(carrier), CarrierAccount)
        if found is not None:
            return found
        return CarrierAccount.open(carrier, self.currency, meta=ctx.meta, now=now)

    def cancel_parcel(
        self, command: CancelParcel, ctx: CommandContext
    ) -> Accepted[ShipmentSnapshot]:
        def decide(now: datetime) -> Decision[ShipmentSnapshot]:
            shipment = self.shipment(command.shipment_id)
            shipment.cancel(command.reason, meta=ctx.meta, now=now)
            return Decision(ShipmentSnapshot.of(shipment), [shipment])

        return self.execute(command, ctx, decide, ShipmentSnapshot)


def _balance(account: CarrierAccount) -> CodBalance:
    return CodBalance(
        account.carrier,
        account.collected,
        account.remitted,
        account.outstanding,
        len(account.shipments),
    )
