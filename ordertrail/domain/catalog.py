"""Catalog: products, their prices and whether they can be ordered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import InvalidProduct
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money

MAX_PRICE_MINOR_UNITS = 10**10


def _check_price(price: Money) -> Money:
    if not isinstance(price, Money) or price.amount <= 0:
        raise InvalidProduct("a price must be a positive amount of money", field="price")
    if price.amount > MAX_PRICE_MINOR_UNITS:
        raise InvalidProduct("the price is implausibly high", field="price")
    return price


class Product(Aggregate):
    """One sellable SKU. Its id is derived from the SKU, so a SKU names exactly one product."""

    TOPIC = "ordertrail.catalog:Product"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Registered(Event, Aggregate.Created):
        TOPIC = "ordertrail.catalog:Product.Registered"
        class_version = 1
        sku: str
        title: str
        category: str
        attributes: tuple[tuple[str, str], ...]
        image_urls: tuple[str, ...]
        price: Money
        listed: bool

    Created = Registered

    class DetailsRevised(Event):
        TOPIC = "ordertrail.catalog:Product.DetailsRevised"
        class_version = 1
        title: str
        category: str
        attributes: tuple[tuple[str, str], ...]
        image_urls: tuple[str, ...]

        def apply(self, aggregate: Product) -> None:
            aggregate.title = self.title
            aggregate.category = self.category
            aggregate.attribute_pairs = self.attributes
            aggregate.image_urls = self.image_urls

    class PriceChanged(Event):
        TOPIC = "ordertrail.catalog:Product.PriceChanged"
        class_version = 1
        old_price: Money
        new_price: Money

        def apply(self, aggregate: Product) -> None:
            aggregate.price = self.new_price

    class Delisted(Event):
        TOPIC = "ordertrail.catalog:Product.Delisted"
        class_version = 1
        reason: str

        def apply(self, aggregate: Product) -> None:
            aggregate.listed = False

    class Relisted(Event):
        TOPIC = "ordertrail.catalog:Product.Relisted"
        class_version = 1

        def apply(self, aggregate: Product) -> None:
            aggregate.listed = True

    def __init__(
        self,
        *,
        sku: str,
        title: str,
        category: str,
        attributes: tuple[tuple[str, str], ...],
        image_urls: tuple[str, ...],
        price: Money,
        listed: bool,
    ) -> None:
        self.sku = sku
        self.title = title
        self.category = category
        self.attribute_pairs = attributes
        self.image_urls = image_urls
        self.price = price
        self.listed = listed

    # --- commands ------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        sku: str,
        title: str,
        category: str,
        price: Money,
        meta: EventMeta,
        now: datetime,
        attributes: Mapping[str, str] | None = None,
        image_urls: Sequence[str] = (),
        listed: bool = True,
    ) -> Product:
        checked_sku = rules.sku(sku, error=InvalidProduct)
        fields: dict[str, Any] = {
            "sku": checked_sku,
            "title": rules.text(title, "title", error=InvalidProduct),
            "category": rules.text(category, "category", max_length=100, error=InvalidProduct),
            "attributes": rules.string_pairs(attributes or {}, "attributes", error=InvalidProduct),
            "image_urls": rules.urls(image_urls, "image URLs", error=InvalidProduct),
            "price": _check_price(price),
            "listed": bool(listed),
        }
        return cls._create(
            cls.Registered, id=ids.product_id(checked_sku), timestamp=now, meta=meta, **fields
        )

    def revise_details(
        self,
        *,
        meta: EventMeta,
        now: datetime,
        title: str | None = None,
        category: str | None = None,
        attributes: Mapping[str, str] | None = None,
        image_urls: Sequence[str] | None = None,
    ) -> None:
        """Change any of the descriptive fields; a revision that changes nothing records nothing."""
        new_title = (
            self.title if title is None else rules.text(title, "title", error=InvalidProduct)
        )
        new_category = (
            self.category
            if category is None
            else rules.text(category, "category", max_length=100, error=InvalidProduct)
        )
        new_attributes = (
            self.attribute_pairs
            if attributes is None
            else rules.string_pairs(attributes, "attributes", error=InvalidProduct)
        )
        new_urls = (
            self.image_urls
            if image_urls is None
            else rules.urls(image_urls, "image URLs", error=InvalidProduct)
        )
        if (new_title, new_category, new_attributes, new_urls) == (
            self.title,
            self.category,
            self.attribute_pairs,
            self.image_urls,
        ):
            return
        self.trigger_event(
            self.DetailsRevised,
            timestamp=now,
            meta=meta,
            title=new_title,
            category=new_category,
            attributes=new_attributes,
            image_urls=new_urls,
        )

    def change_price(self, new_price: Money, *, meta: EventMeta, now: datetime) -> None:
        """Set a new price in the product's currency; the same price again records nothing."""
        _check_price(new_price)
        if new_price.currency != self.price.currency:
            raise InvalidProduct(
                f"the price must stay in {self.price.currency}",
                field="price",
                currency=new_price.currency,
            )
        if new_price == self.price:
            return
        self.trigger_event(
            self.PriceChanged,
            timestamp=now,
            meta=meta,
            old_price=self.price,
            new_price=new_price,
        )

    def delist(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        """Stop selling; delisting a delisted product records nothing."""
        checked = rules.text(reason, "reason", max_length=500, error=InvalidProduct)
        if not self.listed:
            return
        self.trigger_event(self.Delisted, timestamp=now, meta=meta, reason=checked)

    def relist(self, *, meta: EventMeta, now: datetime) -> None:
        if self.listed:
            return
        self.trigger_event(self.Relisted, timestamp=now, meta=meta)

    # --- queries -------------------------------------------------------------------------

    @property
    def attributes(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self.attribute_pairs))
