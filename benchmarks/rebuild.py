"""Rebuild throughput of every read model on PostgreSQL, in events per second.

    python -m benchmarks.rebuild [--orders 20000]

Starts a throwaway PostgreSQL cluster with durable settings (fsync and synchronous commit
on), writes a history through the domain (orders placed, paid, some cancelled; parcels
shipped and delivered; some returns), then rebuilds each read model from scratch. The
baseline, measured in the same run, is reading and decoding every event of the read
model's sources without writing anything: a rebuild cannot beat it.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from benchmarks.machine import describe
from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.devdb import DURABLE, throwaway_cluster
from ordertrail.adapters.read_models import READ_MODELS, ReadSide, read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain import (
    Actor,
    Address,
    DeliveryGroup,
    EventMeta,
    InventoryItem,
    Money,
    Order,
    OrderLine,
    PaymentMethod,
    PlannedPayment,
    Product,
)
from ordertrail.domain.fulfilment import ParcelQuantity

SKUS = [f"SKU-{n:04d}" for n in range(200)]
ADDRESS = Address.create(recipient="Li Lei", phone="+86 139 0000 0000",
                         line1="88 Huaihai Road", city="Shanghai", country="CN")


def meta() -> EventMeta:
    return EventMeta(Actor.system("bench"), uuid4(), uuid4())


def write_history(ot: Ordertrail, orders: int, seed: int = 7) -> int:
    """Domain-made history saved in batches (fast to write, realistic to read)."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 11, tzinfo=UTC)
    products = [Product.register(sku=sku, title=f"Product {sku}", category=rng.choice(
        ["tea", "teaware", "gifts"]), price=Money(rng.randint(500, 50000), "CNY"),
        meta=meta(), now=now) for sku in SKUS]
    ot.catalog.save_all(products)
    items = {sku: InventoryItem.open(sku=sku, warehouse="main", meta=meta(), now=now)
             for sku in SKUS}
    for item in items.values():
        item.receive(10_000_000, meta=meta(), now=now)
    ot.inventory.save_all(list(items.values()))
    prices = {p.sku: p.price for p in products}
    for batch in _batches(orders, 500):
        placed = []
        for _ in range(batch):
            now += timedelta(seconds=rng.randint(1, 20))
            order = _an_order(rng, prices, now)
            for (sku, _wh), qty in order.reserved_quantities().items():
                items[sku].reserve(order.id, qty, expires_at=now + timedelta(hours=1),
                                   meta=meta(), now=now)
            _lifecycle(rng, order, items, now)
            placed.append(order)
        ot.orders.save_all(placed)
        ot.inventory.save_all([i for i in items.values() if i.pending_events])
    return sum(app.head() for app in ot.applications)


def _an_order(rng: random.Random, prices: dict[str, Money], now: datetime) -> Order:
    skus = rng.sample(SKUS, rng.randint(1, 3))
    lines = [OrderLine(n + 1, sku, sku, rng.randint(1, 3), prices[sku], "home", "main")
             for n, sku in enumerate(skus)]
    total = sum(line.line_total.amount for line in lines)
    method = rng.choice([PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY, PaymentMethod.CARD])
    return Order.place(order_id=uuid4(), customer_id=f"c-{rng.randint(1, 5000)}",
                       lines=lines, delivery_groups=[DeliveryGroup("home", ADDRESS)],
                       shipping_fee=Money(0, "CNY"), discounts=[],
                       payment_plan=[PlannedPayment(method, Money(total, "CNY"))],
                       payment_due_at=now + timedelta(minutes=30), meta=meta(), now=now)


def _lifecycle(rng: random.Random, order: Order, items: dict[str, InventoryItem],
               now: datetime) -> None:
    roll = rng.random()
    if roll < 0.1:
        order.cancel("changed mind", meta=meta(), now=now)
        for (sku, _wh) in order.reserved_quantities():
            items[sku].release(order.id, "order_cancelled", meta=meta(), now=now)  # type: ignore[arg-type]
        return
    payment = next(iter(order.payments.values()))
    order.capture_payment(payment.payment_id, payment.amount, provider_ref=f"p-{order.id}",
                          meta=meta(), now=now)
    if roll < 0.6:
        return
    shipment = uuid4()
    order.plan_shipment(shipment, "home", [ParcelQuantity(line.line_no, line.quantity)
                                           for line in order.lines],
                        carrier="parcelhub", weight_grams=1000, meta=meta(), now=now)
    order.record_dispatch(shipment, carrier="parcelhub", tracking_number="PH1",
                          meta=meta(), now=now)
    for (sku, _wh), qty in order.reserved_quantities().items():
        items[sku].commit(order.id, qty, shipment_ref=str(shipment), meta=meta(), now=now)
    order.record_delivery(shipment, delivered_at=now + timedelta(days=1), meta=meta(), now=now)


def _batches(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size


def scan(side: ReadSide, name: str) -> tuple[int, float]:
    """The baseline: read and decode every event of the model's sources, write nothing."""
    worker = side.workers[name]
    count, started = 0, time.perf_counter()
    for source in worker.sources.values():
        position = 0
        while batch := source.recorder.select_notifications(
                start=position, limit=worker.batch_size, inclusive_of_start=False):
            for notification in batch:
                if worker.model.wants(source.name, notification.topic):
                    source.mapper.to_domain_event(notification)
            count += len(batch)
            position = batch[-1].id
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    with throwaway_cluster(DURABLE) as cluster:
        settings = Settings(database_url=cluster.url(schema="bench"))
        with open_ordertrail(settings) as ot:
            started = time.perf_counter()
            events = write_history(ot, args.orders)
            written = time.perf_counter() - started
            side = ReadSide.open(ot, read_store(settings))
            rows = []
            for name in READ_MODELS:
                count, baseline = scan(side, name)
                if not count:
                    continue  # nothing in this history for it (e.g. the knowledge base)
                started = time.perf_counter()
                applied = side.workers[name].rebuild()
                elapsed = time.perf_counter() - started
                rows.append((name, applied, applied / elapsed, count / baseline,
                             (applied / elapsed) / (count / baseline)))
            side.close()
    print(f"machine: {describe()}")
    print(f"history: {events:,} events from {args.orders:,} orders, written in {written:.1f} s")
    print()
    print(f"{'read model':<20} {'events':>9} {'rebuild ev/s':>13} {'scan ev/s':>11} "
          f"{'rebuild / scan':>15}")
    for name, applied, rate, base, ratio in rows:
        print(f"{name:<20} {applied:>9,} {rate:>13,.0f} {base:>11,.0f} {ratio:>15.2f}")


if __name__ == "__main__":
    main()
