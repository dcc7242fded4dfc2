"""After-sales over HTTP: customers open cases about delivered goods; staff approve or
reject them, receive and inspect returns, refund, send replacements, link the article
that solved the case and close it. Includes the whole story through HTTP only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from hypothesis import strategies as st

from tests.http.conftest import Api
from tests.http.test_logistics_api import (
    INTS,
    MOMENTS,
    SOON,
    TEXT,
    deliver_by_parcelhub,
    fuzz_posts,
    heads,
    money,
    often,
    paid_order,
    path_ids,
    problem,
    shaped,
    shipped,
)
from tests.support.clock import FakeClock

DELIVERY = datetime.fromisoformat("2026-11-11T10:00:00+08:00")
CASE = {
    "kind": "return",
    "reason": "quality_problem",
    "lines": [{"line_no": 1, "quantity": 1}],
    "photo_urls": ["https://img.example.com/cases/cracked-lid.jpg"],
    "description": "The tin arrived with a cracked lid.",
}


def delivered_order(
    api: Api, *lines: tuple[str, int], price: int = 1000, customer: str = "li-lei"
) -> dict[str, Any]:
    """Paid, shipped in one ParcelHub parcel and delivered, all but the payment over HTTP."""
    order = paid_order(api, *(lines or (("TEA-1", 2),)), price=price, customer=customer)
    parts = [(line["line_no"], line["quantity"]) for line in order["lines"]]
    deliver_by_parcelhub(api, shipped(api, order["order_id"], *parts), DELIVERY)
    return order


def open_case(
    api: Api, order_id: str, headers: dict[str, str] | None = None, **changes: Any
) -> httpx.Response:
    return api.client.post(
        f"/orders/{order_id}/cases", json={**CASE, **changes}, headers=headers or api.customer()
    )


def opened(api: Api, order_id: str, **changes: Any) -> dict[str, Any]:
    r = open_case(api, order_id, **changes)
    assert r.status_code == 201, r.text
    case: dict[str, Any] = r.json()
    return case


def staff_if_match(api: Api, version: int) -> dict[str, str]:
    return {**api.staff(), "If-Match": f'"{version}"'}


def act(
    api: Api, case: dict[str, Any], action: str, body: Any = None, **expect: Any
) -> dict[str, Any]:
    """A staff command on the case at the version the caller last saw."""
    r = api.client.post(
        f"/cases/{case['case_id']}/{action}",
        json=body,
        headers=staff_if_match(api, case["version"]),
    )
    assert r.status_code == expect.get("status", 200), r.text
    reply: dict[str, Any] = r.json()
    assert r.headers["etag"] == f'"{reply["version"]}"'
    return reply


def inspection(line_no: int = 1, accepted: int = 1, rejected: int = 0) -> dict[str, Any]:
    return {
        "results": [{"line_no": line_no, "accepted": accepted, "rejected": rejected, "note": "ok"}]
    }


# --- the whole story ----------------------------------------------------------------------


def test_ship_deliver_return_and_refund_through_http_only(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2), price=1700)
    order_id = order["order_id"]
    shipment = shipped(api, order_id, (1, 2))
    deliver_by_parcelhub(api, shipment, DELIVERY)
    r = api.client.get(f"/orders/{order_id}", headers=api.customer())
    assert r.json()["status"] == "delivered"

    r = open_case(api, order_id, lines=[{"line_no": 1, "quantity": 2}])
    assert r.status_code == 201, r.text
    case = r.json()
    assert r.headers["location"] == f"/cases/{case['case_id']}"
    assert r.headers["etag"] == f'"{case["version"]}"'
    assert "AfterSales=" in r.headers["x-ordertrail-position"]
    assert (case["status"], case["customer_id"], case["kind"]) == ("requested", "li-lei", "return")
    assert case["value"] == {"amount": 3400, "currency": "CNY"}
    assert case["photo_urls"] == CASE["photo_urls"]

    case = act(api, case, "approve", {"note": "photos show the damage"})
    assert case["status"] == "approved"
    case = act(
        api,
        case,
        "receive",
        {"received_at": "2026-11-14T09:30:00+08:00", "tracking_number": "SF1234567890"},
    )
    assert case["status"] == "return_received"
    case = act(api, case, "inspect", inspection(accepted=2))
    assert case["status"] == "inspected"
    assert case["refundable"] == {"amount": 3400, "currency": "CNY"}
    api.settle()

    refunded = api.client.get(f"/orders/{order_id}", headers=api.customer()).json()
    assert refunded["refunded"] == {"amount": 3400, "currency": "CNY"}
    assert refunded["payments"][0]["refunded"] == {"amount": 3400, "currency": "CNY"}
    seen = api.client.get(f"/cases/{case['case_id']}", headers=api.customer()).json()
    assert seen["refunded"] == {"amount": 3400, "currency": "CNY"}
    assert seen["refundable"]["amount"] == 0
    stock = api.client.get("/inventory/TEA-1", headers=api.staff()).json()
    assert stock["on_hand"] == 20  # shipped 2, restocked 2

    closed = act(api, seen, "close", {"resolution": "refunded in full"})
    assert closed["status"] == "closed"


# --- opening a case -------------------------------------------------------------------------


def test_customers_open_cases_only_about_their_own_delivered_orders(
    api: Api, clock: FakeClock
) -> None:
    undelivered = paid_order(api, ("TEA-1", 1))
    problem(open_case(api, undelivered["order_id"]), 409, "aftersales.exceeds_delivered")
    order = delivered_order(api, ("TEA-1", 2))
    url = f"/orders/{order['order_id']}/cases"
    before = heads(api)
    problem(open_case(api, order["order_id"], api.customer("han-meimei")), 404, "http.not_found")
    problem(open_case(api, order["order_id"], api.auditor()), 403, "http.forbidden")
    problem(api.client.post(url, json=CASE), 401, "http.unauthorized")
    problem(
        api.client.post(
            "/orders/0b6c2f6e-1d4c-4e8f-9a55-3f1f4c2d9e01/cases", json=CASE, headers=api.customer()
        ),
        404,
        "http.not_found",  # the same answer as for another customer's order: ids can't be probed
    )
    for malformed in (
        {"kind": "swap"},
        {"reason": "bored"},
        {"lines": []},
        {"lines": [{"line_no": 1, "quantity": 0}]},
        {"lines": [{"line_no": 1}]},
        {"photo_urls": ["https://img.example.com/x.jpg"] * 11},
        {"description": "x" * 2001},
        {"refund_to": "card"},
    ):
        reply = problem(open_case(api, order["order_id"], **malformed), 400, "http.invalid_request")
        assert reply["details"]["errors"], reply
    problem(
        api.client.post(url, content=b"kind=return", headers=api.customer()),
        400,
        "http.invalid_request",
    )
    for refused in (
        {"lines": [{"line_no": 9, "quantity": 1}]},
        {"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 1, "quantity": 1}]},
        {"photo_urls": ["ftp://img.example.com/x.jpg"]},
        {"description": "bad\x00byte"},
    ):
        problem(open_case(api, order["order_id"], **refused), 422, "aftersales.invalid_case")
    problem(
        open_case(api, order["order_id"], lines=[{"line_no": 1, "quantity": 3}]),
        409,
        "aftersales.exceeds_delivered",
    )
    assert heads(api) == before

    # Staff may open a case for the customer; it is still the customer's case.
    by_staff = open_case(api, order["order_id"], api.staff(), kind="refund_only")
    assert by_staff.status_code == 201, by_staff.text
    assert by_staff.json()["customer_id"] == "li-lei"
    # One unit left that is not claimed.
    assert open_case(api, order["order_id"]).status_code == 201
    problem(open_case(api, order["order_id"]), 409, "aftersales.exceeds_delivered")

    late = delivered_order(api, ("TEA-1", 1))
    clock.advance(timedelta(days=9))
    problem(open_case(api, late["order_id"]), 409, "aftersales.window_closed")


def test_a_case_is_opened_once_per_idempotency_key(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    keyed = {**api.customer(), "Idempotency-Key": "case-1"}
    first = open_case(api, order["order_id"], keyed)
    assert first.status_code == 201, first.text
    before = heads(api)
    again = open_case(api, order["order_id"], keyed)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    problem(
        open_case(api, order["order_id"], keyed, kind="exchange"),
        422,
        "http.idempotency_key_reused",
    )
    # The same key from another caller is another request.
    other = open_case(api, order["order_id"], {**api.staff(), "Idempotency-Key": "case-1"})
    assert other.status_code == 201
    assert other.json()["case_id"] != first.json()["case_id"]
    assert heads(api) != before


def test_cases_are_seen_by_staff_and_their_own_customer_only(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"])
    url = f"/cases/{case['case_id']}"
    mine = api.client.get(url, headers=api.customer())
    assert mine.status_code == 200
    assert mine.json() == case
    assert mine.headers["etag"] == f'"{case["version"]}"'
    assert api.client.get(url, headers=api.staff()).json() == case
    problem(api.client.get(url, headers=api.customer("han-meimei")), 404, "http.not_found")
    problem(api.client.get(url, headers=api.auditor()), 403, "http.forbidden")
    problem(api.client.get(url), 401, "http.unauthorized")
    problem(
        api.client.get("/cases/0b6c2f6e-1d4c-4e8f-9a55-3f1f4c2d9e01", headers=api.staff()),
        404,
        "aftersales.case_not_found",
    )


# --- staff deciding -------------------------------------------------------------------------


def test_staff_decide_with_if_match_and_in_order(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"], lines=[{"line_no": 1, "quantity": 2}])
    url = f"/cases/{case['case_id']}"
    before = heads(api)
    problem(
        api.client.post(
            f"{url}/approve", json={}, headers=staff_if_match(api, case["version"] - 1)
        ),
        412,
        "command.version_mismatch",
    )
    problem(
        api.client.post(f"{url}/approve", json={}, headers=api.customer()), 403, "http.forbidden"
    )
    problem(api.client.post(f"{url}/approve", json={}), 401, "http.unauthorized")
    problem(
        api.client.post(
            f"{url}/receive", json={"received_at": "2026-11-14T09:30:00+08:00"}, headers=api.staff()
        ),
        409,
        "aftersales.invalid_transition",
    )
    problem(
        api.client.post(
            f"{url}/receive", json={"received_at": "2026-11-14T09:30:00"}, headers=api.staff()
        ),
        400,
        "http.invalid_request",
    )
    problem(
        api.client.post(f"{url}/reject", json={"reason": ""}, headers=api.staff()),
        400,
        "http.invalid_request",
    )
    problem(
        api.client.post(f"{url}/approve", json={"note": 5}, headers=api.staff()),
        400,
        "http.invalid_request",
    )
    assert heads(api) == before

    # No body at all approves with an empty note.
    r = api.client.post(f"{url}/approve", headers=staff_if_match(api, case["version"]))
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved"
    problem(
        api.client.post(f"{url}/approve", headers=staff_if_match(api, approved["version"])),
        409,
        "aftersales.invalid_transition",
    )
    received = act(api, approved, "receive", {"received_at": "2026-11-14T09:30:00+08:00"})
    for wrong in (
        inspection(accepted=1, rejected=0),  # two units to judge
        inspection(line_no=2, accepted=2),
        {"results": [*inspection(accepted=2)["results"], *inspection(accepted=2)["results"]]},
    ):
        problem(
            api.client.post(f"{url}/inspect", json=wrong, headers=api.staff()),
            422,
            "aftersales.invalid_case",
        )
    problem(
        api.client.post(f"{url}/inspect", json={"results": []}, headers=api.staff()),
        400,
        "http.invalid_request",
    )
    inspected = act(api, received, "inspect", inspection(accepted=1, rejected=1))
    assert inspected["inspections"] == [{"line_no": 1, "accepted": 1, "rejected": 1, "note": "ok"}]
    assert inspected["refundable"] == {"amount": 1000, "currency": "CNY"}
    # The rejected unit may be asked back again.
    assert open_case(api, order["order_id"]).status_code == 201


def test_rejected_cases_give_their_units_back(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 1))
    case = opened(api, order["order_id"])
    problem(open_case(api, order["order_id"]), 409, "aftersales.exceeds_delivered")
    rejected = act(api, case, "reject", {"reason": "outside the return policy"})
    assert rejected["status"] == "rejected"
    assert open_case(api, order["order_id"]).status_code == 201
    closed = act(api, rejected, "close", {"resolution": "explained the policy"})
    assert closed["status"] == "closed"
    problem(
        api.client.post(
            f"/cases/{case['case_id']}/close", json={"resolution": "again"}, headers=api.staff()
        ),
        409,
        "aftersales.invalid_transition",
    )


def test_refunds_stay_within_the_case_and_the_order(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"], lines=[{"line_no": 1, "quantity": 2}])
    case = act(api, case, "approve", {})
    url = f"/cases/{case['case_id']}/refund"
    problem(
        api.client.post(
            url, json={"amount": {"amount": 100, "currency": "CNY"}}, headers=api.staff()
        ),
        409,
        "aftersales.invalid_transition",  # nothing inspected yet
    )
    case = act(api, case, "receive", {"received_at": "2026-11-14T09:30:00+08:00"})
    case = act(api, case, "inspect", inspection(accepted=2))
    before = heads(api)
    problem(
        api.client.post(
            url,
            json={"amount": {"amount": 500, "currency": "CNY"}},
            headers=staff_if_match(api, case["version"] - 1),
        ),
        412,
        "command.version_mismatch",
    )
    problem(
        api.client.post(
            url, json={"amount": {"amount": 500, "currency": "USD"}}, headers=api.staff()
        ),
        422,
        "aftersales.invalid_case",
    )
    problem(
        api.client.post(
            url, json={"amount": {"amount": 0, "currency": "CNY"}}, headers=api.staff()
        ),
        422,
        "aftersales.invalid_case",
    )
    problem(
        api.client.post(
            url, json={"amount": {"amount": 2001, "currency": "CNY"}}, headers=api.staff()
        ),
        409,
        "aftersales.refund_exceeds_case",
    )
    problem(
        api.client.post(url, json={"amount": 500}, headers=api.staff()), 400, "http.invalid_request"
    )
    problem(
        api.client.post(
            url, json={"amount": {"amount": 500, "currency": "CNY"}}, headers=api.customer()
        ),
        403,
        "http.forbidden",
    )
    assert heads(api) == before

    keyed = {**staff_if_match(api, case["version"]), "Idempotency-Key": "refund-1"}
    r = api.client.post(url, json={"amount": {"amount": 500, "currency": "CNY"}}, headers=keyed)
    assert r.status_code == 200, r.text
    assert r.json()["refunded"] == {"amount": 500, "currency": "CNY"}
    assert "Orders=" in r.headers["x-ordertrail-position"]
    assert "AfterSales=" in r.headers["x-ordertrail-position"]
    again = api.client.post(url, json={"amount": {"amount": 500, "currency": "CNY"}}, headers=keyed)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == r.json()
    # The case-settlement process refunds the rest, once.
    api.settle()
    seen = api.client.get(f"/orders/{order['order_id']}", headers=api.customer()).json()
    assert seen["refunded"] == {"amount": 2000, "currency": "CNY"}


def test_refund_only_cases_are_refunded_when_approved(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"], kind="refund_only", reason="missing_item")
    act(api, case, "approve", {"note": "courier confirms one tin missing"})
    api.settle()
    seen = api.client.get(f"/cases/{case['case_id']}", headers=api.customer()).json()
    assert seen["refunded"] == {"amount": 1000, "currency": "CNY"}
    problem(
        api.client.post(
            f"/cases/{case['case_id']}/receive",
            json={"received_at": "2026-11-14T09:30:00+08:00"},
            headers=api.staff(),
        ),
        409,
        "aftersales.invalid_transition",
    )


def test_an_exchange_gets_its_replacement_once(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    exchange = opened(api, order["order_id"], kind="exchange", reason="wrong_item")
    url = f"/cases/{exchange['case_id']}/replacement"
    before = heads(api)
    problem(
        api.client.post(url, headers=api.staff()), 409, "aftersales.invalid_transition"
    )  # not approved yet
    assert heads(api) == before
    approved = act(api, exchange, "approve", {})
    problem(
        api.client.post(url, headers=staff_if_match(api, approved["version"] - 1)),
        412,
        "command.version_mismatch",
    )
    problem(api.client.post(url, headers=api.customer()), 403, "http.forbidden")
    arranged = act(api, approved, "replacement")
    replacement = arranged["replacement_shipment_id"]
    assert replacement is not None
    assert (
        "Logistics=" in api.client.post(url, headers=api.staff()).headers["x-ordertrail-position"]
    )
    parcel = api.client.get(f"/shipments/{replacement}", headers=api.customer())
    assert parcel.status_code == 200, parcel.text
    assert parcel.json()["order_id"] == order["order_id"]
    assert parcel.json()["lines"][0]["quantity"] == 1
    # Again, and through the settlement process: still that one parcel.
    before = heads(api)
    again = api.client.post(url, headers=api.staff())
    assert again.json()["replacement_shipment_id"] == replacement
    api.settle()
    seen = api.client.get(f"/cases/{exchange['case_id']}", headers=api.staff()).json()
    assert seen["replacement_shipment_id"] == replacement
    assert {k: v for k, v in heads(api).items() if k != "AfterSales"} == {
        k: v for k, v in before.items() if k != "AfterSales"
    }
    problem(
        api.client.post(
            f"/cases/{exchange['case_id']}/refund",
            json={"amount": {"amount": 100, "currency": "CNY"}},
            headers=api.staff(),
        ),
        409,
        "aftersales.invalid_transition",
    )

    # A return gets no replacement, and asking holds no stock and books no parcel.
    a_return = act(api, opened(api, order["order_id"]), "approve", {})
    before = heads(api)
    problem(
        api.client.post(f"/cases/{a_return['case_id']}/replacement", headers=api.staff()),
        409,
        "aftersales.invalid_transition",
    )
    assert heads(api) == before


def test_link_the_article_that_solved_a_case(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"])
    r = api.client.post(
        "/articles",
        json={"title": "Cracked tins", "body": "Offer a refund for the tin.", "tags": ["damage"]},
        headers=api.staff(),
    )
    assert r.status_code == 201, r.text
    article_id = r.json()["article_id"]
    linked = act(api, case, "articles", {"article_id": article_id})
    assert linked["articles"] == [article_id]
    # Linking it again changes nothing.
    again = act(api, linked, "articles", {"article_id": article_id})
    assert again["version"] == linked["version"]
    problem(
        api.client.post(
            f"/cases/{case['case_id']}/articles",
            json={"article_id": "0b6c2f6e-1d4c-4e8f-9a55-3f1f4c2d9e01"},
            headers=api.staff(),
        ),
        404,
        "knowledge.article_not_found",
    )
    problem(
        api.client.post(
            f"/cases/{case['case_id']}/articles",
            json={"article_id": "not-a-uuid"},
            headers=api.staff(),
        ),
        400,
        "http.invalid_request",
    )
    closed = act(api, linked, "close", {"resolution": "refund offered, see the article"})
    assert closed["status"] == "closed"
    assert closed["articles"] == [article_id]


# --- nothing a client sends is a server error ---------------------------------------------


def test_random_requests_never_cause_a_server_error(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 3))
    requested = opened(api, order["order_id"])
    approved = act(api, opened(api, order["order_id"], kind="exchange"), "approve", {})
    case_ids = path_ids(requested["case_id"], approved["case_id"])
    line = st.fixed_dictionaries({"line_no": st.integers(0, 2), "quantity": st.integers(1, 3)})
    results = st.fixed_dictionaries(
        {
            "line_no": st.integers(0, 2),
            "accepted": st.integers(0, 2),
            "rejected": st.integers(0, 2),
            "note": TEXT,
        }
    )
    texts = often(st.sampled_from(["fine", "x" * 600]), TEXT)
    actions = {
        "approve": shaped({"note": texts}),
        "reject": shaped({"reason": texts}),
        "receive": shaped(
            {"received_at": SOON, "tracking_number": texts}, {"received_at": MOMENTS}
        ),
        "inspect": shaped({"results": st.lists(results, min_size=1, max_size=3)}),
        "refund": shaped({"amount": money()}, {"amount": money(INTS)}),
        "replacement": shaped({}),
        "articles": shaped({"article_id": st.uuids().map(str)}, {"article_id": TEXT}),
        "close": shaped({"resolution": texts}),
    }
    fuzz_posts(
        api,
        st.one_of(
            st.tuples(
                path_ids(order["order_id"]).map("/orders/{}/cases".format),
                shaped(
                    {
                        "kind": st.sampled_from(["return", "exchange", "refund_only"]),
                        "reason": st.sampled_from(["quality_problem", "changed_mind"]),
                        "lines": st.lists(line, min_size=1, max_size=3),
                        "photo_urls": st.lists(
                            st.sampled_from(["https://img.example.com/1.jpg", "ftp://x", ""])
                        ),
                        "description": texts,
                    },
                    {"lines": st.lists(st.fixed_dictionaries({"line_no": INTS, "quantity": INTS}))},
                ),
            ),
            *(
                st.tuples(case_ids.map(f"/cases/{{}}/{action}".format), body)
                for action, body in actions.items()
            ),
        ),
    )
