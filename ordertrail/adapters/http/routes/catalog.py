"""Catalog commands and the product resource."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath
from msgspec import Meta

from ordertrail.adapters.http.auth import staff_only
from ordertrail.adapters.http.routes.common import accepted, context, etag, example, runtime_of
from ordertrail.adapters.http.schemas import Body, MoneyBody, MoneyReply, Reply, Sku, Text200
from ordertrail.application.catalog import (
    ChangePrice,
    DelistProduct,
    ProductSnapshot,
    RegisterProduct,
    RelistProduct,
    ReviseProduct,
)
from ordertrail.domain.catalog import Product

Attributes = Annotated[
    dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=200)]],
    Meta(max_length=50),
]
ImageUrls = Annotated[list[Annotated[str, Meta(max_length=2000)]], Meta(max_length=20)]

PRODUCT_EXAMPLE = {
    "sku": "TEA-OOLONG-100G",
    "title": "Tieguanyin oolong, 100 g",
    "category": "tea",
    "price": {"amount": 6800, "currency": "CNY"},
    "attributes": {"origin": "Anxi, Fujian"},
    "image_urls": ["https://img.example.com/tea-oolong-100g.jpg"],
}


class RegisterProductBody(Body):
    sku: Sku
    title: Text200
    category: Annotated[str, Meta(min_length=1, max_length=100)]
    price: MoneyBody
    attributes: Attributes = {}
    image_urls: ImageUrls = []
    listed: bool = True


class ReviseProductBody(Body):
    title: Text200 | None = None
    category: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    attributes: Attributes | None = None
    image_urls: ImageUrls | None = None


class PriceBody(Body):
    price: MoneyBody


class DelistBody(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["recalled"])]


class ProductReply(Reply):
    sku: str
    title: str
    category: str
    price: MoneyReply
    listed: bool
    attributes: dict[str, str]
    image_urls: list[str]
    version: int

    @classmethod
    def of(cls, product: Product) -> ProductReply:
        return cls(
            sku=product.sku,
            title=product.title,
            category=product.category,
            price=MoneyReply.of(product.price),
            listed=product.listed,
            attributes=dict(product.attributes),
            image_urls=list(product.image_urls),
            version=product.version,
        )


def _snapshot_reply(state: State, snapshot: ProductSnapshot) -> ProductReply:
    return ProductReply.of(runtime_of(state).ot.catalog.product(snapshot.sku))


@post(
    "/products",
    summary="Register a product",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["catalog"],
    status_code=201,
)
def register_product(
    state: State,
    request: Request[Any, Any, Any],
    data: Annotated[RegisterProductBody, example(PRODUCT_EXAMPLE)],
) -> Response[ProductReply]:
    runtime = runtime_of(state)
    result = runtime.ot.catalog.register_product(
        RegisterProduct(
            data.sku,
            data.title,
            data.category,
            data.price.to_money(),
            dict(data.attributes),
            tuple(data.image_urls),
            data.listed,
        ),
        context(request),
    )
    return accepted(
        result,
        _snapshot_reply(state, result.value),
        status=201,
        version=result.value.version,
        location=f"/products/{data.sku}",
    )


@get(
    "/products/{sku:str}",
    summary="One product, from its events (with its ETag)",
    opt={"public": True},
    sync_to_thread=True,
    tags=["catalog"],
)
def get_product(state: State, sku: FromPath[str]) -> Response[ProductReply]:
    product = runtime_of(state).ot.catalog.product(sku)
    return Response(ProductReply.of(product), headers={"ETag": etag(product.version)})


@patch(
    "/products/{sku:str}",
    summary="Revise a product's details (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["catalog"],
)
def revise_product(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    data: Annotated[ReviseProductBody, example({"title": "Tieguanyin, spring 2026"})],
) -> Response[ProductReply]:
    result = runtime_of(state).ot.catalog.revise_product(
        ReviseProduct(
            sku,
            data.title,
            data.category,
            None if data.attributes is None else dict(data.attributes),
            None if data.image_urls is None else tuple(data.image_urls),
        ),
        context(request, versioned=True),
    )
    return accepted(result, _snapshot_reply(state, result.value), version=result.value.version)


@post(
    "/products/{sku:str}/price",
    summary="Change a product's price (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["catalog"],
    status_code=200,
)
def change_price(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    data: Annotated[PriceBody, example({"price": {"amount": 7200, "currency": "CNY"}})],
) -> Response[ProductReply]:
    result = runtime_of(state).ot.catalog.change_price(
        ChangePrice(sku, data.price.to_money()), context(request, versioned=True)
    )
    return accepted(result, _snapshot_reply(state, result.value), version=result.value.version)


@post(
    "/products/{sku:str}/delist",
    summary="Stop selling a product (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["catalog"],
    status_code=200,
)
def delist_product(
    state: State,
    request: Request[Any, Any, Any],
    sku: FromPath[str],
    data: Annotated[DelistBody, example({"reason": "out of season"})],
) -> Response[ProductReply]:
    result = runtime_of(state).ot.catalog.delist_product(
        DelistProduct(sku, data.reason), context(request, versioned=True)
    )
    return accepted(result, _snapshot_reply(state, result.value), version=result.value.version)


@post(
    "/products/{sku:str}/relist",
    summary="Sell a delisted product again (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["catalog"],
    status_code=200,
)
def relist_product(
    state: State, request: Request[Any, Any, Any], sku: FromPath[str]
) -> Response[ProductReply]:
    result = runtime_of(state).ot.catalog.relist_product(
        RelistProduct(sku), context(request, versioned=True)
    )
    return accepted(result, _snapshot_reply(state, result.value), version=result.value.version)


ROUTES = [
    register_product,
    get_product,
    revise_product,
    change_price,
    delist_product,
    relist_product,
]
