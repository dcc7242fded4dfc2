"""The knowledge base over HTTP (staff): drafting, revising, publishing and retiring
articles; search and case suggestions from the knowledge_base read model."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.http.conftest import Api
from tests.http.test_aftersales_api import delivered_order, opened
from tests.http.test_logistics_api import (
    JSON,
    PROBLEM,
    TEXT,
    fuzz_posts,
    heads,
    often,
    path_ids,
    problem,
    shaped,
)

ARTICLE = {
    "title": "Cracked tea tins",
    "body": "Ask for a photo of the lid, then offer a replacement tin or a refund.",
    "tags": ["packaging", "damage"],
    "category": "tea",
    "reasons": ["quality_problem"],
}
MISSING_ID = "0b6c2f6e-1d4c-4e8f-9a55-3f1f4c2d9e01"


def draft(api: Api, headers: dict[str, str] | None = None, **changes: Any) -> httpx.Response:
    return api.client.post("/articles", json={**ARTICLE, **changes}, headers=headers or api.staff())


def drafted(api: Api, **changes: Any) -> dict[str, Any]:
    r = draft(api, **changes)
    assert r.status_code == 201, r.text
    article: dict[str, Any] = r.json()
    return article


def published(api: Api, **changes: Any) -> dict[str, Any]:
    article = drafted(api, **changes)
    r = api.client.post(f"/articles/{article['article_id']}/publish", headers=api.staff())
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


def search(api: Api, **params: Any) -> httpx.Response:
    return api.client.get("/articles/search", params=params, headers=api.staff())


def titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["title"] for hit in response.json()["hits"]]


def test_draft_revise_publish_and_retire_an_article(api: Api) -> None:
    r = draft(api)
    assert r.status_code == 201, r.text
    article = r.json()
    url = f"/articles/{article['article_id']}"
    assert r.headers["location"] == url
    assert r.headers["etag"] == '"1"'
    assert r.headers["x-ordertrail-position"].startswith("Knowledge=")
    assert article == {
        "article_id": article["article_id"],
        **ARTICLE,
        "status": "draft",
        "version": 1,
    }
    got = api.client.get(url, headers=api.staff())
    assert got.json() == article
    assert got.headers["etag"] == '"1"'

    revision = {**ARTICLE, "title": "Cracked or dented tea tins", "tags": ["Damage", "damage"]}
    before = heads(api)
    problem(
        api.client.put(url, json=revision, headers={**api.staff(), "If-Match": '"0"'}),
        412,
        "command.version_mismatch",
    )
    assert heads(api) == before
    r = api.client.put(url, json=revision, headers={**api.staff(), "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["tags"], r.json()["version"]) == (
        "Cracked or dented tea tins",
        ["damage"],
        2,
    )
    assert r.headers["etag"] == '"2"'
    # The same content again records nothing.
    same = api.client.put(url, json=revision, headers={**api.staff(), "If-Match": '"2"'})
    assert same.json()["version"] == 2

    stale = {**api.staff(), "If-Match": '"1"'}
    problem(api.client.post(f"{url}/publish", headers=stale), 412, "command.version_mismatch")
    r = api.client.post(f"{url}/publish", headers={**api.staff(), "If-Match": '"2"'})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"
    problem(
        api.client.post(f"{url}/publish", headers=api.staff()), 409, "knowledge.invalid_transition"
    )
    problem(
        api.client.post(f"{url}/retire", json={}, headers=api.staff()), 400, "http.invalid_request"
    )
    r = api.client.post(f"{url}/retire", json={"reason": "policy changed"}, headers=api.staff())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "retired"
    problem(
        api.client.post(f"{url}/retire", json={"reason": "again"}, headers=api.staff()),
        409,
        "knowledge.invalid_transition",
    )
    problem(
        api.client.put(url, json=ARTICLE, headers=api.staff()), 409, "knowledge.invalid_transition"
    )


def test_articles_refuse_bad_content(api: Api) -> None:
    before = heads(api)
    for malformed in (
        {"title": ""},
        {"title": "x" * 201},
        {"body": ""},
        {"tags": ["t"] * 21},
        {"tags": [""]},
        {"reasons": ["bored"]},
        {"category": 5},
        {"author": "mei"},
    ):
        reply = problem(draft(api, **malformed), 400, "http.invalid_request")
        assert reply["details"]["errors"], reply
    problem(
        api.client.post("/articles", content=b"title: x", headers=api.staff()),
        400,
        "http.invalid_request",
    )
    for refused in ({"body": "bad\x00byte"}, {"tags": ["a\x07b"]}, {"title": "   "}):
        problem(draft(api, **refused), 422, "knowledge.invalid_article")
    assert heads(api) == before


def test_only_staff_work_on_the_knowledge_base(api: Api) -> None:
    article = drafted(api)
    url = f"/articles/{article['article_id']}"
    before = heads(api)
    for headers, status, code in (
        ({}, 401, "http.unauthorized"),
        (api.customer(), 403, "http.forbidden"),
        (api.auditor(), 403, "http.forbidden"),
    ):
        problem(api.client.post("/articles", json=ARTICLE, headers=headers), status, code)
        problem(api.client.put(url, json=ARTICLE, headers=headers), status, code)
        problem(api.client.post(f"{url}/publish", headers=headers), status, code)
        problem(
            api.client.post(f"{url}/retire", json={"reason": "x"}, headers=headers), status, code
        )
        problem(api.client.get(url, headers=headers), status, code)
        problem(api.client.get("/articles/search?q=tea", headers=headers), status, code)
    assert heads(api) == before
    missing = f"/articles/{MISSING_ID}"
    problem(api.client.get(missing, headers=api.staff()), 404, "knowledge.article_not_found")
    problem(
        api.client.post(f"{missing}/publish", headers=api.staff()),
        404,
        "knowledge.article_not_found",
    )
    problem(
        api.client.put(missing, json=ARTICLE, headers=api.staff()),
        404,
        "knowledge.article_not_found",
    )


def test_an_article_is_drafted_once_per_idempotency_key(api: Api) -> None:
    keyed = {**api.staff(), "Idempotency-Key": "kb-draft-1"}
    first = draft(api, keyed)
    assert first.status_code == 201, first.text
    before = heads(api)
    again = draft(api, keyed)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    problem(draft(api, keyed, title="Another"), 422, "http.idempotency_key_reused")
    assert heads(api) == before


def test_search_published_articles_with_read_your_writes(api: Api) -> None:
    published(api)
    published(
        api,
        title="Refund for late parcels",
        body="When a parcel is late by more than a week, refund the shipping fee.",
        tags=["late", "shipping"],
        category="",
        reasons=["missing_item"],
    )
    drafted(api, title="Cracked jars (draft)")
    last = published(
        api,
        title="Tea that tastes stale",
        body="Tins past their date: offer a replacement tin.",
        tags=["tin"],
        category="tea",
        reasons=["quality_problem", "not_as_described"],
    )
    position = api.client.get(
        f"/articles/{last['article_id']}", headers=api.staff()
    )  # reads do not write
    assert "x-ordertrail-position" not in position.headers
    r = api.client.post(
        f"/articles/{last['article_id']}/retire", json={"reason": "merged"}, headers=api.staff()
    )
    written = r.headers["x-ordertrail-position"]
    api.settle()

    r = search(api, q="tin")
    assert r.headers.get("x-ordertrail-consistency") is None
    assert titles(r) == ["Cracked tea tins"]  # drafts and retired articles are not found
    hit = r.json()["hits"][0]
    assert set(hit) == {
        "article_id",
        "title",
        "category",
        "tags",
        "reasons",
        "resolutions",
        "score",
    }
    assert hit["reasons"] == ["quality_problem"]
    assert titles(search(api, q="refund")) == ["Refund for late parcels", "Cracked tea tins"]
    assert titles(search(api, q="refund", category="tea")) == ["Cracked tea tins"]
    assert titles(search(api, q="refund", limit=1)) == ["Refund for late parcels"]
    assert titles(search(api, q='"late by" -tea')) == ["Refund for late parcels"]
    assert titles(search(api, q="!!!")) == []
    assert titles(search(api, q="")) == []

    waited = api.client.get(
        "/articles/search",
        params={"q": "stale"},
        headers={**api.staff(), "X-Ordertrail-Wait-For": written},
    )
    assert waited.headers["x-ordertrail-consistency"] == "current"
    assert titles(waited) == []

    problem(
        api.client.get(
            "/articles/search?q=tin", headers={**api.staff(), "X-Ordertrail-Wait-For": "soon"}
        ),
        400,
        "http.invalid_request",
    )
    for params in (
        {},
        {"q": "a\x00b"},
        {"q": "x" * 1001},
        {"q": "tin", "limit": 0},
        {"q": "tin", "limit": 101},
        {"q": "tin", "limit": "ten"},
        {"q": "tin", "category": "a\x1fb"},
    ):
        problem(search(api, **params), 400, "http.invalid_request")


def test_suggestions_for_a_case(api: Api) -> None:
    order = delivered_order(api, ("TEA-1", 2))
    case = opened(api, order["order_id"], description="the lid is cracked")
    both = published(api)  # quality_problem and tea
    published(
        api,
        title="Quality complaints",
        body="Apologise first.",
        tags=[],
        category="",
        reasons=["quality_problem"],
    )
    published(
        api, title="Brewing tea", body="Water at 90 degrees.", tags=[], category="tea", reasons=[]
    )
    published(
        api,
        title="Parcels that never came",
        body="Check tracking.",
        tags=[],
        category="",
        reasons=["missing_item"],
    )
    drafted(api, title="Unpublished advice", reasons=["quality_problem"])
    r = api.client.post(
        f"/cases/{case['case_id']}/articles",
        json={"article_id": both["article_id"]},
        headers=api.staff(),
    )
    assert r.status_code == 200, r.text
    written = r.headers["x-ordertrail-position"]
    api.settle()
    url = f"/cases/{case['case_id']}/suggestions"
    r = api.client.get(url, headers={**api.staff(), "X-Ordertrail-Wait-For": written})
    assert r.headers["x-ordertrail-consistency"] == "current"
    assert titles(r) == ["Cracked tea tins", "Quality complaints", "Brewing tea"]
    assert r.json()["hits"][0]["resolutions"] == 1
    assert titles(api.client.get(url, params={"limit": 1}, headers=api.staff())) == [
        "Cracked tea tins"
    ]
    problem(
        api.client.get(url, params={"limit": 0}, headers=api.staff()), 400, "http.invalid_request"
    )
    problem(api.client.get(url, headers=api.customer()), 403, "http.forbidden")
    problem(api.client.get(url), 401, "http.unauthorized")
    problem(
        api.client.get(f"/cases/{MISSING_ID}/suggestions", headers=api.staff()),
        404,
        "aftersales.case_not_found",
    )


def test_random_requests_never_cause_a_server_error(api: Api) -> None:
    article = drafted(api)
    live = published(api, title="Live")
    ids = path_ids(article["article_id"], live["article_id"])
    texts = often(st.sampled_from(["tea", "x" * 250]), TEXT)
    content = shaped(
        {
            "title": texts,
            "body": texts,
            "tags": st.lists(texts, max_size=3),
            "category": texts,
            "reasons": st.lists(st.sampled_from(["quality_problem", "missing_item"]), max_size=2),
        },
        {"tags": st.lists(TEXT, max_size=25), "reasons": st.lists(TEXT, max_size=2)},
    )
    fuzz_posts(
        api,
        st.one_of(
            st.tuples(st.just("/articles"), content),
            st.tuples(ids.map("/articles/{}/publish".format), shaped({})),
            st.tuples(ids.map("/articles/{}/retire".format), shaped({"reason": texts})),
        ),
    )

    @settings(max_examples=80, deadline=None)
    @given(article_id=ids, body=content)
    def revise_anything(article_id: str, body: Any) -> None:
        r = api.client.put(quote(f"/articles/{article_id}"), json=body, headers=api.staff())
        assert r.status_code < 500, (article_id, body, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith(PROBLEM)

    revise_anything()
    api.settle()

    @settings(max_examples=100, deadline=None)
    @given(
        q=often(st.sampled_from(["tea", '"tea tins" -x', "or", "-"]), st.text(max_size=40)),
        category=st.none() | st.text(max_size=20),
        limit=st.none() | st.integers(-2, 200) | JSON,
        case_id=st.uuids().map(str) | st.text(min_size=1, max_size=20),
    )
    def read_anything(q: str, category: str | None, limit: Any, case_id: str) -> None:
        params: dict[str, Any] = {"q": q}
        if category is not None:
            params["category"] = category
        if limit is not None:
            params["limit"] = str(limit)
        r = api.client.get("/articles/search", params=params, headers=api.staff())
        assert r.status_code < 500, (params, r.text)
        r = api.client.get(
            quote(f"/cases/{case_id}/suggestions"),
            params={"limit": params.get("limit", "5")},
            headers=api.staff(),
        )
        assert r.status_code < 500, (case_id, r.text)

    read_anything()
