"""Carts over HTTP: filling one (two delivery groups), checking it out into one order with
the guarantees of ``POST /orders``, and customers never reaching another's cart."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.application.inventory import ReceiveStock
from tests.http.conftest import Api
from tests.support.builders import staff

ADDRESS = {
    "recipient": "Li Lei",
    "phone": "+86 139 0000 0000",
    "line1": "88 Huaihai Road",
    "city": "Shanghai",
    "country": "CN",
}
OFFICE = {**ADDRESS, "line1": "1 Century Avenue", "recipient": "Li Lei (office)"}
PRODUCTS = {"TEA-1": 6800, "TEA-2": 2500, "POT-1": 12000}


def stock_shop(api: Api, stock: int = 20) -> None:
    """Register the products (through the API) and receive stock for them."""
    for sku, price in PRODUCTS.items():
        r = api.client.post(
            "/products",
            json={
                "sku": sku,
                "title": f"Product {sku}",
                "category": "tea",
                "price": {"amount": price, "currency": "CNY"},
            },
            headers=api.staff(),
        )
        assert r.status_code == 201, r.text
        if stock:
            api.runtime.ot.inventory.receive_stock(ReceiveStock(sku, stock), staff())


def open_cart(api: Api, who: str = "li-lei") -> str:
    r = api.client.post("/carts", headers=api.customer(who))
    assert r.status_code == 201, r.text
    cart_id = str(r.json()["cart_id"])
    assert r.headers["location"] == f"/carts/{cart_id}"
    return cart_id


def fill_cart(api: Api, who: str = "li-lei", payment: list[dict[str, Any]] | None = None) -> str:
    """A cart with lines in two delivery groups (home, office), both addresses, a payment."""
    cart_id = open_cart(api, who)
    me = api.customer(who)
    for sku, quantity, group in (
        ("TEA-1", 2, "home"),
        ("TEA-2", 1, "home"),
        ("POT-1", 1, "office"),
    ):
        r = api.client.put(
            f"/carts/{cart_id}/items/{sku}",
            json={"quantity": quantity, "delivery_group": group},
            headers=me,
        )
        assert r.status_code == 200, r.text
    for group, address in (("home", ADDRESS), ("office", OFFICE)):
        r = api.client.put(f"/carts/{cart_id}/addresses/{group}", json=address, headers=me)
        assert r.status_code == 200, r.text
    r = api.client.put(
        f"/carts/{cart_id}/payment", json=payment or [{"method": "alipay"}], headers=me
    )
    assert r.status_code == 200, r.text
    return cart_id


TOTAL = 2 * 6800 + 2500 + 12000


def heads(api: Api) -> dict[str, int]:
    """The head of every store, carts included (``Ordertrail.applications`` leaves them out)."""
    ot = api.runtime.ot
    return {app.name: app.head() for app in (*ot.applications, ot.carts)}


def test_a_cart_is_filled_for_two_addresses_and_read_back(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    r = api.client.get(f"/carts/{cart_id}", headers=api.customer())
    assert r.status_code == 200, r.text
    cart = r.json()
    assert r.headers["etag"] == f'"{cart["version"]}"'
    assert cart["customer_id"] == "li-lei"
    assert cart["lines"] == [
        {"sku": "POT-1", "quantity": 1, "delivery_group": "office"},
        {"sku": "TEA-1", "quantity": 2, "delivery_group": "home"},
        {"sku": "TEA-2", "quantity": 1, "delivery_group": "home"},
    ]
    assert cart["addresses"]["office"]["line1"] == "1 Century Avenue"
    assert cart["payment"] == [{"method": "alipay", "amount": None}]
    assert cart["order_id"] is None
    staff_view = api.client.get(f"/carts/{cart_id}", headers=api.staff())
    assert staff_view.status_code == 200


def test_zero_and_delete_take_items_out(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    me = api.customer()
    r = api.client.put(
        f"/carts/{cart_id}/items/TEA-2", json={"quantity": 0, "delivery_group": "home"}, headers=me
    )
    assert r.status_code == 200
    assert [line["sku"] for line in r.json()["lines"]] == ["POT-1", "TEA-1"]
    r = api.client.delete(f"/carts/{cart_id}/items/POT-1?delivery_group=office", headers=me)
    assert r.status_code == 200, r.text
    assert [line["sku"] for line in r.json()["lines"]] == ["TEA-1"]
    r = api.client.delete(f"/carts/{cart_id}/items/TEA-1", headers=me)  # group "default"
    assert r.status_code == 200
    assert len(r.json()["lines"]) == 1


def test_checkout_places_one_order_for_both_groups(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    me = api.customer()
    r = api.client.post(f"/carts/{cart_id}/checkout", headers=me)
    assert r.status_code == 201, r.text
    order = r.json()
    assert r.headers["location"] == f"/orders/{order['order_id']}"
    assert r.headers["etag"] == f'"{order["version"]}"'
    assert "Orders=" in r.headers["x-ordertrail-position"]
    assert order["status"] == "awaiting_payment"
    assert order["customer_id"] == "li-lei"
    assert order["total"] == {"amount": TOTAL, "currency": "CNY"}
    assert sorted(g["group_id"] for g in order["delivery_groups"]) == ["home", "office"]
    assert {(line["sku"], line["delivery_group"]) for line in order["lines"]} == {
        ("TEA-1", "home"),
        ("TEA-2", "home"),
        ("POT-1", "office"),
    }
    assert [p["method"] for p in order["payments"]] == ["alipay"]
    assert api.client.get(f"/orders/{order['order_id']}", headers=me).status_code == 200
    cart = api.client.get(f"/carts/{cart_id}", headers=me).json()
    assert cart["order_id"] == order["order_id"]
    before = heads(api)
    again = api.client.post(f"/carts/{cart_id}/checkout", headers=me)
    assert again.status_code == 201
    assert again.json()["order_id"] == order["order_id"]
    assert heads(api) == before
    r = api.client.put(f"/carts/{cart_id}/items/TEA-1", json={"quantity": 5}, headers=me)
    assert r.status_code == 409
    assert r.json()["code"] == "cart.checked_out"


def test_an_idempotency_key_replays_the_checkout(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    keyed = {**api.customer(), "Idempotency-Key": "checkout-1"}
    first = api.client.post(f"/carts/{cart_id}/checkout", headers=keyed)
    assert first.status_code == 201, first.text
    again = api.client.post(f"/carts/{cart_id}/checkout", headers=keyed)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    other = fill_cart(api)
    reused = api.client.post(f"/carts/{other}/checkout", headers=keyed)
    assert reused.status_code == 422
    assert reused.json()["code"] == "http.idempotency_key_reused"
    # The same key of another customer is another key.
    theirs = fill_cart(api, "han-meimei")
    r = api.client.post(
        f"/carts/{theirs}/checkout",
        headers={**api.customer("han-meimei"), "Idempotency-Key": "checkout-1"},
    )
    assert r.status_code == 201
    assert r.json()["order_id"] != first.json()["order_id"]


def test_a_keyed_open_cart_opens_one_cart(api: Api) -> None:
    keyed = {**api.customer(), "Idempotency-Key": "open-1"}
    first = api.client.post("/carts", headers=keyed)
    again = api.client.post("/carts", headers=keyed)
    assert first.status_code == again.status_code == 201
    assert first.json()["cart_id"] == again.json()["cart_id"]


def test_another_customers_cart_is_not_found(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    mallory = api.customer("mallory")
    unknown = "5b2f3c1e-0000-4000-8000-000000000000"
    before = heads(api)
    attempts = [
        ("GET", f"/carts/{cart_id}", None),
        ("PUT", f"/carts/{cart_id}/items/TEA-1", {"quantity": 9, "delivery_group": "home"}),
        ("DELETE", f"/carts/{cart_id}/items/TEA-1?delivery_group=home", None),
        ("PUT", f"/carts/{cart_id}/addresses/home", OFFICE),
        ("PUT", f"/carts/{cart_id}/payment", [{"method": "card"}]),
        ("POST", f"/carts/{cart_id}/checkout", None),
    ]
    for method, path, body in attempts:
        theirs = api.client.request(method, path, json=body, headers=mallory)
        missing = api.client.request(
            method, path.replace(cart_id, unknown), json=body, headers=mallory
        )
        assert theirs.status_code == missing.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["code"] == missing.json()["code"] == "http.not_found"
        assert theirs.json()["detail"] == missing.json()["detail"]
    assert heads(api) == before
    cart = api.client.get(f"/carts/{cart_id}", headers=api.customer()).json()
    assert cart["order_id"] is None
    assert len(cart["lines"]) == 3
    # Staff read carts but do not fill them; nobody without a token does anything.
    assert (
        api.client.put(
            f"/carts/{cart_id}/items/TEA-1", json={"quantity": 1}, headers=api.staff()
        ).status_code
        == 403
    )
    assert api.client.post("/carts", headers=api.staff()).status_code == 403
    assert api.client.get(f"/carts/{cart_id}").status_code == 401
    assert api.client.get(f"/carts/{cart_id}", headers=api.auditor()).status_code == 403


def test_stale_if_match_is_refused(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    me = api.customer()
    version = api.client.get(f"/carts/{cart_id}", headers=me).json()["version"]
    stale = {**me, "If-Match": f'"{version - 1}"'}
    r = api.client.put(
        f"/carts/{cart_id}/items/TEA-1",
        json={"quantity": 3, "delivery_group": "home"},
        headers=stale,
    )
    assert r.status_code == 412
    assert r.json()["code"] == "command.version_mismatch"
    assert api.client.post(f"/carts/{cart_id}/checkout", headers=stale).status_code == 412
    fresh = {**me, "If-Match": f'"{version}"'}
    r = api.client.put(
        f"/carts/{cart_id}/items/TEA-1",
        json={"quantity": 3, "delivery_group": "home"},
        headers=fresh,
    )
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{version + 1}"'


def test_what_a_cart_refuses(api: Api) -> None:
    stock_shop(api)
    cart_id = open_cart(api)
    me = api.customer()
    put = api.client.put
    cases = [
        (put(f"/carts/{cart_id}/items/TEA-1", json={"quantity": -1}, headers=me), 400, None),
        (put(f"/carts/{cart_id}/items/TEA-1", json={"quantity": 10_001}, headers=me), 400, None),
        (
            put(f"/carts/{cart_id}/items/TEA-1", json={"quantity": 1, "price": 1}, headers=me),
            400,
            None,
        ),
        (
            put(f"/carts/{cart_id}/items/NOPE-1", json={"quantity": 1}, headers=me),
            404,
            "catalog.product_not_found",
        ),
        (
            put(
                f"/carts/{cart_id}/items/TEA-1",
                json={"quantity": 1, "delivery_group": "a b"},
                headers=me,
            ),
            400,
            None,
        ),
        (put(f"/carts/{cart_id}/payment", json=[], headers=me), 422, "cart.invalid"),
        (
            put(
                f"/carts/{cart_id}/payment",
                json=[{"method": "card", "amount": {"amount": 1, "currency": "CNY"}}] * 6,
                headers=me,
            ),
            422,
            "cart.invalid",
        ),
        (put(f"/carts/{cart_id}/payment", json=[{"method": "bitcoin"}], headers=me), 400, None),
        (
            put(
                f"/carts/{cart_id}/payment",
                json=[{"method": "alipay"}, {"method": "card"}],
                headers=me,
            ),
            422,
            "cart.invalid",
        ),
        (put(f"/carts/{cart_id}/payment", json={"method": "alipay"}, headers=me), 400, None),
        (
            put(
                f"/carts/{cart_id}/addresses/home", json={**ADDRESS, "country": "China"}, headers=me
            ),
            400,
            None,
        ),
        (api.client.post(f"/carts/{cart_id}/checkout", headers=me), 422, "cart.invalid"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        if code:
            assert response.json()["code"] == code


def test_checkout_without_enough_stock_reserves_nothing(api: Api) -> None:
    stock_shop(api, stock=1)
    cart_id = fill_cart(api)
    before = heads(api)
    r = api.client.post(f"/carts/{cart_id}/checkout", headers=api.customer())
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "inventory.insufficient_stock"
    assert heads(api) == before
    assert api.client.get(f"/carts/{cart_id}", headers=api.customer()).json()["order_id"] is None


# --- no input makes it fail on its side ------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
CHOICE = st.fixed_dictionaries(
    {"method": st.sampled_from(["alipay", "card", "wechat_pay", "cash_on_delivery", "x"])},
    optional={
        "amount": st.fixed_dictionaries(
            {"amount": st.integers(-10, 10**16), "currency": st.sampled_from(["CNY", "USD", "x"])}
        )
    },
)
BODIES = {
    "items": st.fixed_dictionaries(
        {"quantity": st.integers(-5, 20_000)},
        optional={"delivery_group": st.text(max_size=70) | st.sampled_from(["home", "office"])},
    )
    | JSON,
    "addresses": st.fixed_dictionaries(
        {k: st.text(max_size=40) | st.just(v) for k, v in ADDRESS.items()}
    )
    | JSON,
    "payment": st.lists(CHOICE, max_size=7) | JSON,
}
SEGMENTS = st.sampled_from(["TEA-1", "POT-1", "home", "NOPE", "%00", "..", "a b", "x" * 300])


def test_no_body_or_path_makes_a_cart_route_fail_on_its_side(api: Api) -> None:
    stock_shop(api)
    cart_id = fill_cart(api)
    me = api.customer()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        kind=st.sampled_from(sorted(BODIES)),
        data=st.data(),
        text=SEGMENTS | st.text(max_size=20),
        raw=st.none() | st.binary(max_size=100),
    )
    def check(kind: str, data: st.DataObject, text: str, raw: bytes | None) -> None:
        body = data.draw(BODIES[kind])
        segment = quote(text, safe="")
        path = {
            "items": f"/carts/{cart_id}/items/{segment}",
            "addresses": f"/carts/{cart_id}/addresses/{segment}",
            "payment": f"/carts/{cart_id}/payment",
        }[kind]
        if raw is None:
            r = api.client.put(path, json=body, headers=me)
        else:
            r = api.client.put(
                path, content=raw, headers={**me, "Content-Type": "application/json"}
            )
        assert r.status_code < 500, r.text
        for method, other in (("POST", f"/carts/{segment}/checkout"), ("GET", f"/carts/{segment}")):
            assert api.client.request(method, other, headers=me).status_code < 500

    check()
    assert api.client.post(f"/carts/{cart_id}/checkout", headers=me).status_code in (201, 409, 422)
