"""Carts: a customer fills one, says where each line goes and how to pay, and checks it
out into an order — through the same placement as ``POST /orders`` (prices from the
catalog, stock reserved all-or-nothing, one order per cart however often checkout is
retried, ``Idempotency-Key`` honoured, rate-limited like order placement).

Only customers change carts, and only their own; staff may read them. Another customer's
cart and a cart that does not exist answer the same 404. Changes take an optional
``If-Match`` (the cart's ETag).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from msgspec import Meta

from ordertrail.adapters.http.auth import Role, customers_and_staff, principal_of, requires
from ordertrail.adapters.http.routes.common import (
    accepted,
    context,
    etag,
    example,
    if_match,
    not_found,
    runtime_of,
    visible_to,
)
from ordertrail.adapters.http.routes.orders import ADDRESS_EXAMPLE, OrderReply
from ordertrail.adapters.http.schemas import (
    AddressBody,
    AddressReply,
    Body,
    Code,
    MoneyBody,
    MoneyReply,
    Reply,
)
from ordertrail.application.carts import (
    CheckOut,
    ChoosePayment,
    OpenCart,
    PutItem,
    SetDeliveryAddress,
)
from ordertrail.application.errors import VersionMismatch
from ordertrail.application.receipts import Accepted
from ordertrail.domain.cart import MAX_LINE_QUANTITY, Cart, PaymentChoice
from ordertrail.domain.errors import CartNotFound
from ordertrail.domain.payments import PaymentMethod

customers_only = requires(Role.CUSTOMER)


class PutItemBody(Body):
    """How many of the SKU go to the delivery group; 0 takes it out."""

    quantity: Annotated[int, Meta(ge=0, le=MAX_LINE_QUANTITY, examples=[2])]
    delivery_group: Code = "default"


class PaymentChoiceBody(Body):
    """A method; with several, each names its amount (one method pays the whole total)."""

    method: PaymentMethod
    amount: MoneyBody | None = None


class CartLineReply(Reply):
    sku: str
    quantity: int
    delivery_group: str


class PaymentChoiceReply(Reply):
    method: PaymentMethod
    amount: MoneyReply | None


class CartReply(Reply):
    cart_id: UUID
    customer_id: str
    lines: list[CartLineReply]
    addresses: dict[str, AddressReply]
    payment: list[PaymentChoiceReply]
    order_id: UUID | None
    version: int

    @classmethod
    def of(cls, cart: Cart) -> CartReply:
        return cls(
            cart_id=cart.id,
            customer_id=cart.customer_id,
            lines=[
                CartLineReply(sku=sku, quantity=quantity, delivery_group=group)
                for (sku, group), quantity in sorted(cart.items.items())
            ],
            addresses={
                group: AddressReply.of(address) for group, address in sorted(cart.addresses.items())
            },
            payment=[
                PaymentChoiceReply(
                    method=choice.method,
                    amount=None if choice.amount is None else MoneyReply.of(choice.amount),
                )
                for choice in cart.payment
            ],
            order_id=cart.order_id,
            version=cart.version,
        )


def owned_cart(state: State, request: Request[Any, Any, Any], cart_id: UUID) -> Cart:
    """The cart, if the caller may see it: customers only their own. An unknown cart and
    another customer's answer the same 404, so cart ids cannot be probed."""
    try:
        cart = runtime_of(state).ot.carts.cart(cart_id)
    except CartNotFound:
        raise not_found("cart") from None
    visible_to(principal_of(request), cart.customer_id, "cart")
    return cart


def _changed(state: State, result: Accepted[Any], cart_id: UUID) -> Response[CartReply]:
    cart = runtime_of(state).ot.carts.cart(cart_id)
    return accepted(result, CartReply.of(cart), version=cart.version)


@post(
    "/carts",
    summary="Open a cart",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
    status_code=201,
)
def open_cart(state: State, request: Request[Any, Any, Any]) -> Response[CartReply]:
    runtime = runtime_of(state)
    result = runtime.ot.carts.open_cart(OpenCart(principal_of(request).subject), context(request))
    cart = runtime.ot.carts.cart(result.value.cart_id)
    return accepted(
        result,
        CartReply.of(cart),
        status=201,
        version=cart.version,
        location=f"/carts/{cart.id}",
    )


@get(
    "/carts/{cart_id:uuid}",
    summary="One cart (with its ETag)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["carts"],
)
def get_cart(
    state: State, request: Request[Any, Any, Any], cart_id: FromPath[UUID]
) -> Response[CartReply]:
    cart = owned_cart(state, request, cart_id)
    return Response(CartReply.of(cart), headers={"ETag": etag(cart.version)})


@put(
    "/carts/{cart_id:uuid}/items/{sku:str}",
    summary="Set how many of a SKU go to a delivery group (0 takes it out; If-Match)",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
)
def put_item(
    state: State,
    request: Request[Any, Any, Any],
    cart_id: FromPath[UUID],
    sku: FromPath[str],
    data: Annotated[PutItemBody, example({"quantity": 2, "delivery_group": "home"})],
) -> Response[CartReply]:
    owned_cart(state, request, cart_id)
    result = runtime_of(state).ot.carts.put_item(
        PutItem(cart_id, sku, data.quantity, data.delivery_group),
        context(request, versioned=True),
    )
    return _changed(state, result, cart_id)


@delete(
    "/carts/{cart_id:uuid}/items/{sku:str}",
    summary="Take a SKU out of a delivery group (If-Match)",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
    status_code=200,
)
def remove_item(
    state: State,
    request: Request[Any, Any, Any],
    cart_id: FromPath[UUID],
    sku: FromPath[str],
    delivery_group: Annotated[str, QueryParameter(max_length=64)] = "default",
) -> Response[CartReply]:
    owned_cart(state, request, cart_id)
    result = runtime_of(state).ot.carts.put_item(
        PutItem(cart_id, sku, 0, delivery_group), context(request, versioned=True)
    )
    return _changed(state, result, cart_id)


@put(
    "/carts/{cart_id:uuid}/addresses/{delivery_group:str}",
    summary="Set the address of a delivery group (If-Match)",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
)
def set_address(
    state: State,
    request: Request[Any, Any, Any],
    cart_id: FromPath[UUID],
    delivery_group: FromPath[str],
    data: Annotated[AddressBody, example(ADDRESS_EXAMPLE)],
) -> Response[CartReply]:
    owned_cart(state, request, cart_id)
    result = runtime_of(state).ot.carts.set_delivery_address(
        SetDeliveryAddress(cart_id, delivery_group, data.to_address()),
        context(request, versioned=True),
    )
    return _changed(state, result, cart_id)


@put(
    "/carts/{cart_id:uuid}/payment",
    summary="Choose how to pay: one method, or up to five with amounts (If-Match)",
    description="One to five choices (else 422 cart.invalid); with several, each names a "
    "positive amount and together they must add up to the total at checkout.",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
)
def choose_payment(
    state: State,
    request: Request[Any, Any, Any],
    cart_id: FromPath[UUID],
    data: Annotated[
        list[PaymentChoiceBody],
        example(
            [
                {"method": "alipay", "amount": {"amount": 10000, "currency": "CNY"}},
                {"method": "cash_on_delivery", "amount": {"amount": 3600, "currency": "CNY"}},
            ],
            "split between Alipay and cash on delivery",
        ),
    ],
) -> Response[CartReply]:
    owned_cart(state, request, cart_id)
    choices = tuple(
        PaymentChoice(c.method, None if c.amount is None else c.amount.to_money()) for c in data
    )
    result = runtime_of(state).ot.carts.choose_payment(
        ChoosePayment(cart_id, choices), context(request, versioned=True)
    )
    return _changed(state, result, cart_id)


@post(
    "/carts/{cart_id:uuid}/checkout",
    summary="Check the cart out into an order (prices from the catalog; stock reserved)",
    description="Places the cart's order exactly once: a retry (or a checkout of a cart "
    "already checked out) answers the same order. An If-Match naming an older version of "
    "the cart is refused.",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["carts"],
    status_code=201,
)
def check_out(
    state: State, request: Request[Any, Any, Any], cart_id: FromPath[UUID]
) -> Response[OrderReply]:
    cart = owned_cart(state, request, cart_id)
    expected = if_match(request)
    if expected is not None and cart.order_id is None and expected != cart.version:
        raise VersionMismatch(
            f"it is at version {cart.version}, not {expected}: reload it and try again",
            expected=expected,
            actual=cart.version,
        )
    runtime = runtime_of(state)
    result = runtime.ot.carts.check_out(CheckOut(cart_id), context(request))
    order = runtime.ot.orders.order(result.value.order_id)
    return accepted(
        result,
        OrderReply.of(order),
        status=201,
        version=order.version,
        location=f"/orders/{order.id}",
    )


ROUTES: list[Any] = [
    open_cart,
    get_cart,
    put_item,
    remove_item,
    set_address,
    choose_payment,
    check_out,
]
