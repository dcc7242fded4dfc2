"""Decoding stored events from many threads at once in a fresh process — as a new API
worker or a placement process does under load — must not crash it. msgspec builds a
type's conversion info on its first use and another thread could find it half-built
(a segmentation fault in about three runs of four of this child without the guard in
``ordertrail.application.serialization``)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.application.system import Config
from tests.support.builders import customer, order_of, provider, stocked_product

CHILD = """
import base64, json, random, sys, threading, uuid
import ordertrail.adapters.bootstrap  # registers the event topics
from eventsourcing.persistence import JSONTranscoder, StoredEvent
from ordertrail.application.serialization import MsgspecMapper

rows = json.load(open(sys.argv[1]))
mapper = MsgspecMapper(transcoder=JSONTranscoder())
sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
barrier = threading.Barrier(8)

def decode(seed):
    mine = rows[:]
    random.Random(seed).shuffle(mine)
    barrier.wait()
    for topic, state in mine:
        mapper.to_domain_event(StoredEvent(uuid.uuid4(), 1, topic, base64.b64decode(state)))

threads = [threading.Thread(target=decode, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("decoded", len(rows) * 8)
"""


def stored_events(path: Path) -> int:
    """A small history across contexts, written as (topic, state) pairs."""
    rows = []
    with open_ordertrail(Settings(database_url="memory:", config=Config())) as ot:
        stocked_product(ot, "TEA-1", 30, 10)
        placed = [
            ot.ordering.place_order(
                order_of(("TEA-1", 1), total=30, customer_id=f"c-{n}"), customer(f"c-{n}")
            ).value.order_id
            for n in range(3)
        ]
        ot.ordering.cancel_order(CancelOrder(placed[0], "changed mind"), customer("c-0"))
        order = ot.orders.order(placed[1])
        payment = next(iter(order.payments.values()))
        ot.orders.capture_payment(
            CapturePayment(placed[1], payment.payment_id, payment.amount, "psp-1"), provider()
        )
        for app in (ot.catalog, ot.inventory, ot.orders):
            for n in app.recorder.select_notifications(start=1, limit=10_000):
                rows.append((n.topic, base64.b64encode(n.state).decode()))
    path.write_text(json.dumps(rows))
    return len({topic for topic, _ in rows})


def test_a_fresh_process_decodes_events_from_many_threads_at_once(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    assert stored_events(events) >= 8  # several event classes, each decoded first at once
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", CHILD, str(events)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for _ in range(6)
    ]
    assert [o.returncode for o in outcomes] == [0] * 6, [o.stderr[-500:] for o in outcomes]
    assert all("decoded" in o.stdout for o in outcomes)
