"""Browsing the catalog over HTTP (public): text search, filters, keyset pages, delisted
products hidden, and no query string that makes it fail on its side."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.read_models import sources_of
from ordertrail.projections.catalog import CatalogBrowse
from ordertrail.projections.runner import ProjectionWorker
from tests.http.conftest import Api

PRODUCTS = [
    ("TEA-OOL", "Tieguanyin oolong tea", "tea", {"origin": "Anxi"}, 6800),
    ("TEA-GRN", "Longjing green tea", "tea", {"origin": "Hangzhou"}, 8800),
    ("POT-RED", "Yixing clay teapot", "teaware", {"color": "red", "size": "L"}, 32000),
    ("POT-BLU", "Porcelain teapot", "teaware", {"color": "blue", "size": "M"}, 12000),
    ("CUP-RED", "Tasting cups", "teaware", {"color": "red", "size": "S"}, 4800),
]


@pytest.fixture
def browse(api: Api) -> ProjectionWorker:
    """The catalog_browse worker on the app's read store (built here: the app may not run
    it yet), and the products registered through the API."""
    worker = ProjectionWorker(CatalogBrowse(), api.runtime.read.store, sources_of(api.runtime.ot))
    worker.setup()
    for sku, title, category, attributes, price in PRODUCTS:
        r = api.client.post(
            "/products",
            json={
                "sku": sku,
                "title": title,
                "category": category,
                "attributes": attributes,
                "price": {"amount": price, "currency": "CNY"},
                "image_urls": [f"https://img.example.com/{sku.lower()}.jpg"],
            },
            headers=api.staff(),
        )
        assert r.status_code == 201, r.text
    worker.run_until_idle()
    return worker


def skus(api: Api, **query: Any) -> list[str]:
    params = [
        (k, v)
        for k, values in query.items()
        for v in (values if isinstance(values, list) else [values])
    ]
    r = api.client.get("/catalog/products?" + urlencode(params))
    assert r.status_code == 200, r.text
    return [item["sku"] for item in r.json()["items"]]


def test_anyone_browses_listed_products(api: Api, browse: ProjectionWorker) -> None:
    r = api.client.get("/catalog/products")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [item["sku"] for item in page["items"]] == [
        "TEA-GRN",
        "POT-BLU",
        "CUP-RED",
        "TEA-OOL",
        "POT-RED",
    ]
    assert page["next_cursor"] is None
    pot = next(item for item in page["items"] if item["sku"] == "POT-RED")
    assert pot == {
        "sku": "POT-RED",
        "title": "Yixing clay teapot",
        "category": "teaware",
        "attributes": {"color": "red", "size": "L"},
        "image_urls": ["https://img.example.com/pot-red.jpg"],
        "price": {"amount": 32000, "currency": "CNY"},
    }


def test_search_and_filters(api: Api, browse: ProjectionWorker) -> None:
    assert set(skus(api, q="teapot")) == {"POT-RED", "POT-BLU"}
    assert skus(api, q='"clay teapot"') == ["POT-RED"]
    assert set(skus(api, q="tea -green")) == {"TEA-OOL"}
    assert skus(api, category="tea") == ["TEA-GRN", "TEA-OOL"]
    assert skus(api, attr="color:red") == ["CUP-RED", "POT-RED"]
    assert skus(api, attr=["color:red", "size:L"]) == ["POT-RED"]
    assert skus(api, min_price=5000, max_price=12000) == ["TEA-GRN", "POT-BLU", "TEA-OOL"]
    assert skus(api, q="teapot", attr="color:blue", max_price=20000) == ["POT-BLU"]
    assert skus(api, q="nothing") == []


def test_pages_follow_the_cursor(api: Api, browse: ProjectionWorker) -> None:
    for query in ({}, {"q": "tea"}, {"category": "teaware"}):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = api.client.get("/catalog/products?" + urlencode(params)).json()
            assert len(page["items"]) <= 2
            seen += [item["sku"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == skus(api, **query, limit=100)


def test_delisted_products_are_hidden_until_relisted(api: Api, browse: ProjectionWorker) -> None:
    r = api.client.post("/products/POT-RED/delist", json={"reason": "cracked"}, headers=api.staff())
    assert r.status_code == 200, r.text
    browse.run_until_idle()
    assert "POT-RED" not in skus(api)
    assert "POT-RED" not in skus(api, q="teapot")
    assert skus(api, attr="color:red") == ["CUP-RED"]
    r = api.client.post("/products/POT-RED/relist", headers=api.staff())
    assert r.status_code == 200, r.text
    browse.run_until_idle()
    assert "POT-RED" in skus(api, q="teapot")


@pytest.mark.parametrize(
    "query",
    [
        "attr=color",
        "attr=:red",
        "&".join(["attr=a:b"] * 11),
        "limit=0",
        "limit=101",
        "limit=ten",
        "min_price=-1",
        "max_price=10000000000000001",
        "min_price=1.5",
        "cursor=not-a-cursor",
        "cursor=" + "a" * 3000,
        "q=" + "x" * 1001,
        "category=" + "x" * 101,
    ],
)
def test_bad_queries_are_client_errors(api: Api, browse: ProjectionWorker, query: str) -> None:
    r = api.client.get("/catalog/products?" + query)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_cursor_of_another_kind_of_query_is_refused(api: Api, browse: ProjectionWorker) -> None:
    cursor = api.client.get("/catalog/products?limit=1").json()["next_cursor"]
    r = api.client.get("/catalog/products?" + urlencode({"q": "tea", "cursor": cursor}))
    assert r.status_code == 400


def test_waiting_for_a_position_is_harmless(api: Api, browse: ProjectionWorker) -> None:
    r = api.client.get("/catalog/products", headers={"X-Ordertrail-Wait-For": "Catalog=1"})
    assert r.status_code == 200


QUERY_VALUES = st.text(max_size=30) | st.sampled_from(
    [
        "",
        "'",
        '"',
        "teapot",
        "color:red",
        ":",
        "-1",
        "0",
        "99999999999999999999999",
        "1e3",
        "\x00",
        "\ud800",
        "NEAR(a b)",
        "'; DROP TABLE browse_products; --",
        "%",
        "%ff",
        "茶",
    ]
)
NAMES = st.sampled_from(["q", "category", "attr", "min_price", "max_price", "limit", "cursor", "x"])


def test_no_query_string_makes_browsing_fail_on_its_side(
    api: Api, browse: ProjectionWorker
) -> None:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        pairs=st.lists(st.tuples(NAMES, QUERY_VALUES), max_size=8),
        raw=st.binary(max_size=60),
    )
    def check(pairs: list[tuple[str, str]], raw: bytes) -> None:
        encoded = "&".join(
            f"{quote(k)}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs
        )
        for query in (encoded, quote(raw, safe="=&")):
            r = api.client.get("/catalog/products?" + query)
            assert r.status_code in (200, 400), (query, r.text)

    check()
