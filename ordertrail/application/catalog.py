"""Catalog commands and the write-side lookups that other contexts need (pricing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ordertrail.application.base import Decision, OrdertrailApplication
from ordertrail.application.context import CommandContext
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids, rules
from ordertrail.domain.catalog import Product
from ordertrail.domain.errors import InvalidProduct, ProductNotFound, SkuAlreadyRegistered
from ordertrail.domain.money import Money


@dataclass(frozen=True)
class RegisterProduct:
    sku: str
    title: str
    category: str
    price: Money
    attributes: Mapping[str, str] = field(default_factory=dict)
    image_urls: tuple[str, ...] = ()
    listed: bool = True


@dataclass(frozen=True)
class ReviseProduct:
    sku: str
    title: str | None = None
    category: str | None = None
    attributes: Mapping[str, str] | None = None
    image_urls: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChangePrice:
    sku: str
    price: Money


@dataclass(frozen=True)
class DelistProduct:
    sku: str
    reason: str


@dataclass(frozen=True)
class RelistProduct:
    sku: str


@dataclass(frozen=True)
class ProductSnapshot:
    """A product as a command left it."""

    sku: str
    title: str
    category: str
    price: Money
    listed: bool
    version: int

    @classmethod
    def of(cls, product: Product) -> ProductSnapshot:
        return cls(
            product.sku,
            product.title,
            product.category,
            product.price,
            product.listed,
            product.version,
        )


class CatalogApplication(OrdertrailApplication):
    name = "Catalog"

    def register_product(
        self, command: RegisterProduct, ctx: CommandContext
    ) -> Accepted[ProductSnapshot]:
        """Add a SKU to the catalog. A SKU can be registered once."""

        def decide(now: datetime) -> Decision[ProductSnapshot]:
            product = Product.register(
                sku=command.sku,
                title=command.title,
                category=command.category,
                price=command.price,
                attributes=command.attributes,
                image_urls=command.image_urls,
                listed=command.listed,
                meta=ctx.meta,
                now=now,
            )
            if self.find(product.id) is not None:
                raise SkuAlreadyRegistered(
                    f"SKU {command.sku} is already registered", sku=command.sku
                )
            return Decision(ProductSnapshot.of(product), [product])

        # Two registrations of one SKU race on the product id: the loser re-decides, finds
        # the winner's product and is refused.
        return self.execute(command, ctx, decide, ProductSnapshot)

    def revise_product(
        self, command: ReviseProduct, ctx: CommandContext
    ) -> Accepted[ProductSnapshot]:
        def decide(now: datetime) -> Decision[ProductSnapshot]:
            product = self.product(command.sku)
            product.revise_details(
                title=command.title,
                category=command.category,
                attributes=command.attributes,
                image_urls=command.image_urls,
                meta=ctx.meta,
                now=now,
            )
            return Decision(ProductSnapshot.of(product), [product])

        return self.execute(command, ctx, decide, ProductSnapshot)

    def change_price(self, command: ChangePrice, ctx: CommandContext) -> Accepted[ProductSnapshot]:
        def decide(now: datetime) -> Decision[ProductSnapshot]:
            product = self.product(command.sku)
            product.change_price(command.price, meta=ctx.meta, now=now)
            return Decision(ProductSnapshot.of(product), [product])

        return self.execute(command, ctx, decide, ProductSnapshot)

    def delist_product(
        self, command: DelistProduct, ctx: CommandContext
    ) -> Accepted[ProductSnapshot]:
        def decide(now: datetime) -> Decision[ProductSnapshot]:
            product = self.product(command.sku)
            product.delist(command.reason, meta=ctx.meta, now=now)
            return Decision(ProductSnapshot.of(product), [product])

        return self.execute(command, ctx, decide, ProductSnapshot)

    def relist_product(
        self, command: RelistProduct, ctx: CommandContext
    ) -> Accepted[ProductSnapshot]:
        def decide(now: datetime) -> Decision[ProductSnapshot]:
            product = self.product(command.sku)
            product.relist(meta=ctx.meta, now=now)
            return Decision(ProductSnapshot.of(product), [product])

        return self.execute(command, ctx, decide, ProductSnapshot)

    # --- write-side lookups --------------------------------------------------------------

    def product(self, sku: str) -> Product:
        """The product with this SKU, or ``ProductNotFound``."""
        checked = rules.sku(sku, error=InvalidProduct)
        product = self.find_as(ids.product_id(checked), Product)
        if product is None:
            raise ProductNotFound(f"no product with SKU {sku}", sku=sku)
        return product

    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        return {sku: self.product(sku) for sku in dict.fromkeys(skus)}
