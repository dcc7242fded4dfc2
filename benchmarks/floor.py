"""The floor of order placement: the work one order needs that no store, driver or thread
can take away, timed in one thread with no I/O.

    python benchmarks/floor.py [--orders 5000]

For each order of the flash sale's shape (one line, one delivery group, one online
payment) it does what the placement path must compute — check the order's rules, decide
the order, reserve its stock on an in-memory record, make the receipt, encode the three
events and hash them into the audit chain — and nothing else: no SQL, no threads, no
waiting. The rate it prints is what one core could place if everything else were free.

``flash_sale.py`` runs it in the same run as its baselines and puts it beside PostgreSQL's
CPU per order, measured during the in-process run, to give the machine's ceiling: no
design on this stack places orders faster than ``cores / (floor + PostgreSQL per order)``.
"""

# ruff: noqa: PLC0415
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHASES = ("check", "decide", "reserve", "receipt", "encode", "chain")


def domain_floor(orders: int = 5000) -> dict[str, Any]:
    """Time ``orders`` placements' own work in this thread; per-phase µs per order."""
    from datetime import UTC, datetime, timedelta

    from ordertrail.adapters.audit.chain import GENESIS, link_hash
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.orders import OrderSnapshot
    from ordertrail.application.placement import allocate
    from ordertrail.application.receipts import CommandReceipt, fingerprint
    from ordertrail.application.serialization import encode_json
    from ordertrail.application.system import Config
    from ordertrail.domain import ids

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{folder}", config=Config(payment_window=timedelta(hours=2))
        )
        with open_ordertrail(settings) as ot:
            now = datetime.now(UTC)
            product, item, commands = _sale(ot, orders, now)
            ordering = ot.ordering
            orders_mapper, stock_mapper = ot.orders.mapper, ot.inventory.mapper
            spent = dict.fromkeys(PHASES, 0.0)
            prev, position, events = GENESIS, 0, 0
            for command, ctx in commands:
                t0 = time.perf_counter()
                order_id = ids.order_id(ctx.command_id)
                digest = fingerprint("PlaceOrder", command)
                products, groups, candidates = ordering._prepared(
                    command, order_id, {product.sku: product}
                )
                t1 = time.perf_counter()
                chosen = allocate(command.lines, candidates, {(item.sku, "main"): item.available})
                order = ordering.decide_order(
                    command, ctx, order_id=order_id, products=products, groups=groups,
                    chosen=chosen, now=now,
                )
                t2 = time.perf_counter()
                for quantity in order.reserved_quantities().values():
                    item.reserve(order_id, quantity, expires_at=order.payment_due_at,
                                 meta=ctx.meta, now=now)
                t3 = time.perf_counter()
                receipt = CommandReceipt.record(
                    ctx.command_id, command_name="PlaceOrder", fingerprint=digest,
                    outcome=encode_json(OrderSnapshot.of(order)), meta=ctx.meta, now=now,
                )
                t4 = time.perf_counter()
                stored = [orders_mapper.to_stored_event(e) for e in order.collect_events()]
                stored += [orders_mapper.to_stored_event(e) for e in receipt.collect_events()]
                stored += [stock_mapper.to_stored_event(e) for e in item.collect_events()]
                t5 = time.perf_counter()
                for event in stored:
                    position += 1
                    prev = link_hash(prev, position, event.originator_id,
                                     event.originator_version, event.topic, event.state)
                t6 = time.perf_counter()
                events += len(stored)
                for phase, began, ended in zip(PHASES, (t0, t1, t2, t3, t4, t5),
                                               (t1, t2, t3, t4, t5, t6), strict=True):
                    spent[phase] += ended - began
    seconds = sum(spent.values())
    return {
        "orders": orders,
        "seconds": seconds,
        "events_per_order": events / orders,
        "us_per_order": {phase: round(s / orders * 1e6, 1) for phase, s in spent.items()},
    }


def _sale(ot: Any, orders: int, now: Any) -> tuple[Any, Any, list[Any]]:
    """One product with stock for ``orders`` (saved), and the flash sale's commands."""
    from uuid import uuid4

    from benchmarks.flash_sale import ADDRESS, HOT, PRICE
    from ordertrail.application.context import CommandContext
    from ordertrail.application.ordering import PlaceOrder
    from ordertrail.application.placement import LineRequest
    from ordertrail.domain import (
        Actor,
        Address,
        DeliveryGroup,
        EventMeta,
        InventoryItem,
        Money,
        PaymentMethod,
        PlannedPayment,
        Product,
    )

    meta = EventMeta(Actor.system("bench"), uuid4(), uuid4())
    product = Product.register(
        sku=HOT, title="Hot", category="tea", price=Money(PRICE, "CNY"), meta=meta, now=now
    )
    ot.catalog.save_all([product])
    item = InventoryItem.open(sku=HOT, warehouse="main", meta=meta, now=now)
    item.receive(orders + 1, meta=meta, now=now)
    ot.inventory.save_all([item])
    group = DeliveryGroup("home", Address.create(**ADDRESS))
    commands = [
        (
            PlaceOrder(
                customer_id=f"buyer-{n}",
                lines=(LineRequest(HOT, 1, "home"),),
                delivery_groups=(group,),
                payment_plan=(PlannedPayment(PaymentMethod.ALIPAY, Money(PRICE, "CNY")),),
            ),
            CommandContext(Actor.of("customer", f"buyer-{n}")),
        )
        for n in range(orders)
    ]
    return product, item, commands


def ceiling(floor_us: float, postgres_us: float, cores: int) -> float:
    """Orders/s that ``cores`` could place if an order cost only its floor in Python and
    its measured share of PostgreSQL's CPU (no driver, no threads, no waiting)."""
    return cores / ((floor_us + postgres_us) / 1e6)


def run_in_child(orders: int) -> dict[str, Any]:
    """``domain_floor`` in a fresh process (nothing else of the harness in its heap)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(domain_floor, (orders,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    args = parser.parse_args(argv)
    got = domain_floor(args.orders)
    per = got["us_per_order"]
    print("| phase | µs per order |\n|---|---:|")
    for phase in PHASES:
        print(f"| {phase} | {per[phase]:.1f} |")
    total = got["seconds"] / got["orders"] * 1e6
    print(f"| **total** | **{total:.1f}** |")
    print(f"\n{got['orders'] / got['seconds']:,.0f} orders/s on one core; "
          f"{got['events_per_order']:.0f} events per order")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
