"""Verification throughput of the audit hash chain, in events per second, on SQLite and
PostgreSQL.

    python -m benchmarks.audit_verify [--events 1000000] [--backends sqlite,postgres]

Builds a log of ``--events`` events (realistic states of about 300 bytes, ten events per
aggregate) by inserting stored events directly through the chained recorder in batches
of 5,000, so that every event is chained as in production. The SQLite log is kept in
``--data-dir`` and reused by the next run if it holds the same number of events; the
PostgreSQL log is written into a throwaway cluster with durable settings (fsync and
synchronous commit on), as ``benchmarks/rebuild.py`` does.

Then, on the same rows, each measured ``--repeat`` times (the best run is reported):

- **verify**: ``verify_log`` (read events and chain rows in batches, merge them, recompute
  and compare every link);
- **scan**: the same reads and merge (``read_links``), without hashing: the baseline that
  verification cannot beat;
- **fetch**: the two reads alone (event rows, then chain rows, in the same batches), not
  merged: the database and driver's share;
- **sha256**: ``hashlib.sha256`` alone over the exact bytes each link hashes (encoded
  outside the timing): the hashing cost on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from benchmarks.machine import describe
from ordertrail.adapters.audit.chain import GENESIS, encode_link
from ordertrail.adapters.audit.recorders import (
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
)
from ordertrail.adapters.audit.verify import read_batches, read_links, verify_log
from ordertrail.adapters.devdb import DURABLE, throwaway_cluster

INSERT_BATCH = 5_000
READ_BATCH = 10_000

Recorder = ChainedSQLiteApplicationRecorder | ChainedPostgresApplicationRecorder
VERSIONS = 10  # events per aggregate
TOPICS = (
    "ordertrail.orders:Order.Placed",
    "ordertrail.orders:Order.Paid",
    "ordertrail.inventory:InventoryItem.StockReserved",
    "ordertrail.logistics:Shipment.TrackingRecorded",
    "ordertrail.orders:Order.ShipmentDispatched",
    "ordertrail.aftersales:AfterSalesCase.Requested",
)


def states(count: int, seed: int = 11) -> Iterator[StoredEvent]:
    """``count`` stored events: ``VERSIONS`` per aggregate, JSON states of ~300 bytes."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 11, tzinfo=UTC)
    originator = uuid.UUID(int=rng.getrandbits(128))
    for n in range(count):
        version = n % VERSIONS + 1
        if version == 1:
            originator = uuid.UUID(int=rng.getrandbits(128))
        now += timedelta(microseconds=rng.randint(1, 50_000))
        actor = rng.choice(("customer", "staff", "system", "provider"))
        state = (
            f'{{"timestamp":"{now.isoformat().replace("+00:00", "Z")}",'
            f'"meta":{{"actor":{{"kind":"{actor}","id":"{actor[0]}-{rng.randint(1, 99999)}"}},'
            f'"correlation_id":"{uuid.UUID(int=rng.getrandbits(128))}",'
            f'"causation_id":"{uuid.UUID(int=rng.getrandbits(128))}"}},'
            f'"line_no":{rng.randint(1, 4)},"sku":"SKU-{rng.randint(0, 9999):04d}",'
            f'"quantity":{rng.randint(1, 5)},'
            f'"amount":{{"amount":{rng.randint(100, 500_000)},"currency":"CNY"}},'
            f'"note":"{"x" * rng.randint(0, 12)}"}}'
        ).encode()
        yield StoredEvent(originator, version, rng.choice(TOPICS), state)


def fill(recorder: Recorder, count: int) -> float:
    """Insert ``count`` events through the chained recorder; return the seconds taken."""
    started = time.perf_counter()
    batch: list[StoredEvent] = []
    for stored in states(count):
        batch.append(stored)
        if len(batch) == INSERT_BATCH:
            recorder.insert_events(batch)
            batch = []
    if batch:
        recorder.insert_events(batch)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Row:
    backend: str
    events: int
    verify: float  # events/s
    scan: float
    fetch: float
    sha256: float
    megabytes: float  # hashed


def measure(backend: str, recorder: Recorder, repeat: int) -> Row:
    verify_seconds, scan_seconds, fetch_seconds, hash_seconds = [], [], [], []
    count = hashed = 0
    for _ in range(repeat):
        report = verify_log(recorder, application=backend, batch_size=READ_BATCH)
        if not report.ok:
            raise SystemExit(f"the benchmark log does not verify: {report}")
        count = report.count
        verify_seconds.append(report.seconds)

        started = time.perf_counter()
        scanned = sum(1 for _ in read_links(recorder, batch_size=READ_BATCH))
        scan_seconds.append(time.perf_counter() - started)
        assert scanned == count

        started = time.perf_counter()
        stop = recorder.log_stop()
        fetched = sum(1 for _ in read_batches(recorder.select_stored, 0, stop, READ_BATCH))
        fetched += sum(1 for _ in read_batches(recorder.select_chain, 0, stop, READ_BATCH))
        fetch_seconds.append(time.perf_counter() - started)
        assert fetched == 2 * count

        hashed, seconds, prev = 0, 0.0, GENESIS
        batch: list[bytes] = []
        for link in read_links(recorder, batch_size=READ_BATCH):
            assert link.originator_id is not None
            assert link.originator_version is not None
            assert link.topic is not None
            assert link.state is not None
            batch.append(
                encode_link(
                    prev,
                    link.position,
                    link.originator_id,
                    link.originator_version,
                    link.topic,
                    link.state,
                )
            )
            assert link.stored_hash is not None
            prev = link.stored_hash
            if len(batch) == READ_BATCH:
                seconds += _hash_all(batch)
                hashed += sum(map(len, batch))
                batch = []
        seconds += _hash_all(batch)
        hashed += sum(map(len, batch))
        hash_seconds.append(seconds)
    return Row(
        backend,
        count,
        count / min(verify_seconds),
        count / min(scan_seconds),
        count / min(fetch_seconds),
        count / min(hash_seconds),
        hashed / 1e6,
    )


def _hash_all(encoded: list[bytes]) -> float:
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for data in encoded:
        sha256(data).digest()
    return time.perf_counter() - started


def sqlite_row(count: int, data_dir: Path, repeat: int) -> tuple[Row, float | None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"audit-{count}.db"
    datastore = SQLiteDatastore(str(path))
    recorder = ChainedSQLiteApplicationRecorder(datastore)
    recorder.create_table()
    written = None
    if recorder.max_notification_id() != count:
        datastore.close()
        path.unlink()
        datastore = SQLiteDatastore(str(path))
        recorder = ChainedSQLiteApplicationRecorder(datastore)
        recorder.create_table()
        written = fill(recorder, count)
    try:
        return measure("SQLite", recorder, repeat), written
    finally:
        datastore.close()


def postgres_row(count: int, repeat: int) -> tuple[Row, float]:
    with throwaway_cluster(DURABLE) as cluster:
        datastore = PostgresDatastore(
            "postgres", "127.0.0.1", str(cluster.port), cluster.user, "", pool_size=2
        )
        try:
            recorder = ChainedPostgresApplicationRecorder(
                datastore, events_table_name="bench_events"
            )
            recorder.create_table()
            written = fill(recorder, count)
            with datastore.get_connection() as conn:  # as autovacuum would, in time
                conn.execute("VACUUM ANALYZE bench_events")
                conn.execute("VACUUM ANALYZE bench_events_chain")
            return measure("PostgreSQL", recorder, repeat), written
        finally:
            datastore.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("var") / "bench")
    args = parser.parse_args()
    rows: list[tuple[Row, float | None]] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            rows.append(sqlite_row(args.events, args.data_dir, args.repeat))
        elif backend == "postgres":
            rows.append(postgres_row(args.events, args.repeat))
        else:
            raise SystemExit(f"unknown backend {backend!r}")
    print(f"machine: {describe()}")
    print(
        f"log: {args.events:,} events, ~300-byte states, {VERSIONS} per aggregate; "
        f"reads in batches of {READ_BATCH:,}; best of {args.repeat}"
    )
    for row, written in rows:
        if written is not None:
            print(
                f"{row.backend}: written through the chained recorder in {written:.1f} s "
                f"({row.events / written:,.0f} events/s, batches of {INSERT_BATCH:,})"
            )
    print()
    print(
        "| backend | events | verify (events/s) | scan, no hashing (events/s) | "
        "verify / scan | fetch only (events/s) | sha256 alone (events/s) | hashed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row, _ in rows:
        print(
            f"| {row.backend} | {row.events:,} | {row.verify:,.0f} | {row.scan:,.0f} | "
            f"{row.verify / row.scan:.2f} | {row.fetch:,.0f} | {row.sha256:,.0f} | "
            f"{row.megabytes:,.0f} MB |"
        )


if __name__ == "__main__":
    main()
