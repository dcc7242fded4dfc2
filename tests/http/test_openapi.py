"""The served OpenAPI 3.1 document: every operation is summarised, every request body has
an example, every error answer is a documented problem, and the docs pages are served."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api

METHODS = ("get", "post", "put", "patch", "delete")


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def has_example(content: dict[str, Any], schema: dict[str, Any]) -> bool:
    for media in content.values():
        if media.get("example") is not None or media.get("examples"):
            return True
        body = media.get("schema", {})
        if body.get("examples"):
            return True
        refs = [body.get("$ref", "")] + [part.get("$ref", "") for part in body.get("allOf", [])]
        for ref in filter(None, refs):
            component = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
            if component.get("examples") or component.get("example") is not None:
                return True
    return False


def test_every_operation_has_a_summary_and_every_body_an_example(api: Api) -> None:
    r = api.client.get("/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.1")
    ops = operations(schema)
    assert len(ops) >= 56
    unsummarised = [f"{m} {p}" for m, p, op in ops if not op.get("summary")]
    assert unsummarised == []
    without_example = [
        f"{m} {p}"
        for m, p, op in ops
        if "requestBody" in op and not has_example(op["requestBody"]["content"], schema)
    ]
    assert without_example == []
    undocumented_errors = [
        f"{m} {p}"
        for m, p, op in ops
        if not {"400", "401", "404", "422"} <= set(op.get("responses", {}))
    ]
    assert undocumented_errors == []


def test_the_interactive_docs_are_served(api: Api) -> None:
    for page in ("/schema", "/schema/swagger"):
        r = api.client.get(page)
        assert r.status_code == 200, page
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>ordertrail</title>" in r.text
