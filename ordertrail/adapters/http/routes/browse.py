"""Browsing the catalog (public): full-text search, filters and keyset pagination over
the listed products, from the ``catalog_browse`` read model."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.params import QueryParameter

from ordertrail.adapters.http.routes.common import runtime_of, wait_for_read_model
from ordertrail.adapters.http.schemas import MoneyReply, Reply
from ordertrail.domain.money import MAX_MINOR_UNITS
from ordertrail.projections.catalog import (
    DEFAULT_LIMIT,
    MAX_ATTRIBUTE_FILTERS,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    CatalogBrowse,
    CatalogBrowseQueries,
    InvalidCursor,
    InvalidFilter,
    ProductCard,
)


class ProductCardReply(Reply):
    sku: str
    title: str
    category: str
    attributes: dict[str, str]
    image_urls: list[str]
    price: MoneyReply

    @classmethod
    def of(cls, card: ProductCard) -> ProductCardReply:
        return cls(
            sku=card.sku,
            title=card.title,
            category=card.category,
            attributes=dict(card.attributes),
            image_urls=list(card.image_urls),
            price=MoneyReply.of(card.price),
        )


class ProductPage(Reply):
    items: list[ProductCardReply]
    next_cursor: str | None


def attribute_filters(raw: list[str] | None) -> list[tuple[str, str]]:
    """``color:red`` → ("color", "red"): split at the first colon; the name is not empty."""
    filters = []
    for item in raw or []:
        name, colon, value = item.partition(":")
        if not colon or not name:
            raise ClientException("attr is name:value, such as attr=color:red")
        filters.append((name, value))
    return filters


@get(
    "/catalog/products",
    summary="Browse listed products: text search, category, attributes, price range",
    description="`q` searches titles and attributes (words that must all appear, "
    '`"a phrase"`, `-excluded`, `or`); `attr=name:value` (repeatable) and `category` match '
    "exactly; prices are minor units, inclusive. Results come by relevance when `q` is "
    "given, else by title; `next_cursor` continues the listing.",
    opt={"public": True},
    sync_to_thread=True,
    tags=["catalog"],
)
def browse_products(
    state: State,
    request: Request[Any, Any, Any],
    *,
    q: Annotated[
        str | None,
        QueryParameter(max_length=1000, description="words in the title or attributes"),
    ] = None,
    category: Annotated[
        str | None, QueryParameter(max_length=100, description="exact category")
    ] = None,
    attr: Annotated[
        list[str] | None,
        QueryParameter(
            max_items=MAX_ATTRIBUTE_FILTERS,
            description="name:value, exact (repeat for several, all must match)",
        ),
    ] = None,
    min_price: Annotated[
        int | None, QueryParameter(ge=0, le=MAX_MINOR_UNITS, description="minor units")
    ] = None,
    max_price: Annotated[
        int | None, QueryParameter(ge=0, le=MAX_MINOR_UNITS, description="minor units")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        QueryParameter(max_length=MAX_CURSOR_CHARS, description="next_cursor of the previous page"),
    ] = None,
) -> Response[ProductPage]:
    runtime = runtime_of(state)
    headers: dict[str, str] = {}
    if CatalogBrowse.name in runtime.read.workers:
        headers = wait_for_read_model(request, runtime, CatalogBrowse.name)
    try:
        page = CatalogBrowseQueries(runtime.read.store).browse(
            text=q,
            category=category,
            attributes=attribute_filters(attr),
            min_price=min_price,
            max_price=max_price,
            limit=limit,
            cursor=cursor,
        )
    except (InvalidCursor, InvalidFilter) as error:
        raise ClientException(str(error)) from None
    return Response(
        ProductPage(
            items=[ProductCardReply.of(card) for card in page.items],
            next_cursor=page.next_cursor,
        ),
        headers=headers,
    )


ROUTES: list[Any] = [browse_products]
