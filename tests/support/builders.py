"""Small builders for test data, so tests read as the behaviour they pin down."""

from __future__ import annotations

from uuid import UUID, uuid4

from ordertrail.application.catalog import RegisterProduct
from ordertrail.application.context import CommandContext
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.ordering import PlaceOrder
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Ordertrail
from ordertrail.domain import (
    Actor,
    Address,
    DeliveryGroup,
    Money,
    PaymentMethod,
    PlannedPayment,
)


def cny(amount: int) -> Money:
    return Money(amount, "CNY")


def staff(command_id: UUID | None = None) -> CommandContext:
    return CommandContext(actor=Actor.of("staff", "alice"), command_id=command_id or uuid4())


def customer(name: str = "cust-1", command_id: UUID | None = None) -> CommandContext:
    return CommandContext(actor=Actor.of("customer", name), command_id=command_id or uuid4())


def provider(command_id: UUID | None = None) -> CommandContext:
    return CommandContext(actor=Actor.of("provider", "alipay"), command_id=command_id or uuid4())


def address(country: str = "CN", city: str = "Shanghai") -> Address:
    return Address.create(
        recipient="Li Lei",
        phone="+86 138 0000 0000",
        line1="1 Huaihai Road",
        city=city,
        country=country,
    )


def home(country: str = "CN") -> DeliveryGroup:
    return DeliveryGroup("home", address(country))


def stocked_product(
    ot: Ordertrail, sku: str, price: int, stock: int, warehouse: str = "main"
) -> None:
    ot.catalog.register_product(RegisterProduct(sku, f"Product {sku}", "tea", cny(price)), staff())
    if stock:
        ot.inventory.receive_stock(ReceiveStock(sku, stock, warehouse), staff())


def order_of(
    *lines: tuple[str, int],
    total: int,
    method: PaymentMethod = PaymentMethod.ALIPAY,
    group: DeliveryGroup | None = None,
    customer_id: str = "cust-1",
) -> PlaceOrder:
    """An order of ``(sku, quantity)`` lines to one address, paid by one method."""
    chosen = group or home()
    return PlaceOrder(
        customer_id=customer_id,
        lines=tuple(LineRequest(sku, qty, chosen.group_id) for sku, qty in lines),
        delivery_groups=(chosen,),
        payment_plan=(PlannedPayment(method, cny(total)),),
    )


def heads(ot: Ordertrail) -> dict[str, int]:
    """The newest position of every store: unchanged heads mean nothing was written."""
    return {app.name: app.head() for app in (ot.catalog, ot.inventory, ot.orders)}
