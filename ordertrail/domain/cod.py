"""Cash on delivery, per carrier: what couriers collected and what the carrier remitted,
so a merchant can reconcile."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import InvalidShipment, RemittanceExceedsCollected
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money


class CarrierAccount(Aggregate):
    """The cash-on-delivery account of one carrier."""

    TOPIC = "ordertrail.logistics:CarrierAccount"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Opened(Event, Aggregate.Created):
        TOPIC = "ordertrail.logistics:CarrierAccount.Opened"
        class_version = 1
        carrier: str
        currency: str

    Created = Opened

    class CollectionRecorded(Event):
        TOPIC = "ordertrail.logistics:CarrierAccount.CollectionRecorded"
        class_version = 1
        shipment_id: UUID
        amount: Money

        def apply(self, aggregate: CarrierAccount) -> None:
            aggregate.collected = aggregate.collected + self.amount
            aggregate.shipments.add(self.shipment_id)

    class RemittanceRecorded(Event):
        TOPIC = "ordertrail.logistics:CarrierAccount.RemittanceRecorded"
        class_version = 1
        amount: Money
        reference: str
        remitted_at: datetime

        def apply(self, aggregate: CarrierAccount) -> None:
            aggregate.remitted = aggregate.remitted + self.amount
            aggregate.references.add(self.reference)

    def __init__(self, *, carrier: str, currency: str) -> None:
        self.carrier = carrier
        self.currency = currency
        self.collected = Money.zero(currency)
        self.remitted = Money.zero(currency)
        self.shipments: set[UUID] = set()
        self.references: set[str] = set()

    @classmethod
    def open(cls, carrier: str, currency: str, *, meta: EventMeta, now: datetime) -> CarrierAccount:
        code = rules.code(carrier, "carrier", error=InvalidShipment)
        Money.zero(currency)  # validates the code
        return cls._create(
            cls.Opened,
            id=ids.carrier_account_id(code),
            timestamp=now,
            meta=meta,
            carrier=code,
            currency=currency,
        )

    def record_collection(
        self, shipment_id: UUID, amount: Money, *, meta: EventMeta, now: datetime
    ) -> bool:
        """Cash a courier collected for one parcel; counted once per parcel."""
        if shipment_id in self.shipments:
            return False
        self._check(amount)
        self.trigger_event(
            self.CollectionRecorded,
            timestamp=now,
            meta=meta,
            shipment_id=shipment_id,
            amount=amount,
        )
        return True

    def record_remittance(
        self,
        amount: Money,
        *,
        reference: str,
        remitted_at: datetime,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """The carrier paid collected cash over; never more than is outstanding. A
        remittance reference counts once."""
        ref = rules.text(reference, "reference", max_length=200, error=InvalidShipment)
        if ref in self.references:
            return False
        self._check(amount)
        if amount > self.outstanding:
            raise RemittanceExceedsCollected(
                f"{amount.amount} remitted, {self.outstanding.amount} outstanding",
                remitted=amount.amount,
                outstanding=self.outstanding.amount,
            )
        self.trigger_event(
            self.RemittanceRecorded,
            timestamp=now,
            meta=meta,
            amount=amount,
            reference=ref,
            remitted_at=remitted_at,
        )
        return True

    @property
    def outstanding(self) -> Money:
        return self.collected - self.remitted

    def _check(self, amount: Money) -> None:
        if not isinstance(amount, Money) or amount.currency != self.currency:
            raise InvalidShipment(f"amounts are in {self.currency}", field="amount")
        if amount.amount <= 0:
            raise InvalidShipment("an amount must be positive", field="amount")
