"""Unknown query parameters are refused (400), not silently ignored: a misspelt filter
(``?stauts=paid``) would otherwise answer as if no filter had been asked for."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler

_CACHE = "_ordertrail_query_names"


def query_names(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameters a handler declares, by the names clients send (kept on the
    handler itself: an id-keyed cache would outlive handlers and be reused by others)."""
    names: frozenset[str] | None = getattr(handler, _CACHE, None)
    if names is None:
        found = set()
        for name, parameter in handler.parsed_fn_signature.parameters.items():
            definition = parameter.kwarg_definition
            alias = getattr(definition, "query", None) or getattr(definition, "name", None)
            found.add(alias or name)
        names = frozenset(found)
        setattr(handler, _CACHE, names)
    return names


async def refuse_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    if request.url.path.startswith("/schema") or not request.query_params:
        return
    unknown = sorted(set(request.query_params) - query_names(request.route_handler))
    if unknown:
        raise ValidationException(
            detail=f"unknown query parameter(s): {', '.join(map(repr, unknown))}",
            extra=[
                {"message": "unknown query parameter", "key": key, "source": "query"}
                for key in unknown
            ],
        )
