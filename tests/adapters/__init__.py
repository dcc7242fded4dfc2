"""Tests of the adapters: carriers (callback formats, signatures, selection rules).

Small shared helpers for the carrier tests live here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from ordertrail.application.carriers import ParcelSpec
from ordertrail.domain.meta import Actor, EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address
from ordertrail.domain.shipments import ParcelLine, Shipment

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def meta() -> EventMeta:
    return EventMeta(Actor.system("test"), uuid4(), uuid4())


def destination(country: str = "CN", region: str = "Guangdong", city: str = "Shenzhen") -> Address:
    return Address.create(
        recipient="Li Lei",
        phone="+86 138 0000 0000",
        line1="1 Keyuan Road",
        city=city,
        region=region,
        country=country,
    )


def booked(carrier: str, tracking_number: str, cod: Money | None = None) -> Shipment:
    return Shipment.book(
        shipment_id=uuid4(),
        order_id=uuid4(),
        delivery_group="home",
        address=destination(),
        lines=[ParcelLine(line_no=1, sku="TEA-1", quantity=2, warehouse="main")],
        carrier=carrier,
        tracking_number=tracking_number,
        weight_grams=1200,
        cod_amount=cod,
        meta=meta(),
        now=NOW,
    )


def cny(amount: int) -> Money:
    return Money(amount, "CNY")


def parcel(
    country: str = "CN",
    region: str = "Guangdong",
    weight: int = 1000,
    cod: int | None = None,
    shipment_id: UUID | None = None,
) -> ParcelSpec:
    return ParcelSpec(
        shipment_id=shipment_id or uuid4(),
        destination=destination(country, region),
        weight_grams=weight,
        cod_amount=cny(cod) if cod is not None else None,
        declared_value=cny(20_000),
    )
