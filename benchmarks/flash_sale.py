"""Flash-sale performance of order placement, with its baselines, in one run.

    python benchmarks/flash_sale.py [--duration 8] [--concurrency 32] [--workers 2]
        [--sweep 8,16,32,64,128] [--faults] [--soak SECONDS] [--plot PATH] [--profile DIR]

Starts a throwaway PostgreSQL 15 cluster with durable settings (fsync, synchronous_commit
and full_page_writes on) and measures, in the same run:

- baselines: a Litestar hello-world POST served like the API (uvicorn, same workers,
  wrk); raw psycopg single-row insert per transaction; the CRUD oversell-safe design
  (one hot stock row updated per order); the naive event-sourced design (one ``save()``
  per order); ``Ordering.place_order`` as it was (one transaction per step per order);
- the system: group-committed placement in process (flash sale and hot SKU only), over
  HTTP (flash sale with a concurrency sweep), steady mixed traffic (place, pay, ship,
  query) and read-heavy order tracking;
- after every run that places orders: units oversold, acknowledged orders missing,
  duplicates, orphaned reservations (all must be 0);
- projection lag (order tracking) during the HTTP flash sale, API worker memory;
- with ``--faults``: kill -9 of an API worker and an immediate restart of PostgreSQL
  during an HTTP flash sale, then the same checks after recovery.

The load generators are wrk (Debian's ``wrk``) for HTTP and worker processes with one
connection per client for the in-process figures. Prints one table; ``--json`` writes
the raw results.
"""

# Imports inside functions keep the spawned load processes light; a benchmark script
# favours plain positional helpers and one long main.
# ruff: noqa: PLC0415, PLR0917, PLR0915, E501
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from benchmarks.floor import ceiling  # noqa: E402
from benchmarks.floor import run_in_child as run_floor  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from ordertrail.adapters.devdb import DURABLE, Cluster, start_cluster  # noqa: E402

HOT = "HOT-1"
PRICE = 100
JWT_SECRET = "bench-secret-not-for-production-0123456789"
ADDRESS = {
    "recipient": "Li Lei",
    "phone": "+86 139 0000 0000",
    "line1": "88 Huaihai Road",
    "city": "Shanghai",
    "country": "CN",
}
PY = sys.executable
#: Orders timed for the floor (``benchmarks/floor.py``): about a second.
FLOOR_ORDERS = 8000
#: Environment of the API workers set from the command line (``--malloc-arena-max``).
API_ENV = {"MALLOC_ARENA_MAX": "2"}


# --- shared shapes ------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    kind: str  # "baseline", "ceiling" or "system"
    ops: int
    seconds: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    concurrency: int = 0
    refused: int = 0
    errors: int = 0
    note: str = ""
    checks: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


# --- the store --------------------------------------------------------------------------


def schema_url(cluster: Cluster, schema: str, pool: int = 16) -> str:
    return f"{cluster.url(schema=schema)}&pool_size={pool}&max_overflow={pool * 2}"


def new_store(cluster: Cluster, schema: str, tail: int, hot_stock: int, pool: int = 16) -> str:
    """A schema with the catalog and stock of a sale: one hot SKU, ``tail`` others."""
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.read_models import ReadSide, read_store
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.system import Config
    from ordertrail.domain import Actor, EventMeta, InventoryItem, Money, Product

    url = schema_url(cluster, schema, pool)
    settings = Settings(database_url=url, config=Config(payment_window=timedelta(hours=2)))
    with open_ordertrail(settings) as ot:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        meta = EventMeta(Actor.system("bench"), uuid4(), uuid4())
        skus = [HOT] + [f"TAIL-{n:04d}" for n in range(tail)]
        products = [
            Product.register(
                sku=sku, title=f"Product {sku}", category="tea", price=Money(PRICE, "CNY"),
                meta=meta, now=now,
            )
            for sku in skus
        ]
        ot.catalog.save_all(products)
        items = []
        for sku in skus:
            item = InventoryItem.open(sku=sku, warehouse="main", meta=meta, now=now)
            item.receive(hot_stock if sku == HOT else 10_000_000, meta=meta, now=now)
            items.append(item)
        ot.inventory.save_all(items)
        ot.run_processes()  # creates the process managers' tables
        store = read_store(settings)
        ReadSide.open(ot, store).close()
        from ordertrail.adapters.http.idempotency import IdempotencyStore

        IdempotencyStore(read_store(settings))
    return url


# --- in-process load (worker processes, one connection or batcher per client) -----------


def _worker(kind: str, url: str, threads: int, duration: float, seed: int, opts: dict[str, Any],
            out: Any, go: Any) -> None:
    """Runs in a child process: ``threads`` clients doing ``kind`` for ``duration``."""
    random.seed(seed)
    lat: list[float] = []
    acked: list[str] = []
    counts = {"ops": 0, "refused": 0, "errors": 0}
    lock = threading.Lock()
    setup, op, close = _workload(kind, url, opts)
    states = [setup(seed * 1000 + n) for n in range(threads)]
    out.put("ready")
    go.wait()  # every process starts together, after its set-up
    began = os.times()
    start_at = time.time()
    stop_at = start_at + duration

    def client(n: int) -> None:
        state = states[n]
        my_lat: list[float] = []
        my_acked: list[str] = []
        ops = refused = errors = 0
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            t0 = time.perf_counter()
            if time.time() >= stop_at:
                break
            try:
                got = op(state)
                ops += 1
                if isinstance(got, str):
                    my_acked.append(got)
            except Refused:
                refused += 1
                ops += 1
            except Exception as error:
                errors += 1
                if errors < 3:
                    print(f"{kind}: {type(error).__name__}: {error}", file=sys.stderr)
                time.sleep(0.01)
            my_lat.append((time.perf_counter() - t0) * 1000)
        with lock:
            counts["ops"] += ops
            counts["refused"] += refused
            counts["errors"] += errors
            lat.extend(my_lat)
            acked.extend(my_acked)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ended = os.times()
    extra = close()
    out.put({**counts, "lat": random.sample(lat, min(len(lat), 20000)), "acked": acked,
             "extra": extra,
             "cpu": ended.user + ended.system - began.user - began.system})


class Refused(Exception):
    pass


def _workload(kind: str, url: str, opts: dict[str, Any]) -> tuple[Callable[[int], Any],
                                                                 Callable[[Any], Any],
                                                                 Callable[[], dict[str, Any]]]:
    nothing: Callable[[], dict[str, Any]] = dict
    if kind in ("raw_insert", "crud_hot"):
        base = url.split("?", maxsplit=1)[0]
        schema = opts["schema"]

        def setup_sql(_: int) -> psycopg.Connection[Any]:
            conn = psycopg.connect(base, autocommit=True)
            conn.execute(f"SET search_path TO {schema}")
            return conn

        if kind == "raw_insert":
            def insert(conn: psycopg.Connection[Any]) -> None:
                conn.execute("INSERT INTO raw_orders (id, sku, quantity) VALUES (%s, %s, 1)",
                             (uuid4(), HOT))
            return setup_sql, insert, nothing

        def reserve(conn: psycopg.Connection[Any]) -> str:
            order_id = uuid4()
            with conn.transaction():
                row = conn.execute(
                    "UPDATE stock SET available = available - 1 WHERE sku = %s"
                    " AND available >= 1 RETURNING available", (HOT,)).fetchone()
                if row is None:
                    raise Refused
                conn.execute("INSERT INTO crud_orders (id, sku, quantity) VALUES (%s, %s, 1)",
                             (order_id, HOT))
            return str(order_id)
        return setup_sql, reserve, nothing

    if kind == "naive_es":
        from ordertrail.adapters.settings import Settings
        from ordertrail.domain import InventoryItem
        from ordertrail.domain.meta import Actor, EventMeta

        app = _naive_app(Settings(database_url=url).eventsourcing_env(create_tables=False))
        item_id = opts["item_id"]
        meta = EventMeta(Actor.system("bench"), uuid4(), uuid4())

        def naive(_: Any) -> str:
            """Load the hot stock record, reserve, save it and the order in one save()."""
            from datetime import UTC, datetime

            from eventsourcing.persistence import IntegrityError

            while True:
                now = datetime.now(UTC)
                item = app.repository.get(item_id)
                assert isinstance(item, InventoryItem)
                order = NaiveOrder(sku=HOT, quantity=1)
                if item.available < 1:
                    raise Refused
                item.reserve(order.id, 1, expires_at=now + timedelta(hours=1), meta=meta,
                             now=now)
                try:
                    app.save(item, order)
                except IntegrityError:
                    continue
                return str(order.id)
        return lambda _n: None, naive, lambda: {}

    # The system: Ordertrail on PostgreSQL.
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.batching import PlacementBatcher
    from ordertrail.application.context import CommandContext
    from ordertrail.application.ordering import PlaceOrder
    from ordertrail.application.placement import LineRequest
    from ordertrail.application.system import Config
    from ordertrail.domain import (
        Actor,
        Address,
        DeliveryGroup,
        Money,
        PaymentMethod,
        PlannedPayment,
    )
    from ordertrail.domain.errors import InsufficientStock

    settings = Settings(database_url=url, config=Config(payment_window=timedelta(hours=2)))
    ot = open_ordertrail(settings, create_tables=False)
    batched = kind.startswith("batched") or kind == "mixed"
    from ordertrail.adapters.writer_lock import placement_writer_lock

    # The writers of the load processes take turns, as the API's workers do.
    lock = placement_writer_lock(settings) if batched else None
    batcher = (
        PlacementBatcher(ot.ordering, max_batch=opts.get("max_batch", 256),
                         writer_lock=lock or contextlib.nullcontext)
        if batched else None
    )
    place = batcher.place_order if batcher is not None else ot.ordering.place_order
    group = DeliveryGroup("home", Address.create(**ADDRESS))
    hot_share = opts.get("hot_share", 0.5)
    tail = opts.get("tail", 1000)

    def command() -> PlaceOrder:
        sku = HOT if random.random() < hot_share else f"TAIL-{random.randrange(tail):04d}"
        return PlaceOrder(
            customer_id=f"buyer-{random.randrange(10000)}",
            lines=(LineRequest(sku, 1, "home"),),
            delivery_groups=(group,),
            payment_plan=(PlannedPayment(PaymentMethod.ALIPAY, Money(PRICE, "CNY")),),
        )

    def place_one(_: Any) -> str:
        cmd = command()
        try:
            accepted = place(cmd, CommandContext(Actor.of("customer", cmd.customer_id)))
        except InsufficientStock:
            raise Refused from None
        return str(accepted.value.order_id)

    def close() -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if batcher is not None:
            batcher.close()
            extra = {"batches": batcher.stats.batches, "commands": batcher.stats.commands,
                     "conflicts": batcher.stats.inventory_conflicts,
                     "lock_skipped": lock.skipped if lock is not None else 0}
            if lock is not None:
                lock.close()
        ot.close()
        return extra

    if kind != "mixed":
        return lambda _n: None, place_one, close

    from ordertrail.application.fulfilment import CreateShipment
    from ordertrail.application.orders import CapturePayment
    from ordertrail.domain.fulfilment import ParcelQuantity

    def mixed(state: dict[str, Any]) -> str | None:
        """40 % place, 25 % pay, 15 % ship, 20 % query (one's own orders)."""
        roll = random.random()
        actor = Actor.of("staff", "bench")
        if roll < 0.40 or not state["placed"]:
            order_id = place_one(None)
            state["placed"].append(UUID(order_id))
            return order_id
        if roll < 0.65:
            order_id = state["placed"].pop(0)
            order = ot.orders.order(order_id)
            payment = next(iter(order.payments.values()))
            ot.orders.capture_payment(
                CapturePayment(order_id, payment.payment_id, payment.amount, f"pay-{order_id}"),
                CommandContext(Actor.of("provider", "alipay")))
            state["paid"].append(order_id)
            return None
        if roll < 0.80 and state["paid"]:
            order_id = state["paid"].pop(0)
            order = ot.orders.order(order_id)
            line = order.lines[0]
            ot.fulfilment.create_shipment(
                CreateShipment(order_id, "home", (ParcelQuantity(line.line_no, line.quantity),),
                               500), CommandContext(actor))
            return None
        ot.orders.order(random.choice(state["placed"] or state["paid"] or [uuid4()]))
        return None

    return lambda _n: {"placed": [], "paid": []}, mixed, close


_NAIVE: dict[str, Any] = {}


def _naive_app(env: dict[str, str]) -> Any:
    """One application holding both the stock record and the orders (one table)."""
    from ordertrail.application.base import OrdertrailApplication

    class NaiveShop(OrdertrailApplication):
        name = "NaiveShop"

    return NaiveShop(env)


def _naive_order_class() -> Any:
    from eventsourcing.domain import Aggregate, event

    class NaiveOrder(Aggregate):
        TOPIC = "bench:NaiveOrder"

        class Created(Aggregate.Created):
            TOPIC = "bench:NaiveOrder.Created"
            sku: str
            quantity: int

        @event(Created)
        def __init__(self, sku: str, quantity: int) -> None:
            self.sku = sku
            self.quantity = quantity

    return NaiveOrder


NaiveOrder = _naive_order_class()


def run_inprocess(kind: str, url: str, concurrency: int, duration: float, procs: int,
                  opts: dict[str, Any] | None = None, cluster: Cluster | None = None
                  ) -> dict[str, Any]:
    """``concurrency`` clients in ``procs`` processes; with ``cluster``, also the CPU
    seconds PostgreSQL used from the start of the run to the last result."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    per = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
    go = ctx.Event()
    children = [ctx.Process(target=_worker, args=(kind, url, n, duration, i + 1, opts or {},
                                                   queue, go)) for i, n in enumerate(per)]
    for child in children:
        child.start()
    for _ in children:
        assert queue.get(timeout=300) == "ready"
    postgres_before = postgres_cpu(cluster) if cluster is not None else 0.0
    go.set()
    results = [queue.get(timeout=duration + 120) for _ in children]
    postgres = postgres_cpu(cluster) - postgres_before if cluster is not None else 0.0
    for child in children:
        child.join()
    lat = [x for r in results for x in r["lat"]]
    extra: dict[str, Any] = {}
    for r in results:
        for key, value in r["extra"].items():
            extra[key] = extra.get(key, 0) + value
    return {
        "ops": sum(r["ops"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
        "acked": [a for r in results for a in r["acked"]],
        "extra": extra,
        "cpu": sum(r["cpu"] for r in results),
        "postgres_cpu": postgres,
    }


def cpu_per_order(got: dict[str, Any]) -> dict[str, int]:
    """µs of CPU per order during an in-process run: the load processes', PostgreSQL's."""
    ops = max(got["ops"], 1)
    return {"load_processes": round(got["cpu"] / ops * 1e6),
            "postgres": round(got["postgres_cpu"] / ops * 1e6)}


# --- correctness ------------------------------------------------------------------------


def wait_until_quiet(url: str, schema: str, quiet: float = 1.0, limit: float = 30.0) -> None:
    """Wait until nothing is being written (requests the load generator gave up on may
    still be finishing on the server)."""
    deadline = time.monotonic() + limit
    last: tuple[int, int] | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url.split("?", maxsplit=1)[0], connect_timeout=3) as conn:
                heads = tuple(
                    conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {schema}.{t}")
                    .fetchone()[0]  # type: ignore[index]
                    for t in ("orders_events", "inventory_events")
                )
        except psycopg.Error:
            time.sleep(0.5)
            continue
        if heads == last:
            return
        last = heads  # type: ignore[assignment]
        time.sleep(quiet)


def check_store(url: str, acked: list[str], *, reap: bool = False) -> dict[str, int]:
    """Units oversold, acknowledged orders missing, duplicates, orphaned reservations.

    With ``reap``, placements that never recorded their order (a crash between the two
    transactions) are first abandoned by the placement reaper, as they would be after
    the grace period."""
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.processes import PlacementReaper
    from ordertrail.application.system import Config
    from ordertrail.domain import InventoryItem, ids

    schema = re.search(r"schema=(\w+)", url)
    assert schema is not None
    name = schema.group(1)
    wait_until_quiet(url, name)
    if reap:
        config = Config(placement_grace=timedelta(seconds=0), payment_window=timedelta(hours=2))
        with open_ordertrail(Settings(database_url=url, config=config),
                             create_tables=False) as ot:
            time.sleep(0.5)
            for follower in ot.followers:
                if isinstance(follower, PlacementReaper):
                    follower.run_until_idle()
    with psycopg.connect(url.split("?", maxsplit=1)[0]) as conn:
        orders = {
            str(row[0])
            for row in conn.execute(
                f"SELECT originator_id FROM {name}.orders_events WHERE originator_version = 1"
                " AND topic = 'ordertrail.orders:Order.Placed'")
        }
        receipts = conn.execute(
            f"SELECT count(*) FROM {name}.orders_events WHERE topic ="
            " 'ordertrail.application:CommandReceipt.Recorded' AND"
            " convert_from(state, 'UTF8')::jsonb ->> 'command_name' = 'PlaceOrder'").fetchone()
        reserved_twice = conn.execute(
            f"SELECT count(*) FROM (SELECT originator_id, convert_from(state, 'UTF8')::jsonb"
            f" ->> 'order_id' AS order_id FROM {name}.inventory_events WHERE topic ="
            " 'ordertrail.inventory:InventoryItem.StockReserved'"
            " GROUP BY 1, 2 HAVING count(*) > 1) AS twice").fetchone()
        item_ids = [row[0] for row in conn.execute(
            f"SELECT DISTINCT originator_id FROM {name}.inventory_events")]
    oversold = orphans = held = 0
    with open_ordertrail(Settings(database_url=url), create_tables=False) as ot:
        for item_id in item_ids:
            item = ot.inventory.find_as(item_id, InventoryItem)
            if item is None:
                continue
            oversold += max(item.reserved - item.on_hand, 0)
            orphans += sum(1 for order_id in item.reservations if str(order_id) not in orders)
            held += len(item.reservations)
        hot = ot.inventory.find_as(ids.inventory_item_id(HOT, "main"), InventoryItem)
        if hot is not None:
            oversold += max(sum(1 for o in hot.reservations if str(o) in orders) - hot.on_hand, 0)
    missing = sum(1 for order_id in set(acked) if order_id not in orders)
    duplicates = (len(acked) - len(set(acked))) + (reserved_twice[0] if reserved_twice else 0)
    duplicates += abs((receipts[0] if receipts else 0) - len(orders))
    return {"oversold": oversold, "missing": missing, "duplicates": duplicates,
            "orphans": orphans, "orders": len(orders), "open_reservations": held}


# --- HTTP: uvicorn and wrk --------------------------------------------------------------


HELLO_APP = '''
from litestar import Litestar, post

@post("/hello", status_code=201)
async def hello(data: dict[str, object]) -> dict[str, object]:
    return {"hello": "world", "got": len(data)}

app = Litestar([hello])
'''

FLASH_LUA = r'''
local counter = 0
local out = nil
local next_id = 0
local tokens = {%(tokens)s}
local hot_share = %(hot_share)f
local tail = %(tail)d
local run = "%(run)s"
local dir = "%(dir)s"
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function init(args)
  tid = tid or 0
  out = io.open(dir .. "/acked-" .. tid .. ".txt", "w")
  out:setvbuf("line")
  math.randomseed(tid * 7919 + os.time())
end
function request()
  counter = counter + 1
  local sku = "HOT-1"
  if math.random() >= hot_share then
    sku = string.format("TAIL-%%04d", math.random(0, tail - 1))
  end
  local body = '{"lines":[{"sku":"' .. sku .. '","quantity":1,"delivery_group":"home"}],' ..
    '"delivery_groups":[{"group_id":"home","address":%(address)s}],' ..
    '"payments":[{"method":"alipay","amount":{"amount":%(price)d,"currency":"CNY"}}]}'
  local token = tokens[(counter %% #tokens) + 1]
  return wrk.format("POST", "/orders", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter,
  }, body)
end
function response(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"order_id":"([^"]+)"')
    out:write("201 ", id or "-", "\n")
  else
    out:write(status, " -\n")
  end
end
'''

HELLO_LUA = r'''
wrk.method = "POST"
wrk.body = '{"lines":[{"sku":"HOT-1","quantity":1}]}'
wrk.headers["Content-Type"] = "application/json"
'''

READ_LUA = r'''
local pairs_ = {%(pairs)s}
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function request()
  counter = counter + 1
  local p = pairs_[((counter + tid * 7) %% #pairs_) + 1]
  return wrk.format("GET", "/orders/" .. p[1] .. "/tracking",
                    {["Authorization"] = "Bearer " .. p[2]})
end
'''


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True, check=False).stdout.split()
        return [int(p) for p in out]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                for pid in self.workers():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()


def serve(app: str, workers: int, env: dict[str, str], factory: bool = False,
          cwd: str | None = None, attempts: int = 5) -> Served:
    """uvicorn with ``workers`` processes, once every worker has started and stayed up.

    The API's workers each create the store's tables on start-up (the runtime does, and
    its applications read no process environment), and two of them doing so at the same
    moment can fail with PostgreSQL's "tuple concurrently updated"; uvicorn then stops.
    Such a start is retried."""
    for attempt in range(1, attempts + 1):
        try:
            return _serve_once(app, workers, env, factory, cwd)
        except RuntimeError as error:
            if attempt == attempts:
                raise
            print(f"# {error}; starting again ({attempt}/{attempts})", file=sys.stderr,
                  flush=True)
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _serve_once(app: str, workers: int, env: dict[str, str], factory: bool,
                cwd: str | None) -> Served:
    """Ready when every worker has logged "Application startup complete" (uvicorn's info
    level, which logs only start-up and shut-down with ``--no-access-log``)."""
    from ordertrail.adapters.devdb import free_port

    port = free_port()
    args = [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "info",
            "--backlog", "4096"]
    if factory:
        args.append("--factory")
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=cwd or str(ROOT),
                            stderr=subprocess.PIPE, text=True)
    served = Served(proc, port)
    started = threading.Semaphore(0)
    failed = threading.Event()

    def follow() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Application startup complete" in line:
                started.release()
            elif "startup failed" in line or "failed to start" in line:
                failed.set()
            if line.startswith("INFO:"):
                continue
            sys.stderr.write(line)

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.monotonic() + 180
    ready = 0
    while ready < workers:
        if failed.is_set() or proc.poll() is not None:
            served.stop()
            raise RuntimeError(f"{app}: a worker failed to start")
        if time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"{app} did not start in time")
        if started.acquire(timeout=0.2):
            ready += 1
    time.sleep(0.5)
    if failed.is_set() or proc.poll() is not None:
        served.stop()
        raise RuntimeError(f"{app}: a worker failed to start")
    return served


def wrk(port: int, script: str, concurrency: int, duration: float, path: str = "/",
        threads: int = 2) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(min(threads, concurrency)), "-c", str(concurrency), "-d",
             f"{max(int(duration), 1)}s", "--latency", "--timeout", "10s", "-s", handle.name,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    finally:
        os.unlink(handle.name)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    # wrk prints the run's length as 8.01s, 10.00m (a soak) or 1.00h.
    found = re.search(r"requests in ([\d.]+)(us|ms|s|m|h),", out)
    assert found is not None, out
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[found.group(2)]
    secs = float(found.group(1)) * scale
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": requests, "seconds": secs,
            "p50": _ms(out, "50%"), "p99": _ms(out, "99%"),
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0, "raw": out}


def _ms(out: str, label: str) -> float:
    found = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def tokens(count: int) -> list[str]:
    from ordertrail.adapters.http.auth import Role, issue_token, jwt_auth

    auth = jwt_auth(JWT_SECRET, timedelta(hours=8))
    return [issue_token(auth, Role.CUSTOMER, f"buyer-{n}") for n in range(count)]


def api_env(url: str, *, payment_window: int = 7200) -> dict[str, str]:
    from ordertrail.application.system import APPLICATION_NAMES

    # The store was prepared by ``new_store``. Workers that all start at once and each
    # create tables fail with "tuple concurrently updated"; the library reads an
    # application-prefixed key before the plain ``CREATE_TABLE`` the runtime passes.
    no_tables = {f"{name.upper()}_CREATE_TABLE": "n" for name in APPLICATION_NAMES}
    return {
        **no_tables,
        "ORDERTRAIL_DATABASE_URL": url,
        "ORDERTRAIL_JWT_SECRET": JWT_SECRET,
        "ORDERTRAIL_ORDERS_PER_MINUTE": "100000000",
        "ORDERTRAIL_RUN_WORKERS": "0",
        "ORDERTRAIL_PAYMENT_WINDOW_SECONDS": str(payment_window),
        # glibc keeps up to 8 arenas per core for the workers' ~70 threads and hands
        # little back; docs/operations.md recommends 2 for the API ("" leaves glibc's).
        **{name: value for name, value in API_ENV.items() if value},
    }


#: Seconds of load before the measured HTTP flash sale (see where it is used).
WARM_UP_SECONDS = 6.0


def flash_http(served: Served, concurrency: int, duration: float, tail: int, hot_share: float,
               toks: list[str]) -> tuple[dict[str, Any], list[str], dict[str, int]]:
    with tempfile.TemporaryDirectory() as acked_dir:
        script = FLASH_LUA % {
            "tokens": ",".join(f'"{t}"' for t in toks), "hot_share": hot_share, "tail": tail,
            "run": uuid4().hex[:12], "dir": acked_dir,
            "address": json.dumps(ADDRESS).replace("'", "\\'"), "price": PRICE,
        }
        got = wrk(served.port, script, concurrency, duration)
        acked: list[str] = []
        statuses: dict[str, int] = {}
        for path in Path(acked_dir).glob("acked-*.txt"):
            for line in path.read_text().splitlines():
                status, _, order_id = line.partition(" ")
                statuses[status] = statuses.get(status, 0) + 1
                if status == "201" and order_id != "-":
                    acked.append(order_id)
    return got, acked, statuses


class LagSampler(threading.Thread):
    """Samples the orders head and order tracking's position every 50 ms; the lag at a
    sample is how long ago the head first passed the position the read model is at."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.schema = re.search(r"schema=(\w+)", url).group(1)  # type: ignore[union-attr]
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url.split("?")[0], autocommit=True) as conn:
            while not self.stopping.is_set():
                with contextlib.suppress(psycopg.Error):
                    head = conn.execute(
                        f"SELECT coalesce(max(notification_id), 0) FROM {self.schema}.orders_events"
                    ).fetchone()[0]  # type: ignore[index]
                    pos = conn.execute(
                        f"SELECT coalesce(max(position), 0) FROM {self.schema}.projection_positions"
                        " WHERE projection = 'order_tracking' AND source = 'Orders'"
                    ).fetchone()[0]  # type: ignore[index]
                    self.samples.append((time.monotonic(), head, pos))
                time.sleep(0.05)

    def lags(self) -> list[float]:
        out = []
        for t, head, pos in self.samples:
            if head <= pos:
                out.append(0.0)
                continue
            first = next((t2 for t2, h2, _ in self.samples if h2 > pos), t)
            out.append(t - first)
        return out


def start_projector(url: str) -> Projector:
    """The read models and the process managers, each in a process of its own (as a
    deployment would run them: ``ordertrail projections run``, ``ordertrail processes
    run``), so that the expiry is not starved by the read models' threads."""
    return Projector([
        subprocess.Popen([PY, __file__, "--role", role, "--url", url], cwd=str(ROOT))
        for role in ("projector", "processes")
    ])


@dataclass
class Projector:
    procs: list[subprocess.Popen[bytes]]

    @property
    def pid(self) -> int:
        return self.procs[0].pid

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def terminate(self) -> None:
        for proc in self.procs:
            proc.terminate()

    def wait(self, timeout: float) -> None:
        for proc in self.procs:
            proc.wait(timeout)


def projector(url: str, role: str) -> None:
    """Runs in its own process: the read models, or the process managers."""
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.read_models import ReadSide, read_store
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.followers import FollowerThreads
    from ordertrail.application.system import Config

    settings = Settings(database_url=url, config=Config(payment_window=timedelta(hours=2)))
    ot = open_ordertrail(settings, create_tables=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if role == "projector":
        read = ReadSide.open(ot, read_store(settings))
        read.start()  # as `ordertrail projections run`: woken by NOTIFY, else polls
        stop.wait()
        read.close()
    else:
        followers = FollowerThreads(ot.followers, interval=0.5)
        followers.start()
        stop.wait()
        followers.stop()
    ot.close()


def _stat_ticks(pid: int) -> list[int]:
    """utime, stime, cutime, cstime of a process (clock ticks), or zeros if it is gone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return [int(f) for f in fields[11:15]]
    return [0, 0, 0, 0]


def cpu_of(pids: list[int]) -> float:
    """CPU seconds used so far by the processes ``pids`` that are alive."""
    return sum(sum(_stat_ticks(pid)[:2]) for pid in pids) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(cluster: Cluster) -> float:
    """CPU seconds used so far by PostgreSQL: its processes alive now, and those that
    have exited (the postmaster has reaped them: their time is in its children's)."""
    postmaster = int(Path(cluster.data, "postmaster.pid").read_text().split()[0])
    backends = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                              text=True, check=False).stdout.split()
    own_and_reaped = sum(_stat_ticks(postmaster)) / os.sysconf("SC_CLK_TCK")
    return own_and_reaped + cpu_of([int(b) for b in backends])


def cpu_split(cluster: Cluster, api: Served, others: dict[str, int] | None = None
              ) -> dict[str, float]:
    """CPU seconds used so far by the API workers, PostgreSQL, ``others`` (name: pid —
    the projector, py-spy), this harness (its lag sampler) and its finished children
    (wrk), and by the whole machine (every core, every session)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(x) for x in machine) - int(machine[3]) - int(machine[4])
    own = os.times()
    return {"api_workers": cpu_of(api.workers()),
            "postgres": postgres_cpu(cluster),
            **{name: cpu_of([pid]) for name, pid in (others or {}).items()},
            "harness": own.user + own.system,
            "harness_children": children.ru_utime + children.ru_stime,
            "machine_busy": busy / os.sysconf("SC_CLK_TCK")}


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# --- the run ------------------------------------------------------------------------------


def baseline_tables(cluster: Cluster, schema: str, stock: int) -> str:
    url = cluster.url(schema=schema)
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"CREATE TABLE {schema}.raw_orders (id uuid PRIMARY KEY, sku text NOT NULL,"
                     " quantity int NOT NULL)")
        conn.execute(f"CREATE TABLE {schema}.crud_orders (id uuid PRIMARY KEY, sku text NOT NULL,"
                     " quantity int NOT NULL)")
        conn.execute(f"CREATE TABLE {schema}.stock (sku text PRIMARY KEY,"
                     " available int NOT NULL CHECK (available >= 0))")
        conn.execute(f"INSERT INTO {schema}.stock VALUES (%s, %s)", (HOT, stock))
    return url


def crud_check(cluster: Cluster, schema: str, stock: int, acked: list[str]) -> dict[str, int]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        available = conn.execute(f"SELECT available FROM {schema}.stock").fetchone()[0]  # type: ignore[index]
        ids_ = {str(r[0]) for r in conn.execute(f"SELECT id FROM {schema}.crud_orders")}
    sold = stock - available
    return {"oversold": max(len(ids_) - stock, 0) + max(-available, 0),
            "missing": sum(1 for a in acked if a not in ids_),
            "duplicates": abs(len(ids_) - sold), "orphans": 0, "orders": len(ids_)}


def naive_setup(cluster: Cluster, schema: str, stock: int) -> tuple[str, UUID]:
    from datetime import UTC, datetime

    from ordertrail.adapters.bootstrap import prepare_store
    from ordertrail.adapters.settings import Settings
    from ordertrail.domain import Actor, EventMeta, InventoryItem

    url = schema_url(cluster, schema)
    settings = Settings(database_url=url)
    prepare_store(settings)
    app = _naive_app(settings.eventsourcing_env())
    now = datetime.now(UTC)
    meta = EventMeta(Actor.system("bench"), uuid4(), uuid4())
    item = InventoryItem.open(sku=HOT, warehouse="main", meta=meta, now=now)
    item.receive(stock, meta=meta, now=now)
    app.save(item)
    app.close()
    return url, item.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--procs", type=int, default=2, help="in-process load processes")
    parser.add_argument("--tail", type=int, default=1000, help="long-tail SKUs")
    parser.add_argument("--hot-share", type=float, default=0.5)
    parser.add_argument("--hot-stock", type=int, default=20_000)
    parser.add_argument("--sweep", default="8,16,32,64,128")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of HTTP soak")
    parser.add_argument("--malloc-arena-max", default="2",
                        help="MALLOC_ARENA_MAX of the API workers ('' for glibc's default)")
    parser.add_argument("--soak-payment-window", type=float, default=60.0,
                        help="seconds before the soak's unpaid orders expire")
    parser.add_argument("--plot", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--profile", default="", help="directory for py-spy profiles")
    parser.add_argument("--only", default="", help="comma-separated parts to run")
    parser.add_argument("--role", default="", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    API_ENV["MALLOC_ARENA_MAX"] = args.malloc_arena_max
    if args.role in ("projector", "processes"):
        projector(args.url, args.role)
        return 0
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            print(f"{tool} is needed: apt-get install -y {tool}", file=sys.stderr)
            return 2
    parts = set(args.only.split(",")) if args.only else None

    def wanted(part: str) -> bool:
        return parts is None or part in parts

    c, d = args.concurrency, args.duration
    results: list[Result] = []
    profile_summary = ""
    soak_memory: list[tuple[float, float, int]] = []
    load = LoadSampler()
    load.start()
    sweep: list[dict[str, Any]] = []
    cluster = start_cluster(DURABLE, max_connections=600)
    print(f"# {describe()}\n# PostgreSQL on port {cluster.port}: fsync, synchronous_commit, "
          f"full_page_writes on; concurrency {c}, {d:.0f} s per run", flush=True)
    try:
        big = 10_000_000
        if wanted("baselines"):
            baseline_tables(cluster, "base", big)
            got = run_inprocess("raw_insert", cluster.url(), c, d, args.procs, {"schema": "base"})
            results.append(Result("raw psycopg insert, 1 row/txn", "baseline", got["ops"], d,
                                  got["p50"], got["p99"], c, errors=got["errors"]))
            print(results[-1], flush=True)
            got = run_inprocess("crud_hot", cluster.url(), c, d, args.procs, {"schema": "base"})
            r = Result("CRUD hot row (UPDATE stock + INSERT order)", "baseline", got["ops"], d,
                       got["p50"], got["p99"], c, got["refused"], got["errors"])
            r.checks = crud_check(cluster, "base", big, got["acked"])
            results.append(r)
            print(r, flush=True)
            url, item_id = naive_setup(cluster, "naive", big)
            got = run_inprocess("naive_es", url, c, d, args.procs, {"item_id": item_id})
            results.append(Result("naive ES: load hot item, one save() per order", "baseline",
                                  got["ops"], d, got["p50"], got["p99"], c, got["refused"],
                                  got["errors"]))
            print(results[-1], flush=True)
            floor = run_floor(FLOOR_ORDERS)
            results.append(Result("floor: one order's own work, no I/O, one core", "ceiling",
                                  floor["orders"], floor["seconds"], concurrency=1,
                                  extra={"us_per_order": floor["us_per_order"]}))
            print(results[-1], flush=True)

        flash = {"tail": args.tail, "hot_share": args.hot_share}
        if wanted("unbatched"):
            url = new_store(cluster, "unbatched", args.tail, args.hot_stock)
            got = run_inprocess("unbatched", url, c, d, args.procs, flash)
            r = Result("system before: Ordering.place_order (flash sale)", "baseline",
                       got["ops"], d, got["p50"], got["p99"], c, got["refused"], got["errors"])
            r.checks = check_store(url, got["acked"])
            results.append(r)
            print(r, flush=True)

        if wanted("batched"):
            for procs in sorted({1, args.procs}):
                url = new_store(cluster, f"batched{procs}", args.tail, args.hot_stock)
                got = run_inprocess("batched", url, c, d, procs, flash, cluster)
                got["extra"]["cpu_us_per_order"] = cpu_per_order(got)
                r = Result(f"in-process batched placement, flash sale ({procs} proc)", "system",
                           got["ops"], d, got["p50"], got["p99"], c, got["refused"],
                           got["errors"], extra=got["extra"])
                r.checks = check_store(url, got["acked"])
                results.append(r)
                print(r, flush=True)
            url = new_store(cluster, "hotonly", args.tail, big)
            got = run_inprocess("batched", url, c, d, 1, {**flash, "hot_share": 1.0}, cluster)
            got["extra"]["cpu_us_per_order"] = cpu_per_order(got)
            r = Result("in-process batched, hot SKU only (reservations)", "system", got["ops"],
                       d, got["p50"], got["p99"], c, got["refused"], got["errors"],
                       extra=got["extra"])
            r.checks = check_store(url, got["acked"])
            results.append(r)
            print(r, flush=True)

        if wanted("mixed"):
            url = new_store(cluster, "mixed", args.tail, big)
            got = run_inprocess("mixed", url, c, d, 1, {**flash, "hot_share": 0.1})
            r = Result("steady mixed: place/pay/ship/query (in process)", "system", got["ops"],
                       d, got["p50"], got["p99"], c, got["refused"], got["errors"])
            r.checks = check_store(url, got["acked"])
            results.append(r)
            print(r, flush=True)

        toks = tokens(64)
        if wanted("http"):
            with tempfile.TemporaryDirectory() as hello_dir:
                Path(hello_dir, "hello_app.py").write_text(HELLO_APP)
                hello = serve("hello_app:app", args.workers, {}, cwd=hello_dir)
                try:
                    got = wrk(hello.port, HELLO_LUA, c, d, "/hello")
                finally:
                    hello.stop()
            results.append(Result("Litestar hello-world POST (uvicorn, wrk)", "baseline",
                                  got["requests"], got["seconds"], got["p50"], got["p99"], c,
                                  errors=got["socket_errors"]))
            print(results[-1], flush=True)

            url = new_store(cluster, "http", args.tail, args.hot_stock, pool=8)
            proj = start_projector(url)
            api = serve("ordertrail.adapters.http.app:create_app", args.workers, api_env(url),
                        factory=True)
            try:
                # Warm-up: long enough for most tail SKUs to be ordered once, so that the
                # run measures a service that holds its stock records, as one that was
                # up before the sale does (a cold start reads each record first).
                cold = flash_http(api, c, WARM_UP_SECONDS, args.tail, args.hot_share, toks)[0]
                print(f"warm-up (cold start, {WARM_UP_SECONDS:.0f} s): "
                      f"{cold['requests'] / cold['seconds']:.0f} orders/s, "
                      f"p99 {cold['p99']:.1f} ms", flush=True)
                rss_before = rss_mib(api.workers())
                sampler = LagSampler(url)
                sampler.start()
                cpu0 = cpu_split(cluster, api, {"projector": proj.pids[0], "processes": proj.pids[1]})
                got, acked, statuses = flash_http(api, c, d, args.tail, args.hot_share, toks)
                cpu1 = cpu_split(cluster, api, {"projector": proj.pids[0], "processes": proj.pids[1]})
                time.sleep(1.5)
                sampler.stopping.set()
                sampler.join()
                lags = sampler.lags()
                profile = None
                if args.profile and Path(PY).with_name("py-spy").exists():
                    profile = Path(args.profile)
                r = Result("HTTP flash sale: POST /orders (group commit)", "system",
                           got["requests"], got["seconds"], got["p50"], got["p99"], c,
                           statuses.get("409", 0) + statuses.get("422", 0),
                           sum(v for k, v in statuses.items() if k.startswith("5")),
                           extra={"statuses": statuses, "lag_p99_s": percentile(lags, 0.99),
                                  "lag_max_s": max(lags, default=0.0),
                                  "rss_before_mib": rss_before,
                                  "rss_after_mib": rss_mib(api.workers()),
                                  "cpu_seconds": {k: round(cpu1[k] - cpu0.get(k, 0.0), 1)
                                                  for k in cpu1}})
                r.checks = check_store(url, acked)
                results.append(r)
                print(r, flush=True)
                for conc in [int(x) for x in args.sweep.split(",") if x]:
                    got, acked, statuses = flash_http(api, conc, d, args.tail, args.hot_share,
                                                      toks)
                    point = {"concurrency": conc, "rate": got["requests"] / got["seconds"],
                             "p50": got["p50"], "p99": got["p99"], "statuses": statuses,
                             "checks": check_store(url, acked)}
                    sweep.append(point)
                    print("sweep", point, flush=True)
                if profile is not None:
                    profile.mkdir(parents=True, exist_ok=True)
                    # py-spy counts samples, not seconds: on a loaded machine a 200 Hz
                    # recording of 70 threads falls behind and outlives ``-d``. Sample at
                    # 100 Hz without pausing the workers, and stop it (SIGINT: it writes
                    # what it has) when the load ends.
                    out_path = profile / "api_worker.txt"
                    prof = subprocess.Popen([str(Path(PY).with_name("py-spy")), "record", "-p",
                                             str(api.proc.pid), "--subprocesses", "--idle",
                                             "--nonblocking", "-d", str(int(d) + 60), "-r",
                                             "100", "-f", "raw", "-o", str(out_path)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                    others = {"projector": proj.pids[0], "processes": proj.pids[1],
                              "py-spy": prof.pid}
                    cpu0 = cpu_split(cluster, api, others)
                    got, acked, statuses = flash_http(api, c, d, args.tail, args.hot_share,
                                                      toks)
                    cpu1 = cpu_split(cluster, api, others)
                    prof.send_signal(signal.SIGINT)
                    try:
                        prof.wait(60)
                    except subprocess.TimeoutExpired:
                        prof.kill()
                        prof.wait()
                    r = Result("HTTP flash sale under py-spy (100 Hz)", "system",
                               got["requests"], got["seconds"], got["p50"], got["p99"], c,
                               statuses.get("409", 0) + statuses.get("422", 0),
                               sum(v for k, v in statuses.items() if k.startswith("5")),
                               extra={"statuses": statuses, "cpu_seconds": {
                                   k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1},
                                   "wall_seconds": got["seconds"]})
                    r.checks = check_store(url, acked)
                    results.append(r)
                    print(r, flush=True)
                    if out_path.exists():
                        from benchmarks.profile_summary import summarise

                        summary = summarise(out_path.read_text())
                        (profile / "summary.txt").write_text(summary)
                        profile_summary = summary
            finally:
                api.stop()
                proj.terminate()
                proj.wait(30)

        if args.soak > 0:
            # Its own store and API, with a short payment window: in a real sale unpaid
            # orders expire and give their stock back (the projector runs the expiry),
            # so the reservations a worker keeps in memory stay bounded, as they would.
            url = new_store(cluster, "soak", args.tail, args.hot_stock, pool=8)
            window = int(args.soak_payment_window)
            proj = start_projector(url)
            api = serve("ordertrail.adapters.http.app:create_app", args.workers,
                        api_env(url, payment_window=window), factory=True)
            try:
                flash_http(api, c, 2, args.tail, 0.0, toks)  # warm-up
                rss0 = rss_mib(api.workers())
                # (seconds, RSS of the API workers, reservations held in the store)
                memory: list[tuple[float, float, int]] = [(0.0, rss0, held_now(url))]
                sampling = threading.Event()

                def sample_memory() -> None:
                    t0 = time.monotonic()
                    while not sampling.wait(10.0):
                        memory.append((time.monotonic() - t0, rss_mib(api.workers()),
                                       held_now(url)))

                sampler_thread = threading.Thread(target=sample_memory, daemon=True)
                sampler_thread.start()
                got, acked, statuses = flash_http(api, c, args.soak, args.tail, 0.0, toks)
                sampling.set()
                sampler_thread.join()
                rss1 = rss_mib(api.workers())
                memory.append((got["seconds"], rss1, held_now(url)))
                r = Result(f"HTTP soak {args.soak:.0f} s (tail only, {window}-s payment window)",
                           "system", got["requests"], got["seconds"], got["p50"], got["p99"], c,
                           statuses.get("409", 0) + statuses.get("422", 0),
                           sum(v for k, v in statuses.items() if k.startswith("5")),
                           extra={"statuses": statuses, "rss_start_mib": rss0,
                                  "rss_end_mib": rss1,
                                  "rss_max_mib": max(m for _, m, _ in memory),
                                  "held_max": max(h for _, _, h in memory),
                                  "rss_samples": len(memory)})
                r.checks = check_store(url, acked)
                results.append(r)
                soak_memory = memory
                print(r, flush=True)
            finally:
                api.stop()
                proj.terminate()
                proj.wait(30)

        if wanted("read"):
            url = new_store(cluster, "reads", args.tail, big, pool=8)
            from ordertrail.adapters.bootstrap import open_ordertrail
            from ordertrail.adapters.settings import Settings

            pairs = []
            ot = open_ordertrail(Settings(database_url=url), create_tables=False)
            try:
                from ordertrail.application.context import CommandContext
                from ordertrail.application.ordering import PlaceOrder
                from ordertrail.application.placement import LineRequest
                from ordertrail.domain import (
                    Actor,
                    Address,
                    DeliveryGroup,
                    Money,
                    PaymentMethod,
                    PlannedPayment,
                )

                group = DeliveryGroup("home", Address.create(**ADDRESS))
                for n in range(200):
                    buyer = f"buyer-{n % 64}"
                    accepted = ot.ordering.place_order(PlaceOrder(
                        buyer, (LineRequest(f"TAIL-{n % args.tail:04d}", 1, "home"),), (group,),
                        (PlannedPayment(PaymentMethod.ALIPAY, Money(PRICE, "CNY")),)),
                        CommandContext(Actor.of("customer", buyer)))
                    pairs.append((str(accepted.value.order_id), toks[n % 64]))
            finally:
                ot.close()
            proj = start_projector(url)
            api = serve("ordertrail.adapters.http.app:create_app", args.workers, api_env(url),
                        factory=True)
            try:
                time.sleep(3)
                script = READ_LUA % {"pairs": ",".join(f'{{"{o}","{t}"}}' for o, t in pairs)}
                wrk(api.port, script, c, 2, "/")
                got = wrk(api.port, script, c, d, "/")
                non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", got["raw"])
                results.append(Result("HTTP read-heavy: GET /orders/{id}/tracking", "system",
                                      got["requests"], got["seconds"], got["p50"], got["p99"], c,
                                      errors=int(non2xx.group(1)) if non2xx else 0))
                print(results[-1], flush=True)
            finally:
                api.stop()
                proj.terminate()
                proj.wait(30)

        if args.faults:
            results.append(run_faults(cluster, args, toks))
            print(results[-1], flush=True)
    finally:
        cluster.stop()
        load.stopping.set()

    print_table(results, sweep)
    print(f"\n# load average (1 min) during the run: {load.summary()}")
    if profile_summary:
        print("\n" + profile_summary)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": describe(), "load_average": load.summary(), "soak_memory": soak_memory,
             "results": [r.__dict__ | {"rate": r.rate} for r in results],
             "sweep": sweep}, indent=2, default=str))
    if args.plot and sweep:
        plot(sweep, results, args.plot)
    if args.plot:
        plot_ceiling(results, str(Path(args.plot).with_name(Path(args.plot).stem + "_ceiling.png")))
    if args.plot and soak_memory:
        plot_memory(soak_memory, str(Path(args.plot).with_name(Path(args.plot).stem + "_soak_memory.png")))
    bad = [r for r in results if any(r.checks.get(k) for k in ("oversold", "missing",
                                                                "duplicates", "orphans"))]
    bad += [p for p in sweep if any(p["checks"].get(k) for k in ("oversold", "missing",
                                                                  "duplicates", "orphans"))]
    if bad:
        print("CORRECTNESS CHECK FAILED", file=sys.stderr)
        return 1
    return 0


def run_faults(cluster: Cluster, args: argparse.Namespace, toks: list[str]) -> Result:
    """A flash sale over HTTP during which one API worker is killed (-9) and PostgreSQL is
    stopped abruptly and started again; then the store is checked."""
    url = new_store(cluster, "faults", args.tail, args.hot_stock, pool=8)
    proj = start_projector(url)
    api = serve("ordertrail.adapters.http.app:create_app", args.workers, api_env(url),
                factory=True)
    duration = max(args.duration * 2, 16)
    events: list[str] = []

    def inject() -> None:
        time.sleep(duration * 0.3)
        victim = api.workers()[0]
        os.kill(victim, signal.SIGKILL)
        events.append(f"killed API worker {victim} at {duration * 0.3:.0f} s")
        time.sleep(duration * 0.3)
        t0 = time.monotonic()
        cluster.restart("immediate")
        events.append(f"PostgreSQL restarted (immediate) at {duration * 0.6:.0f} s, down "
                      f"{time.monotonic() - t0:.1f} s")

    injector = threading.Thread(target=inject)
    try:
        injector.start()
        got, acked, statuses = flash_http(api, args.concurrency, duration, args.tail,
                                          args.hot_share, toks)
        injector.join()
        time.sleep(2)
    finally:
        api.stop()
        proj.terminate()
        proj.wait(30)
    r = Result("faults: kill -9 API worker + PostgreSQL restart", "system", got["requests"],
               got["seconds"], got["p50"], got["p99"], args.concurrency,
               statuses.get("409", 0) + statuses.get("422", 0),
               sum(v for k, v in statuses.items() if not k.startswith(("2", "4"))),
               note="; ".join(events), extra={"statuses": statuses})
    r.checks = check_store(url, acked, reap=True)
    return r


def print_table(results: list[Result], sweep: list[dict[str, Any]]) -> None:
    def rate_of(prefix: str) -> float:
        return next((r.rate for r in results if r.name.startswith(prefix)), 0.0)

    raw = rate_of("raw psycopg")
    hello = rate_of("Litestar hello")
    crud = rate_of("CRUD hot row")
    print()
    print("| run | kind | conc. | ops/s | p50 ms | p99 ms | refused | errors | vs raw insert"
          " | vs hello | vs CRUD hot row | oversold/missing/dup/orphans |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        checks = "/".join(str(r.checks.get(k, "-")) for k in ("oversold", "missing",
                                                             "duplicates", "orphans"))
        print(f"| {r.name} | {r.kind} | {r.concurrency} | {r.rate:,.0f} | {r.p50_ms:.1f} |"
              f" {r.p99_ms:.1f} | {r.refused} | {r.errors} |"
              f" {r.rate / raw if raw else 0:.2f} | {r.rate / hello if hello else 0:.2f} |"
              f" {r.rate / crud if crud else 0:.2f} | {checks if r.checks else '-'} |")
    for r in results:
        if r.extra or r.note:
            print(f"- {r.name}: {r.note} {json.dumps(r.extra, default=str)}")
    print_ceiling(results, raw, crud)
    if sweep:
        print("\n| concurrency | orders/s | p50 ms | p99 ms | statuses | checks |")
        print("|---:|---:|---:|---:|---|---|")
        for p in sweep:
            print(f"| {p['concurrency']} | {p['rate']:,.0f} | {p['p50']:.1f} | {p['p99']:.1f} |"
                  f" {p['statuses']} | {p['checks']} |")


def ceiling_inputs(results: list[Result]) -> tuple[float, dict[str, int]] | None:
    """The floor (µs per order) and the one-process flash sale's CPU per order, if the
    run measured both."""
    floor = next((r for r in results if r.kind == "ceiling"), None)
    placed = next((r for r in results if r.name.endswith("flash sale (1 proc)")), None)
    if floor is None or placed is None or "cpu_us_per_order" not in placed.extra:
        return None
    return floor.seconds / floor.ops * 1e6, placed.extra["cpu_us_per_order"]


def print_ceiling(results: list[Result], raw: float, crud: float) -> None:
    """The machine's ceiling for placement: every core busy with only an order's floor
    (its own work in Python) and its measured share of PostgreSQL's CPU."""
    if (inputs := ceiling_inputs(results)) is None:
        return
    floor_us, spent = inputs
    cores = os.cpu_count() or 1
    top = ceiling(floor_us, spent["postgres"], cores)
    print(f"\n- ceiling: {cores} cores / (floor {floor_us:.0f} µs + PostgreSQL"
          f" {spent['postgres']} µs per order) = {top:,.0f} orders/s"
          f" = {top / raw if raw else 0:.2f}x raw insert, {top / crud if crud else 0:.2f}x"
          f" CRUD hot row; the load process spent {spent['load_processes']} µs per order"
          f" ({spent['load_processes'] / floor_us:.1f}x the floor)")


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average, every 5 s (the machine is shared)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self.stopping.wait(5.0):
                return

    def summary(self) -> str:
        if not self.samples:
            return "-"
        ordered = sorted(self.samples)
        return (f"min {ordered[0]:.1f}, median {ordered[len(ordered) // 2]:.1f}, "
                f"max {ordered[-1]:.1f} ({len(ordered)} samples, {os.cpu_count()} cores)")


def held_now(url: str) -> int:
    """Reservations held in the store now (reserved minus released and shipped)."""
    schema = re.search(r"schema=(\w+)", url)
    assert schema is not None
    with psycopg.connect(url.split("?", maxsplit=1)[0]) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE topic LIKE '%StockReserved')"
            " - count(*) FILTER (WHERE topic LIKE '%ReservationReleased')"
            f" FROM {schema.group(1)}.inventory_events").fetchone()
    return int(row[0]) if row else 0


def plot_memory(memory: list[Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    minutes = [sample[0] / 60 for sample in memory]
    ax.plot(minutes, [sample[1] for sample in memory], ".-", label="RSS")
    ax.set_xlabel("minutes into the soak")
    ax.set_ylabel("API workers' RSS (MiB, together)")
    ax.set_ylim(bottom=0)
    ax.set_title("API worker memory during the soak")
    if memory and len(memory[0]) > 2:
        held = ax.twinx()
        held.plot(minutes, [sample[2] for sample in memory], "x--", color="tab:orange",
                  label="reservations held")
        held.set_ylabel("reservations held (store)")
        held.set_ylim(bottom=0)
        fig.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def replot(json_path: str, path: str) -> None:
    """Draw the sweep and ceiling plots again from a run's ``--json`` file."""
    data = json.loads(Path(json_path).read_text())
    results = [Result(**{k: v for k, v in r.items() if k != "rate"}) for r in data["results"]]
    plot(data["sweep"], results, path)
    plot_ceiling(results, str(Path(path).with_name(Path(path).stem + "_ceiling.png")))


def plot_ceiling(results: list[Result], path: str) -> None:
    """Every placement rate of the run beside the baselines, the floor and the ceiling."""
    if (inputs := ceiling_inputs(results)) is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = ceiling(inputs[0], inputs[1]["postgres"], os.cpu_count() or 1)
    wanted = [("raw psycopg", "raw insert, 1 row/txn"), ("CRUD hot row", "CRUD hot row"),
              ("Litestar hello", "hello-world POST"), ("floor:", "floor: one order's own work, 1 core"),
              ("in-process batched placement, flash sale (1", "in process, flash sale"),
              ("in-process batched, hot", "in process, hot SKU only"),
              ("HTTP flash sale: POST", "HTTP POST /orders, 32 conn.")]
    bars = [(label, r.rate, r.kind) for prefix, label in wanted
            for r in results if r.name.startswith(prefix)]
    bars.insert(4, ("ceiling: 2 cores, floor + PostgreSQL", top, "ceiling"))
    colours = {"baseline": "tab:grey", "ceiling": "tab:blue", "system": "tab:orange"}
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ys = list(range(len(bars)))[::-1]
    ax.barh(ys, [b[1] for b in bars], color=[colours[b[2]] for b in bars])
    for y, (_, rate, _) in zip(ys, bars, strict=True):
        ax.text(rate * 1.05, y, f"{rate:,.0f}", va="center", fontsize=8)
    ax.set_yticks(ys, [b[0] for b in bars], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(b[1] for b in bars) * 3)
    ax.set_xlabel("orders (or requests, transactions) per second, log scale")
    ax.set_title("Placement against the baselines and this machine's ceiling", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(sweep: list[dict[str, Any]], results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["concurrency"] for p in sweep]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [p["rate"] for p in sweep], "o-", label="POST /orders (orders/s)")
    hello = next((r.rate for r in results if r.name.startswith("Litestar hello")), 0)
    if hello:
        ax.axhline(hello, ls="--", color="grey", label="hello-world POST")
    raw = next((r.rate for r in results if r.name.startswith("raw psycopg")), 0)
    if raw:
        ax.axhline(raw, ls="-.", color="tab:green", label="raw psycopg insert (txn/s)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")  # the baselines are 10-100x above the API
    ax.set_xlabel("concurrent connections (wrk)")
    ax.set_ylabel("requests/s (log scale)")
    ax2 = ax.twinx()
    ax2.plot(xs, [p["p99"] for p in sweep], "s:", color="tab:red", label="p99 latency (ms)")
    ax2.plot(xs, [p["p50"] for p in sweep], "^:", color="tab:orange", label="p50 latency (ms)")
    ax2.set_ylabel("latency (ms)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("Flash sale over HTTP: throughput and latency against concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)



if __name__ == "__main__":
    raise SystemExit(main())
