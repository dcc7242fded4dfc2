"""The catalog as shoppers browse it: every product with its title, category, attributes,
price and images, full-text search over the listed ones, filters, and keyset pagination.

Built from the "Catalog" store only (``Product`` events), one row per SKU in
``browse_products`` and one per attribute in ``browse_attributes`` (for exact
``name = value`` filters). Delisted products keep their rows (a relisting brings them
back) but are never answered.

Search runs on SQLite's FTS5 (``browse_search``, rowid = the position of the product's
``Registered`` event, ranked by ``bm25()`` with the title weighted above the attributes)
or on a PostgreSQL ``tsvector`` column generated from the row (weights A title, B
attributes, config ``simple``, GIN index, ``websearch_to_tsquery``, ``ts_rank``); only
listed products are in either index. Any user text is accepted, as in the knowledge base
(``projections.knowledge.fts5_query``): words that must all appear, ``"phrases"``,
``-word`` to exclude, ``or`` between alternatives; text without a word finds nothing.

Pages follow a keyset (never an offset): without search text, by title then SKU (code
point order on both stores); with search text, by relevance then SKU, relevance being the
store's score scaled to an integer (times 10^6), so that a cursor names an exact position. A
cursor is opaque to clients (base64url of JSON) and is refused if it was not made by
this module for the same kind of query.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.catalog import Product
from ordertrail.domain.money import Money
from ordertrail.projections.knowledge import clean_text, fts5_query
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_ATTRIBUTE_FILTERS = 10
MAX_CURSOR_CHARS = 2048
#: bm25() weights of the FTS5 columns title, attributes.
BM25_WEIGHTS = (10.0, 4.0)
#: Relevance is compared as score times this: integers keep keyset positions exact.
RANK_SCALE = 1_000_000
_BOUND = 2**62  # any number a filter or cursor gives is clamped inside BIGINT

TOPICS = frozenset(
    {
        Product.Registered.TOPIC,
        Product.DetailsRevised.TOPIC,
        Product.PriceChanged.TOPIC,
        Product.Delisted.TOPIC,
        Product.Relisted.TOPIC,
    }
)
_COLUMNS = (
    "p.sku, p.title, p.category, p.attributes, p.image_urls, p.price_amount, p.price_currency"
)


class InvalidCursor(ValueError):
    """A cursor this module did not make (or made for another kind of query)."""


class InvalidFilter(ValueError):
    """A filter no query can take (too many attribute filters)."""


@dataclass(frozen=True)
class ProductCard:
    sku: str
    title: str
    category: str
    attributes: tuple[tuple[str, str], ...]
    image_urls: tuple[str, ...]
    price: Money


@dataclass(frozen=True)
class BrowsePage:
    items: tuple[ProductCard, ...]
    next_cursor: str | None


class CatalogBrowse(ReadModel):
    name = "catalog_browse"
    sources = ("Catalog",)
    topics = {"Catalog": TOPICS}

    def tables(self) -> Sequence[str]:
        # browse_search exists on SQLite only; dropping it elsewhere is a no-op.
        return ("browse_products", "browse_attributes", "browse_search")

    def create(self, tx: Tx) -> None:
        search_vector = ""
        if tx.dialect == "postgres":
            # Generated, so it never disagrees with the row; NULL unless listed.
            search_vector = (
                ", search_vector tsvector GENERATED ALWAYS AS (CASE WHEN listed"
                " THEN setweight(to_tsvector('simple', title), 'A')"
                " || setweight(to_tsvector('simple', attributes_text), 'B') END) STORED"
            )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS browse_products ("
            " sku {text} PRIMARY KEY, product_id {text} NOT NULL, doc_id {int} NOT NULL UNIQUE,"
            " title {text} NOT NULL, category {text} NOT NULL, attributes {text} NOT NULL,"
            " attributes_text {text} NOT NULL, image_urls {text} NOT NULL,"
            " price_amount {int} NOT NULL, price_currency {text} NOT NULL,"
            " listed {bool} NOT NULL, version {int} NOT NULL, registered_at {text} NOT NULL,"
            " updated_at {text} NOT NULL" + search_vector + ")"
        )
        collate = ' COLLATE "C"' if tx.dialect == "postgres" else ""
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS browse_products_title"
            f" ON browse_products (listed, title{collate}, sku{collate})"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS browse_products_category"
            " ON browse_products (category, listed)"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS browse_products_price ON browse_products (price_amount)")
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS browse_attributes ("
            " sku {text} NOT NULL, name {text} NOT NULL, value {text} NOT NULL,"
            " PRIMARY KEY (sku, name))"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS browse_attributes_match"
            " ON browse_attributes (name, value, sku)"
        )
        if tx.dialect == "postgres":
            tx.ddl(
                "CREATE INDEX IF NOT EXISTS browse_products_search"
                " ON browse_products USING GIN (search_vector)"
            )
        else:
            tx.ddl(
                "CREATE VIRTUAL TABLE IF NOT EXISTS browse_search USING fts5("
                "title, attributes, tokenize = 'unicode61 remove_diacritics 2')"
            )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        match event:
            case Product.Registered():
                self._registered(tx, event, position)
            case Product.DetailsRevised():
                _touch(
                    tx,
                    event,
                    "title = ?, category = ?, attributes = ?, attributes_text = ?, image_urls = ?",
                    event.title,
                    event.category,
                    _json(event.attributes),
                    _attributes_text(event.attributes),
                    _json(event.image_urls),
                )
                _set_attributes(tx, _sku_of(tx, event), event.attributes)
            case Product.PriceChanged():
                _touch(
                    tx,
                    event,
                    "price_amount = ?, price_currency = ?",
                    event.new_price.amount,
                    event.new_price.currency,
                )
            case Product.Delisted():
                _touch(tx, event, "listed = ?", False)
            case Product.Relisted():
                _touch(tx, event, "listed = ?", True)
            case _:
                return
        _sync_search(tx, str(event.originator_id))

    def _registered(self, tx: Tx, event: Product.Registered, position: Position) -> None:
        tx.execute(
            "INSERT INTO browse_products (sku, product_id, doc_id, title, category, attributes,"
            " attributes_text, image_urls, price_amount, price_currency, listed, version,"
            " registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.sku,
                str(event.originator_id),
                position.id,
                event.title,
                event.category,
                _json(event.attributes),
                _attributes_text(event.attributes),
                _json(event.image_urls),
                event.price.amount,
                event.price.currency,
                bool(event.listed),
                event.originator_version,
                _at(event),
                _at(event),
            ),
        )
        _set_attributes(tx, event.sku, event.attributes)


def _at(event: Product.Event) -> str:
    return event.timestamp.isoformat()


def _json(values: Any) -> str:
    return json.dumps([list(v) if isinstance(v, tuple) else v for v in values], ensure_ascii=False)


def _attributes_text(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{name} {value}" for name, value in pairs)


def _touch(tx: Tx, event: Product.Event, assignments: str, *values: object) -> None:
    tx.execute(
        f"UPDATE browse_products SET {assignments}, version = ?, updated_at = ?"
        " WHERE product_id = ?",
        (*values, event.originator_version, _at(event), str(event.originator_id)),
    )


def _sku_of(tx: Tx, event: Product.Event) -> str | None:
    found = tx.scalar(
        "SELECT sku FROM browse_products WHERE product_id = ?", (str(event.originator_id),)
    )
    return None if found is None else str(found)


def _set_attributes(tx: Tx, sku: str | None, pairs: Sequence[tuple[str, str]]) -> None:
    if sku is None:
        return
    tx.execute("DELETE FROM browse_attributes WHERE sku = ?", (sku,))
    tx.executemany(
        "INSERT INTO browse_attributes (sku, name, value) VALUES (?, ?, ?)",
        [(sku, name, value) for name, value in pairs],
    )


def _sync_search(tx: Tx, product_id: str) -> None:
    """SQLite: the product's FTS row holds its current text while it is listed."""
    if tx.dialect != "sqlite":
        return  # PostgreSQL: the generated tsvector column follows the row by itself
    row = tx.one(
        "SELECT doc_id, listed, title, attributes_text FROM browse_products WHERE product_id = ?",
        (product_id,),
    )
    if row is None:
        return
    doc_id, listed, title, attributes_text = row
    tx.execute("DELETE FROM browse_search WHERE rowid = ?", (doc_id,))
    if listed:
        tx.execute(
            "INSERT INTO browse_search (rowid, title, attributes) VALUES (?, ?, ?)",
            (doc_id, title, attributes_text),
        )


# --- cursors ---------------------------------------------------------------------------------


def encode_cursor(kind: str, first: int | str, sku: str) -> str:
    raw = json.dumps([kind, first, sku], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, ranked: bool) -> tuple[int | str, str]:
    """The position a cursor names: (rank, sku) for a search, (title, sku) otherwise."""
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise InvalidCursor("not a cursor of this listing")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise InvalidCursor("not a cursor of this listing") from None
    if not (isinstance(value, list) and len(value) == 3):
        raise InvalidCursor("not a cursor of this listing")
    kind, first, sku = value
    if not (isinstance(sku, str) and _storable(sku)):
        raise InvalidCursor("not a cursor of this listing")
    if ranked and kind == "r" and type(first) is int and -_BOUND <= first <= _BOUND:
        return first, sku
    if not ranked and kind == "t" and isinstance(first, str) and _storable(first):
        return first, sku
    raise InvalidCursor("this cursor belongs to another kind of query")


def _storable(text: str) -> bool:
    """Text either store can take as a parameter (no NUL, no lone surrogate)."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def _clamp(value: int) -> int:
    return max(-_BOUND, min(_BOUND, int(value)))


# --- queries ---------------------------------------------------------------------------------


def _card(row: Sequence[Any]) -> ProductCard:
    sku, title, category, attributes, image_urls, amount, currency = row[:7]
    return ProductCard(
        sku=sku,
        title=title,
        category=category,
        attributes=tuple((str(n), str(v)) for n, v in json.loads(attributes)),
        image_urls=tuple(json.loads(image_urls)),
        price=Money(int(amount), currency),
    )


@dataclass(frozen=True)
class _Filters:
    category: str | None
    attributes: tuple[tuple[str, str], ...]
    min_price: int | None
    max_price: int | None


def _query(
    postgres: bool,
    cleaned: str,
    *,
    match: str | None,
    filters: _Filters,
    after: tuple[int | str, str] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SQL of one page (``match`` None: no search text) and its parameters."""
    collate = ' COLLATE "C"' if postgres else ""
    params: list[Any] = []
    if match is not None and postgres:
        source = (
            "(SELECT sku AS hit_sku, CAST(CAST(ts_rank(search_vector, q.query)"
            f" AS DOUBLE PRECISION) * {RANK_SCALE} AS BIGINT) AS rank"
            " FROM browse_products"
            " CROSS JOIN (SELECT websearch_to_tsquery('simple', ?) AS query) q"
            " WHERE search_vector @@ q.query) m"
            " JOIN browse_products p ON p.sku = m.hit_sku"
        )
        params.append(cleaned)
    elif match is not None:
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        source = (
            f"(SELECT rowid AS doc_id, CAST(-bm25(browse_search, {weights})"
            f" * {RANK_SCALE} AS INTEGER) AS rank"
            " FROM browse_search WHERE browse_search MATCH ?) m"
            " JOIN browse_products p ON p.doc_id = m.doc_id"
        )
        params.append(match)
    else:
        source = "browse_products p"
    where = ["p.listed = ?"]
    params.append(True)
    if filters.category is not None:
        where.append("p.category = ?")
        params.append(filters.category)
    if filters.min_price is not None:
        where.append("p.price_amount >= ?")
        params.append(_clamp(filters.min_price))
    if filters.max_price is not None:
        where.append("p.price_amount <= ?")
        params.append(_clamp(filters.max_price))
    for name, value in filters.attributes:
        where.append(
            "EXISTS (SELECT 1 FROM browse_attributes a"
            " WHERE a.sku = p.sku AND a.name = ? AND a.value = ?)"
        )
        params += [name, value]
    if match is not None:
        order = f"m.rank DESC, p.sku{collate}"
        if after is not None:
            where.append(f"(m.rank < ? OR (m.rank = ? AND p.sku{collate} > ?))")
            params += [after[0], after[0], after[1]]
        columns = f"{_COLUMNS}, m.rank"
    else:
        order = f"p.title{collate}, p.sku{collate}"
        if after is not None:
            where.append(f"(p.title{collate} > ? OR (p.title = ? AND p.sku{collate} > ?))")
            params += [after[0], after[0], after[1]]
        columns = f"{_COLUMNS}, p.title"
    params.append(limit + 1)
    sql = f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    return sql, params


class CatalogBrowseQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def browse(
        self,
        *,
        text: str | None = None,
        category: str | None = None,
        attributes: Sequence[tuple[str, str]] = (),
        min_price: int | None = None,
        max_price: int | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> BrowsePage:
        """Listed products matching every filter given: ``text`` (full text on title and
        attributes), ``category`` (exact), each ``(name, value)`` of ``attributes``
        (exact), a price between ``min_price`` and ``max_price`` in minor units
        (inclusive). At most ``limit`` (1-100) per page; ``cursor`` continues a page.

        Raises ``InvalidCursor`` and ``InvalidFilter`` only; any text is safe."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        if len(attributes) > MAX_ATTRIBUTE_FILTERS:
            raise InvalidFilter(f"at most {MAX_ATTRIBUTE_FILTERS} attribute filters")
        cleaned = clean_text(text) if text is not None else ""
        ranked = bool(cleaned)
        match = fts5_query(cleaned) if ranked else None
        after = decode_cursor(cursor, ranked) if cursor else None
        empty = BrowsePage((), None)
        if ranked and match is None:
            return empty  # text without a word that must appear finds nothing
        if category is not None and not _storable(category):
            return empty
        if any(not (_storable(n) and _storable(v)) for n, v in attributes):
            return empty
        filters = _Filters(category, tuple(attributes), min_price, max_price)
        with self.store.read() as tx:
            sql, params = _query(
                tx.dialect == "postgres",
                cleaned,
                match=match,
                filters=filters,
                after=after,
                limit=limit,
            )
            rows = tx.all(sql, params)
        items = tuple(_card(row) for row in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor("r" if ranked else "t", last[7], last[0])
        return BrowsePage(items, next_cursor)

    def product(self, sku: str) -> ProductCard | None:
        """A listed product by SKU."""
        if not isinstance(sku, str) or not _storable(sku):
            return None
        with self.store.read() as tx:
            row = tx.one(
                f"SELECT {_COLUMNS} FROM browse_products p WHERE p.sku = ? AND p.listed = ?",
                (sku, True),
            )
        return None if row is None else _card(row)
