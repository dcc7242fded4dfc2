"""Catalog products kept in memory for the placement writer, and kept current.

Placing an order needs each line's product (listed? at what price?). Reading it from the
catalog per order is a round trip per SKU per order; during a sale the same few products
are read thousands of times a second and change perhaps once. ``ProductCache`` holds the
products the writer has used and, before each batch, reads the catalog's log since its
last look (one query, usually empty): any product changed since is dropped and read
again on its next use, all the missing ones in one query.

Freshness: the writer refreshes after every command of the batch was queued, so a batch
is decided on products at least as new as the moment its last command arrived — as new
as when each command read its products itself (notification ids are in commit order: the
store locks the log's table for each insert, so no committed change is skipped).

One thread (the writer) refreshes and fills it; any thread may ``peek``.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from ordertrail.application.catalog import CatalogApplication
from ordertrail.application.errors import StoreUnavailable
from ordertrail.domain import ids
from ordertrail.domain.catalog import Product

#: Products kept at most (beyond it the cache starts again empty).
MAX_PRODUCTS = 50_000
#: Notifications read per query while catching up.
PAGE = 1000


class ProductCache:
    """Products by SKU, as of the last ``refresh``."""

    def __init__(self, catalog: CatalogApplication, *, max_products: int = MAX_PRODUCTS):
        self.catalog = catalog
        self.max_products = max_products
        self._by_sku: dict[str, Product] = {}
        #: The catalog's log has been read up to here (None: not yet).
        self._seen: int | None = None

    def peek(self, sku: str) -> Product | None:
        """The cached product (any thread; it may be a batch old), or None."""
        return self._by_sku.get(sku)

    def refresh(self) -> None:
        """Drop every cached product changed since the last refresh (writer only)."""
        if self._seen is None:
            self._by_sku.clear()
            self._seen = self.catalog.head()
            return  # what is read from now on is at least this new
        changed: set[UUID] = set()
        while True:
            try:
                notes = self.catalog.recorder.select_notifications(
                    start=self._seen, limit=PAGE, inclusive_of_start=False
                )
            except PersistenceError as error:
                raise StoreUnavailable(f"catalog store unavailable: {error}") from error
            for note in notes:
                self._seen = max(self._seen, note.id)
                originator = note.originator_id
                changed.add(originator if isinstance(originator, UUID) else UUID(originator))
            if len(notes) < PAGE:
                break
        if changed:
            for sku in [s for s in self._by_sku if ids.product_id(s) in changed]:
                del self._by_sku[sku]

    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products of these SKUs that exist, missing ones read in one query (writer
        only)."""
        wanted = list(dict.fromkeys(skus))
        missing = [sku for sku in wanted if sku not in self._by_sku]
        if missing:
            if len(self._by_sku) + len(missing) > self.max_products:
                self._by_sku.clear()
            found = self.catalog.find_many_as([ids.product_id(s) for s in missing], Product)
            for product in found.values():
                self._by_sku[product.sku] = product
        return {sku: p for sku in wanted if (p := self._by_sku.get(sku)) is not None}
