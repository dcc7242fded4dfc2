"""Demo data and a demo scenario: a small tea shop's first afternoon.

``seed_catalog`` gives any store a catalog and stock to play with; ``run_scenario`` walks
orders through their lives (paid, cash on delivery, cancelled, expired, refused, refunded)
and reports what happened.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from ordertrail.application.catalog import RegisterProduct
from ordertrail.application.context import CommandContext
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.ordering import CancelOrder, PlaceOrder
from ordertrail.application.orders import (
    AuthorizePayment,
    CapturePayment,
    ConfirmCashOnDelivery,
    OrderSnapshot,
    RefundPayment,
)
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Ordertrail
from ordertrail.domain import (
    Actor,
    Address,
    DeliveryGroup,
    DomainError,
    Money,
    PaymentMethod,
    PlannedPayment,
)

CATALOG: tuple[tuple[str, str, str, int, dict[str, str], int], ...] = (
    ("TEA-OOLONG-100G", "Tieguanyin oolong, 100 g", "tea", 6800, {"origin": "Anxi, Fujian"}, 120),
    ("TEA-PUER-357G", "Aged pu'er cake, 357 g", "tea", 32800, {"vintage": "2015"}, 12),
    ("CUP-CELADON", "Celadon tasting cup", "teaware", 4500, {"glaze": "celadon"}, 60),
    ("KETTLE-GLASS", "Glass kettle, 1 l", "teaware", 15900, {"capacity": "1 l"}, 8),
    ("GIFT-BOX", "Gift box", "gifts", 2000, {}, 3),
)


DEMO_MARKER = ".ordertrail-demo"


def fresh_demo_dir(data_dir: Path) -> Path:
    """``data_dir`` emptied for a new demo store (only if a demo made it), as an absolute
    path; a directory that was not made by a demo is used as it is."""
    if data_dir.exists() and (data_dir / DEMO_MARKER).exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).touch()
    return data_dir.resolve()


class SimulatedClock:
    """Real time, plus any time the scenario lets pass."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def cny(amount: int) -> Money:
    return Money(amount, "CNY")


def staff() -> CommandContext:
    return CommandContext(actor=Actor.of("staff", "mei"))


def shopper(name: str) -> CommandContext:
    return CommandContext(actor=Actor.of("customer", name))


def alipay() -> CommandContext:
    return CommandContext(actor=Actor.of("provider", "alipay"))


def seed_catalog(ot: Ordertrail) -> int:
    """Register the demo products and receive their stock; skip what already exists."""
    added = 0
    for sku, title, category, price, attributes, stock in CATALOG:
        try:
            ot.catalog.register_product(
                RegisterProduct(
                    sku,
                    title,
                    category,
                    cny(price),
                    attributes,
                    (f"https://img.example.com/{sku.lower()}.jpg",),
                ),
                staff(),
            )
        except DomainError as error:
            if error.code != "catalog.sku_taken":
                raise
            continue
        ot.inventory.receive_stock(ReceiveStock(sku, stock, reference="PO-2026-001"), staff())
        added += 1
    return added


def _address(recipient: str, city: str, line1: str) -> Address:
    return Address.create(
        recipient=recipient, phone="+86 139 0000 0000", line1=line1, city=city, country="CN"
    )


@dataclass
class Scenario:
    ot: Ordertrail
    clock: SimulatedClock
    say: Callable[[str], None]

    def order(
        self,
        who: str,
        lines: list[tuple[str, int, str]],
        groups: list[DeliveryGroup],
        plan: list[tuple[PaymentMethod, int]],
    ) -> OrderSnapshot:
        command = PlaceOrder(
            customer_id=who,
            lines=tuple(LineRequest(sku, qty, group) for sku, qty, group in lines),
            delivery_groups=tuple(groups),
            payment_plan=tuple(PlannedPayment(m, cny(a)) for m, a in plan),
        )
        return self.ot.ordering.place_order(command, shopper(who)).value

    def capture(self, order: OrderSnapshot, index: int, amount: int, ref: str) -> OrderSnapshot:
        command = CapturePayment(order.order_id, order.payments[index].payment_id, cny(amount), ref)
        return self.ot.orders.capture_payment(command, alipay()).value

    def stock(self, sku: str) -> str:
        level = self.ot.inventory.stock_level(sku)
        return (
            f"{sku}: {level.on_hand} on hand, {level.reserved} reserved, "
            f"{level.available} available"
        )


def run_scenario(
    ot: Ordertrail, clock: SimulatedClock, say: Callable[[str], None]
) -> dict[str, UUID]:
    """Walk six orders through their lives; return their ids by name."""
    s = Scenario(ot, clock, say)
    seeded = seed_catalog(ot)
    say(f"Catalog: {seeded} products registered and stocked.")
    home = DeliveryGroup("home", _address("Li Lei", "Shanghai", "88 Huaihai Road"))
    office = DeliveryGroup("office", _address("Li Lei", "Shanghai", "1 Century Avenue"))
    parents = DeliveryGroup("parents", _address("Li Wei", "Hangzhou", "5 West Lake Road"))

    paid = s.order(
        "li-lei", [("TEA-OOLONG-100G", 2, "home")], [home], [(PaymentMethod.ALIPAY, 13600)]
    )
    paid = s.capture(paid, 0, 13600, "alipay-2026-0001")
    say(f"Order A (Alipay, 136.00 CNY) paid in full: {paid.status.value}.")

    cod = s.order(
        "han-mei", [("CUP-CELADON", 4, "home")], [home], [(PaymentMethod.CASH_ON_DELIVERY, 18000)]
    )
    cod = ot.orders.confirm_cash_on_delivery(ConfirmCashOnDelivery(cod.order_id), staff()).value
    say(
        f"Order B (cash on delivery) confirmed by staff: {cod.status.value}; "
        "the cash is collected when it is delivered."
    )

    split = s.order(
        "li-lei",
        [("TEA-PUER-357G", 1, "parents"), ("CUP-CELADON", 2, "office"), ("GIFT-BOX", 1, "parents")],
        [office, parents],
        [(PaymentMethod.CARD, 20000), (PaymentMethod.WECHAT_PAY, 23800)],
    )
    ot.orders.authorize_payment(
        AuthorizePayment(split.order_id, split.payments[0].payment_id, cny(20000), "card-77"),
        alipay(),
    )
    say(
        f"Order C ships to two addresses (office, parents), paid by card and WeChat Pay; "
        f"{s.stock('TEA-PUER-357G')}."
    )
    split = ot.ordering.cancel_order(
        CancelOrder(split.order_id, "ordered by mistake"), shopper("li-lei")
    ).value
    say(
        f"Order C cancelled: {split.status.value}; card authorization "
        f"{split.payments[0].state.value}; {s.stock('TEA-PUER-357G')}."
    )

    unpaid = s.order(
        "zhao-yun", [("KETTLE-GLASS", 2, "home")], [home], [(PaymentMethod.WECHAT_PAY, 31800)]
    )
    say(
        f"Order D (WeChat Pay) waits for payment until {unpaid.payment_due_at:%H:%M} UTC; "
        f"{s.stock('KETTLE-GLASS')}."
    )
    clock.advance(ot.config.payment_window + timedelta(minutes=1))
    ot.run_processes()
    expired = ot.orders.order(unpaid.order_id)
    say(
        f"{ot.config.payment_window} later, order D is {expired.status.value}; "
        f"{s.stock('KETTLE-GLASS')}."
    )

    try:
        s.order("sun-li", [("GIFT-BOX", 5, "home")], [home], [(PaymentMethod.ALIPAY, 10000)])
    except DomainError as error:
        say(f"Order E for 5 gift boxes refused: {error.code} ({error.message}).")

    refunded = s.order(
        "han-mei", [("TEA-OOLONG-100G", 3, "home")], [home], [(PaymentMethod.ALIPAY, 20400)]
    )
    s.capture(refunded, 0, 20400, "alipay-2026-0002")
    refunded = ot.orders.refund_payment(
        RefundPayment(
            refunded.order_id,
            refunded.payments[0].payment_id,
            cny(6800),
            "refund-0001",
            "one tin arrived dented",
        ),
        staff(),
    ).value
    say(
        f"Order F paid 204.00 CNY, then 68.00 CNY refunded: captured "
        f"{refunded.captured.amount}, refunded {refunded.refunded.amount} (minor units)."
    )

    ctx = shopper("li-lei")
    command = PlaceOrder(
        "li-lei",
        (LineRequest("CUP-CELADON", 1, "home"),),
        (home,),
        (PlannedPayment(PaymentMethod.ALIPAY, cny(4500)),),
    )
    first = ot.ordering.place_order(command, ctx)
    again = ot.ordering.place_order(command, ctx)
    say(
        f"Order G sent twice with one command id: same order "
        f"({first.value.order_id == again.value.order_id}), second was a replay "
        f"({again.replayed})."
    )

    say("Stock now:")
    for sku, *_ in CATALOG:
        say(f"  {s.stock(sku)}")
    return {
        "A": paid.order_id,
        "B": cod.order_id,
        "C": split.order_id,
        "D": unpaid.order_id,
        "F": refunded.order_id,
        "G": first.value.order_id,
    }
