"""The catalog-browse read model: full-text search (FTS5 on SQLite, tsvector on
PostgreSQL), exact filters, keyset pages, delisted products hidden, any input safe, and an
incremental build that always equals a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.catalog import (
    ChangePrice,
    DelistProduct,
    RegisterProduct,
    RelistProduct,
    ReviseProduct,
)
from ordertrail.application.system import Ordertrail
from ordertrail.domain.catalog import Product
from ordertrail.domain.errors import DomainError
from ordertrail.projections.catalog import (
    BrowsePage,
    CatalogBrowse,
    CatalogBrowseQueries,
    InvalidCursor,
    InvalidFilter,
    ProductCard,
    decode_cursor,
    encode_cursor,
)
from ordertrail.projections.readmodel import EventSource
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.support import GatedSource, empty_store_like, opened, table_rows
from tests.support.builders import cny, staff
from tests.support.clock import FakeClock

TABLES = ("browse_products", "browse_attributes")


@dataclass
class Browse:
    ot: Ordertrail
    store: ReadStore
    worker: ProjectionWorker

    @property
    def q(self) -> CatalogBrowseQueries:
        return CatalogBrowseQueries(self.store)

    def worker_with(self, batch_size: int, gate: GatedSource | None = None) -> ProjectionWorker:
        source: EventSource = gate or self.ot.catalog
        return ProjectionWorker(CatalogBrowse(), self.store, {"Catalog": source}, batch_size)

    def register(
        self,
        sku: str,
        title: str,
        price: int = 1000,
        category: str = "tea",
        attributes: dict[str, str] | None = None,
        listed: bool = True,
        images: tuple[str, ...] = (),
    ) -> None:
        command = RegisterProduct(
            sku, title, category, cny(price), attributes or {}, images, listed
        )
        self.ot.catalog.register_product(command, staff())

    def run(self) -> int:
        return self.worker.run_until_idle()

    def skus(self, **query: Any) -> list[str]:
        return [card.sku for card in self.q.browse(**query).items]


@contextmanager
def browse_model(ot: Ordertrail, settings: Settings, batch_size: int = 500) -> Iterator[Browse]:
    with opened(settings) as store:
        harness = Browse(ot, store, None)  # type: ignore[arg-type]
        harness.worker = harness.worker_with(batch_size)
        harness.worker.setup()
        yield harness


@pytest.fixture
def shop(ot: Ordertrail, store_settings: Settings) -> Iterator[Browse]:
    with browse_model(ot, store_settings) as harness:
        yield harness


def contents(store: ReadStore) -> dict[str, list[tuple[Any, ...]]]:
    rows = table_rows(store, TABLES)
    with store.read() as tx:
        if tx.dialect == "sqlite":
            rows["browse_search"] = tx.all(
                "SELECT rowid, title, attributes FROM browse_search ORDER BY rowid"
            )
    return rows


def stock_the_shelves(shop: Browse) -> None:
    shop.register(
        "TEA-OOL", "Tieguanyin oolong tea", 6800, "tea", {"origin": "Anxi", "form": "leaf"}
    )
    shop.register(
        "TEA-GRN", "Longjing green tea", 8800, "tea", {"origin": "Hangzhou", "form": "leaf"}
    )
    shop.register("TEA-PUE", "Aged puerh cake", 25000, "tea", {"origin": "Yunnan", "form": "cake"})
    shop.register(
        "POT-RED",
        "Yixing clay teapot",
        32000,
        "teaware",
        {"color": "red", "size": "L"},
        images=("https://img.example.com/pot-red.jpg",),
    )
    shop.register("POT-BLU", "Porcelain teapot", 12000, "teaware", {"color": "blue", "size": "M"})
    shop.register(
        "CUP-RED", "Tasting cups, set of 6", 4800, "teaware", {"color": "red", "size": "S"}
    )
    shop.register("OLD-1", "Discontinued oolong tea sampler", 1000, "tea", listed=False)
    shop.run()


# --- what it answers -------------------------------------------------------------------------


def test_listed_products_by_title_with_their_details(shop: Browse) -> None:
    stock_the_shelves(shop)
    page = shop.q.browse()
    assert [c.title for c in page.items] == [
        "Aged puerh cake",
        "Longjing green tea",
        "Porcelain teapot",
        "Tasting cups, set of 6",
        "Tieguanyin oolong tea",
        "Yixing clay teapot",
    ]
    assert page.next_cursor is None
    pot = next(c for c in page.items if c.sku == "POT-RED")
    assert pot == ProductCard(
        "POT-RED",
        "Yixing clay teapot",
        "teaware",
        (("color", "red"), ("size", "L")),
        ("https://img.example.com/pot-red.jpg",),
        cny(32000),
    )
    assert shop.q.product("POT-RED") == pot
    assert shop.q.product("OLD-1") is None


def test_text_search_ranks_titles_above_attributes(shop: Browse) -> None:
    stock_the_shelves(shop)
    shop.register("BAG-RED", "Canvas tote", 3000, "bags", {"note": "teapot pouch"})
    shop.run()
    found = shop.skus(text="teapot")
    assert set(found) == {"POT-BLU", "POT-RED", "BAG-RED"}
    assert found[-1] == "BAG-RED"  # only its attributes mention a teapot
    assert set(shop.skus(text="oolong")) == {"TEA-OOL"}  # the delisted sampler is not found
    assert set(shop.skus(text="red")) == {"POT-RED", "CUP-RED"}  # attribute values count
    assert shop.skus(text='"clay teapot"') == ["POT-RED"]
    assert set(shop.skus(text="tea -green")) == {"TEA-OOL"}
    assert set(shop.skus(text="puerh or longjing")) == {"TEA-PUE", "TEA-GRN"}
    assert shop.skus(text="yunnan") == ["TEA-PUE"]
    assert shop.skus(text="nothing-like-this") == []
    assert shop.skus(text="!!! ---") == []  # no word to look for finds nothing
    assert len(shop.skus(text="   ")) == 7  # no text at all: everything listed


def test_exact_filters_combine(shop: Browse) -> None:
    stock_the_shelves(shop)
    assert shop.skus(category="teaware") == ["POT-BLU", "CUP-RED", "POT-RED"]
    assert shop.skus(category="Teaware") == []
    assert shop.skus(attributes=[("color", "red")]) == ["CUP-RED", "POT-RED"]
    assert shop.skus(attributes=[("color", "red"), ("size", "L")]) == ["POT-RED"]
    assert shop.skus(attributes=[("color", "Red")]) == []
    assert shop.skus(attributes=[("colour", "red")]) == []
    assert shop.skus(min_price=8800, max_price=25000) == ["TEA-PUE", "TEA-GRN", "POT-BLU"]
    assert shop.skus(min_price=30000) == ["POT-RED"]
    assert shop.skus(max_price=4800) == ["CUP-RED"]
    assert shop.skus(min_price=5000, max_price=4000) == []
    assert shop.skus(text="tea", category="tea", attributes=[("form", "leaf")], max_price=7000) == [
        "TEA-OOL"
    ]


def test_changes_follow_the_product(shop: Browse) -> None:
    stock_the_shelves(shop)
    shop.ot.catalog.delist_product(DelistProduct("POT-RED", "cracked glaze"), staff())
    shop.run()
    assert "POT-RED" not in shop.skus()
    assert "POT-RED" not in shop.skus(text="teapot")
    assert shop.skus(attributes=[("color", "red")]) == ["CUP-RED"]
    shop.ot.catalog.relist_product(RelistProduct("POT-RED"), staff())
    shop.ot.catalog.revise_product(
        ReviseProduct("POT-RED", title="Zisha teapot", attributes={"color": "purple"}), staff()
    )
    shop.ot.catalog.change_price(ChangePrice("POT-RED", cny(29000)), staff())
    shop.run()
    assert shop.skus(text="zisha") == ["POT-RED"]
    assert shop.skus(text="yixing") == []
    assert shop.skus(attributes=[("color", "red")]) == ["CUP-RED"]
    assert shop.skus(attributes=[("color", "purple")]) == ["POT-RED"]
    assert shop.skus(min_price=29000, max_price=29000) == ["POT-RED"]
    card = shop.q.product("POT-RED")
    assert card is not None
    assert card.attributes == (("color", "purple"),)


def test_pages_list_everything_once(shop: Browse) -> None:
    for i in range(23):
        shop.register(f"SKU-{i:02d}", f"{'Oolong' if i % 2 else 'Green'} tea no. {i % 5}", 100 + i)
    shop.run()
    for query in ({}, {"text": "tea"}, {"text": "oolong"}, {"min_price": 105}):
        whole = shop.skus(**query, limit=100)
        seen: list[str] = []
        cursor = None
        while True:
            page = shop.q.browse(**query, limit=4, cursor=cursor)
            assert len(page.items) <= 4
            seen += [card.sku for card in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == whole, query
        assert len(set(seen)) == len(seen)


def test_a_page_stays_put_when_products_are_added_before_it(shop: Browse) -> None:
    for sku, title in (("B-1", "Bamboo tray"), ("C-1", "Ceramic jar"), ("D-1", "Drip kettle")):
        shop.register(sku, title)
    shop.run()
    first = shop.q.browse(limit=2)
    assert [c.sku for c in first.items] == ["B-1", "C-1"]
    shop.register("A-1", "Acacia scoop")  # sorts before the page already read
    shop.run()
    assert first.next_cursor is not None
    rest = shop.q.browse(limit=2, cursor=first.next_cursor)
    assert [c.sku for c in rest.items] == ["D-1"]


def test_cursors_are_checked(shop: Browse) -> None:
    stock_the_shelves(shop)
    titled = shop.q.browse(limit=1).next_cursor
    ranked = shop.q.browse(text="tea", limit=1).next_cursor
    assert titled is not None
    assert ranked is not None
    with pytest.raises(InvalidCursor):
        shop.q.browse(text="tea", cursor=titled)
    with pytest.raises(InvalidCursor):
        shop.q.browse(cursor=ranked)
    for garbage in (
        "x",
        "!!!!",
        encode_cursor("t", 5, "A"),
        encode_cursor("r", "5", "A"),
        encode_cursor("r", 2**70, "A"),
        encode_cursor("t", "\x00", "A"),
        "W10",
        "e30",
        "a" * 3000,
    ):
        with pytest.raises(InvalidCursor):
            shop.q.browse(cursor=garbage)
        with pytest.raises(InvalidCursor):
            shop.q.browse(text="tea", cursor=garbage)
    assert decode_cursor(encode_cursor("t", "Tea \u2028\n", "A-1"), False) == (
        "Tea \u2028\n",
        "A-1",
    )
    with pytest.raises(InvalidFilter):
        shop.q.browse(attributes=[("a", "b")] * 11)


def test_only_product_events_are_decoded() -> None:
    model = CatalogBrowse()
    assert model.wants("Catalog", Product.Registered.TOPIC)
    assert model.wants("Catalog", Product.Delisted.TOPIC)
    assert not model.wants("Catalog", "ordertrail.application:CommandReceipt.Recorded")


# --- any input is safe -------------------------------------------------------------------------

HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "'",
        '"',
        "tea*",
        "NEAR(tea pot)",
        "title:tea",
        "'; DROP TABLE browse_products; --",
        "%s %(x)s ? $1",
        "\\",
        "\x00tea\x00",
        "\ud800 lone",
        "😀🍵",
        "茶壶",
        "x" * 3000,
        "tea " * 500,
        "-",
        "or",
        "a:b:c",
        ":",
        "color:",
    ]
)
TEXTS = HOSTILE | st.text(max_size=40)


def test_no_input_makes_a_query_fail(shop: Browse) -> None:
    stock_the_shelves(shop)
    valid_cursors = [
        shop.q.browse(limit=1).next_cursor,
        shop.q.browse(text="tea", limit=1).next_cursor,
    ]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        text=st.none() | TEXTS,
        category=st.none() | TEXTS,
        attributes=st.lists(st.tuples(TEXTS, TEXTS), max_size=12),
        min_price=st.none() | st.integers(-(2**70), 2**70),
        max_price=st.none() | st.integers(-(2**70), 2**70),
        limit=st.integers(-5, 1000),
        cursor=st.none() | TEXTS | st.sampled_from(valid_cursors),
    )
    @example(
        text="'",
        category="\x00",
        attributes=[("\ud800", "x")],
        min_price=2**70,
        max_price=-(2**70),
        limit=0,
        cursor=None,
    )
    def check(**query: Any) -> None:
        try:
            page = shop.q.browse(**query)
        except (InvalidCursor, InvalidFilter):
            return
        assert isinstance(page, BrowsePage)
        assert len(page.items) <= max(1, min(query["limit"], 100))

    check()


# --- incremental build == rebuild ------------------------------------------------------------

WORDS = ("oolong", "green", "teapot", "clay", "cup", "red")
POOL = ("SKU-A", "SKU-B", "SKU-C", "SKU-D")
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
attributes = st.dictionaries(
    st.sampled_from(("color", "size")), st.sampled_from(("red", "L", "blue")), max_size=2
)
step = st.one_of(
    st.tuples(
        st.just("register"),
        st.sampled_from(POOL),
        words,
        st.sampled_from(("tea", "ware")),
        attributes,
        st.integers(100, 900),
        st.booleans(),
    ),
    st.tuples(st.just("revise"), st.sampled_from(POOL), words, attributes),
    st.tuples(st.just("price"), st.sampled_from(POOL), st.integers(100, 900)),
    st.tuples(st.sampled_from(("delist", "relist")), st.sampled_from(POOL)),
)


def observe(q: CatalogBrowseQueries) -> dict[str, Any]:
    def walk(**query: Any) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            page = q.browse(**query, limit=2, cursor=cursor)
            pages.append([card.sku for card in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor

    return {
        "all": walk(),
        "text": {w: walk(text=w) for w in (*WORDS, "red -clay", "cup or teapot")},
        "category": {c: walk(category=c) for c in ("tea", "ware")},
        "attr": walk(attributes=[("color", "red")]),
        "price": walk(min_price=300, max_price=700),
        "cards": [q.product(sku) for sku in POOL],
    }


def test_an_incremental_build_equals_a_rebuild(store_settings: Settings) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        steps=st.lists(st.tuples(step, st.booleans()), min_size=4, max_size=20),
        batch_size=st.integers(1, 3),
    )
    def check(steps: list[tuple[tuple[Any, ...], bool]], batch_size: int) -> None:
        with (
            empty_store_like(store_settings) as fresh,
            open_ordertrail(fresh, clock=FakeClock()) as ot,
            browse_model(ot, fresh) as shop,
        ):
            build_both_ways(shop, steps, batch_size)

    check()


def build_both_ways(
    shop: Browse, steps: list[tuple[tuple[Any, ...], bool]], batch_size: int
) -> None:
    gate = GatedSource(shop.ot.catalog)
    worker = shop.worker_with(batch_size, gate)
    worker.setup()
    catalog = shop.ot.catalog
    for action, is_open in steps:
        kind, sku, *more = action
        try:
            if kind == "register":
                title, category, attrs, price, listed = more
                shop.register(sku, title, price, category, attrs, listed)
            elif kind == "revise":
                catalog.revise_product(
                    ReviseProduct(sku, title=more[0], attributes=more[1]), staff()
                )
            elif kind == "price":
                catalog.change_price(ChangePrice(sku, cny(more[0])), staff())
            elif kind == "delist":
                catalog.delist_product(DelistProduct(sku, "out of stock"), staff())
            else:
                catalog.relist_product(RelistProduct(sku), staff())
        except DomainError:
            pass  # e.g. a SKU registered twice, or not yet: nothing recorded
        # The worker reads one small batch, unless the store is held back: it may lag by
        # any distance and catch up in any batch size.
        gate.open = is_open
        worker.run_once()
    gate.open = True
    worker.run_until_idle()
    incremental = (observe(shop.q), contents(shop.store))
    worker.rebuild()
    rebuilt = (observe(shop.q), contents(shop.store))
    assert incremental == rebuilt
