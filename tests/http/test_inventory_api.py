"""Inventory over HTTP (staff): receiving stock, adjusting it, and reading it per
warehouse, on the real app over SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.http.conftest import Api
from tests.http.test_logistics_api import (
    INTS,
    TEXT,
    fuzz_posts,
    heads,
    often,
    placed_order,
    problem,
    shaped,
    stocked_product,
)


def test_receive_stock_and_read_it_per_warehouse(api: Api) -> None:
    stocked_product(api, "TEA-1", stock=5)
    r = api.client.post(
        "/inventory/TEA-1/receipts",
        json={"quantity": 24, "warehouse": "main", "reference": "PO-2026-1107"},
        headers=api.staff(),
    )
    assert r.status_code == 200, r.text
    level = r.json()
    assert level == {
        "sku": "TEA-1",
        "warehouse": "main",
        "on_hand": 29,
        "reserved": 0,
        "available": 29,
        "version": level["version"],
    }
    assert r.headers["etag"] == f'"{level["version"]}"'
    assert r.headers["x-ordertrail-position"].startswith("Inventory=")

    placed_order(api, ("TEA-1", 4))
    r = api.client.get("/inventory/TEA-1", headers=api.staff())
    assert r.status_code == 200
    assert "etag" not in r.headers  # several warehouses: no single version
    stock = r.json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (29, 4, 25)
    assert [w["warehouse"] for w in stock["warehouses"]] == ["main"]
    r = api.client.get("/inventory/TEA-1", params={"warehouse": "main"}, headers=api.staff())
    assert r.status_code == 200
    assert r.json()["warehouses"][0]["reserved"] == 4
    assert r.headers["etag"] == f'"{r.json()["warehouses"][0]["version"]}"'

    problem(
        api.client.get("/inventory/TEA-1", params={"warehouse": "hk"}, headers=api.staff()),
        422,
        "inventory.unknown_warehouse",
    )
    problem(
        api.client.get("/inventory/TEA-1", params={"warehouse": "x y"}, headers=api.staff()),
        400,
        "http.invalid_request",
    )
    problem(
        api.client.get("/inventory/NOPE-1", headers=api.staff()), 404, "catalog.product_not_found"
    )


def test_a_sku_without_stock_reads_as_zero(api: Api) -> None:
    stocked_product(api, "TEA-2", stock=0)
    r = api.client.get("/inventory/TEA-2", params={"warehouse": "main"}, headers=api.staff())
    assert r.status_code == 200
    assert r.json()["available"] == 0
    assert r.headers["etag"] == '"0"'


def test_adjust_stock_but_never_below_what_is_reserved(api: Api) -> None:
    stocked_product(api, "TEA-1", stock=10)
    placed_order(api, ("TEA-1", 6))
    url = "/inventory/TEA-1/adjustments"
    r = api.client.post(
        url, json={"delta": -2, "reason": "damaged", "note": "crushed"}, headers=api.staff()
    )
    assert r.status_code == 200, r.text
    assert (r.json()["on_hand"], r.json()["available"]) == (8, 2)
    before = heads(api)
    body = problem(
        api.client.post(url, json={"delta": -3, "reason": "lost"}, headers=api.staff()),
        409,
        "inventory.adjustment_below_reserved",
    )
    assert body["details"]["reserved"] == 6
    problem(
        api.client.post(url, json={"delta": 0, "reason": "found"}, headers=api.staff()),
        422,
        "inventory.invalid_quantity",
    )
    problem(
        api.client.post(
            url, json={"delta": 1, "reason": "found", "note": "a\x00b"}, headers=api.staff()
        ),
        422,
        "inventory.invalid_quantity",
    )
    assert heads(api) == before
    r = api.client.post(url, json={"delta": 5, "reason": "found"}, headers=api.staff())
    assert r.json()["on_hand"] == 13


def test_malformed_requests_are_400_and_domain_refusals_422(api: Api) -> None:
    stocked_product(api, "TEA-1")
    before = heads(api)
    receipts, adjustments = "/inventory/TEA-1/receipts", "/inventory/TEA-1/adjustments"
    for url, body in (
        (receipts, {"quantity": 0}),
        (receipts, {"quantity": 10_000_001}),
        (receipts, {"quantity": 5, "warehouse": "../main"}),
        (receipts, {"quantity": 5, "reference": "x" * 201}),
        (receipts, {"quantity": 5, "supplier": "acme"}),
        (receipts, {}),
        (adjustments, {"delta": 1, "reason": "stolen"}),
        (adjustments, {"delta": 1.5, "reason": "found"}),
        (adjustments, {"reason": "found"}),
        (adjustments, [1]),
    ):
        reply = problem(
            api.client.post(url, json=body, headers=api.staff()), 400, "http.invalid_request"
        )
        assert reply["details"]["errors"], reply
    problem(
        api.client.post(receipts, content=b'{"quantity": ', headers=api.staff()),
        400,
        "http.invalid_request",
    )
    problem(
        api.client.post(receipts, json={"quantity": 5, "warehouse": "hk"}, headers=api.staff()),
        422,
        "inventory.unknown_warehouse",
    )
    problem(
        api.client.post("/inventory/NOPE-1/receipts", json={"quantity": 5}, headers=api.staff()),
        404,
        "catalog.product_not_found",
    )
    problem(
        api.client.post(
            f"/inventory/{quote('bad sku!')}/receipts", json={"quantity": 5}, headers=api.staff()
        ),
        422,
        "catalog.invalid_product",
    )
    assert heads(api) == before


def test_only_staff_touch_inventory(api: Api) -> None:
    stocked_product(api, "TEA-1")
    receipt = ("/inventory/TEA-1/receipts", {"quantity": 1})
    adjustment = ("/inventory/TEA-1/adjustments", {"delta": 1, "reason": "found"})
    before = heads(api)
    for url, body in (receipt, adjustment):
        problem(api.client.post(url, json=body), 401, "http.unauthorized")
        problem(api.client.post(url, json=body, headers=api.customer()), 403, "http.forbidden")
        problem(api.client.post(url, json=body, headers=api.auditor()), 403, "http.forbidden")
    problem(api.client.get("/inventory/TEA-1"), 401, "http.unauthorized")
    problem(api.client.get("/inventory/TEA-1", headers=api.customer()), 403, "http.forbidden")
    problem(api.client.get("/inventory/TEA-1", headers=api.auditor()), 403, "http.forbidden")
    assert heads(api) == before


def test_if_match_refuses_a_stale_count(api: Api) -> None:
    stocked_product(api, "TEA-1", stock=10)
    seen = api.client.get("/inventory/TEA-1", params={"warehouse": "main"}, headers=api.staff())
    etag = seen.headers["etag"]
    # Someone else receives stock meanwhile.
    api.client.post("/inventory/TEA-1/receipts", json={"quantity": 3}, headers=api.staff())
    url = "/inventory/TEA-1/adjustments"
    correction = {"delta": -1, "reason": "count_correction", "note": "counted 9"}
    before = heads(api)
    body = problem(
        api.client.post(url, json=correction, headers={**api.staff(), "If-Match": etag}),
        412,
        "command.version_mismatch",
    )
    assert body["details"]["expected"] == int(etag.strip('"'))
    problem(
        api.client.post(url, json=correction, headers={**api.staff(), "If-Match": "latest"}),
        400,
        "http.invalid_request",
    )
    assert heads(api) == before
    fresh = api.client.get("/inventory/TEA-1", params={"warehouse": "main"}, headers=api.staff())
    r = api.client.post(
        url, json=correction, headers={**api.staff(), "If-Match": fresh.headers["etag"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["on_hand"] == 12
    assert r.headers["etag"] != fresh.headers["etag"]


def test_a_receipt_is_recorded_once_per_idempotency_key(api: Api) -> None:
    stocked_product(api, "TEA-1", stock=10)
    keyed = {**api.staff(), "Idempotency-Key": "po-2026-1107"}
    url = "/inventory/TEA-1/receipts"
    first = api.client.post(url, json={"quantity": 24, "reference": "PO-1107"}, headers=keyed)
    assert first.status_code == 200, first.text
    before = heads(api)
    again = api.client.post(url, json={"quantity": 24, "reference": "PO-1107"}, headers=keyed)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    problem(
        api.client.post(url, json={"quantity": 25, "reference": "PO-1107"}, headers=keyed),
        422,
        "http.idempotency_key_reused",
    )
    assert heads(api) == before
    stock = api.client.get("/inventory/TEA-1", headers=api.staff()).json()
    assert stock["on_hand"] == 34


def test_random_requests_never_cause_a_server_error(api: Api) -> None:
    stocked_product(api, "TEA-1", stock=10)
    placed_order(api, ("TEA-1", 3))
    skus = often(st.just("TEA-1"), st.just("NOPE-1"), st.text(min_size=1, max_size=70))
    warehouses = often(st.sampled_from(["main", "hk"]), TEXT)
    quantities = st.integers(-3, 20)
    fuzz_posts(
        api,
        st.one_of(
            st.tuples(
                skus.map("/inventory/{}/receipts".format),
                shaped(
                    {"quantity": quantities, "warehouse": warehouses, "reference": TEXT},
                    {"quantity": INTS},
                ),
            ),
            st.tuples(
                skus.map("/inventory/{}/adjustments".format),
                shaped(
                    {
                        "delta": quantities,
                        "reason": st.sampled_from(["damaged", "found", "lost", "stolen"]),
                        "note": TEXT,
                        "warehouse": warehouses,
                    },
                    {"delta": INTS},
                ),
            ),
        ),
    )

    @settings(max_examples=60, deadline=None)
    @given(sku=skus, warehouse=st.none() | warehouses)
    def read_anything(sku: str, warehouse: str | None) -> None:
        params: dict[str, Any] = {} if warehouse is None else {"warehouse": warehouse}
        r = api.client.get(quote(f"/inventory/{sku}"), params=params, headers=api.staff())
        assert r.status_code < 500, (sku, warehouse, r.text)

    read_anything()
