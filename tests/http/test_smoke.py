from __future__ import annotations

from tests.http.conftest import Api

ADDRESS = {
    "recipient": "Li Lei",
    "phone": "+86 139 0000 0000",
    "line1": "88 Huaihai Road",
    "city": "Shanghai",
    "country": "CN",
}


def test_place_an_order_over_http(api: Api) -> None:
    c = api.client
    r = c.post(
        "/products",
        json={
            "sku": "TEA-1",
            "title": "Oolong",
            "category": "tea",
            "price": {"amount": 1000, "currency": "CNY"},
        },
        headers=api.staff(),
    )
    assert r.status_code == 201, r.text
    from ordertrail.application.inventory import ReceiveStock
    from tests.support.builders import staff

    api.runtime.ot.inventory.receive_stock(ReceiveStock("TEA-1", 5), staff())
    r = c.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 2, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "alipay", "amount": {"amount": 2000, "currency": "CNY"}}],
        },
        headers=api.customer(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "awaiting_payment"
    assert r.headers["etag"] == '"1"'
    assert "Orders=" in r.headers["x-ordertrail-position"]
    other = c.get(f"/orders/{body['order_id']}", headers=api.customer("someone-else"))
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    r = c.post(
        f"/orders/{body['order_id']}/cancel",
        json={"reason": "x"},
        headers={**api.customer(), "If-Match": '"0"'},
    )
    assert r.status_code == 412, r.text
    assert r.json()["code"] == "command.version_mismatch"
    r = c.post(
        f"/orders/{body['order_id']}/cancel",
        json={"reason": "x"},
        headers={**api.customer(), "If-Match": '"1"', "Idempotency-Key": "k1"},
    )
    assert r.status_code == 200, r.text
    again = c.post(
        f"/orders/{body['order_id']}/cancel",
        json={"reason": "x"},
        headers={**api.customer(), "If-Match": '"1"', "Idempotency-Key": "k1"},
    )
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == r.json()
    reused = c.post(
        f"/orders/{body['order_id']}/cancel",
        json={"reason": "y"},
        headers={**api.customer(), "Idempotency-Key": "k1"},
    )
    assert reused.status_code == 422
    assert c.get("/schema/openapi.json").status_code == 200
    assert c.post("/orders", content=b"{not json", headers=api.customer()).status_code == 400


def test_a_product_reads_back_with_its_etag_and_revises_with_if_match(api: Api) -> None:
    c = api.client
    created = c.post(
        "/products",
        json={
            "sku": "TEA-2",
            "title": "Green",
            "category": "tea",
            "price": {"amount": 900, "currency": "CNY"},
        },
        headers=api.staff(),
    )
    assert created.status_code == 201, created.text
    got = c.get("/products/TEA-2")
    assert got.status_code == 200, got.text
    assert got.headers["etag"] == '"1"'
    stale = c.patch(
        "/products/TEA-2", json={"title": "Longjing"}, headers={**api.staff(), "If-Match": '"0"'}
    )
    assert stale.status_code == 412
    revised = c.patch(
        "/products/TEA-2",
        json={"title": "Longjing"},
        headers={**api.staff(), "If-Match": got.headers["etag"]},
    )
    assert revised.status_code == 200, revised.text
    assert c.get("/products/TEA-2").json()["title"] == "Longjing"
