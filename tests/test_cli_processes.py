"""``ordertrail processes run`` runs the process managers in a process of their own (so a
deployment can keep them apart from the API and the read models): an unpaid order past
its deadline is expired and its stock released; ``status`` shows their positions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Config
from ordertrail.domain import OrderStatus
from tests.support.builders import customer, order_of, stocked_product

ROOT = Path(__file__).resolve().parents[1]


def positions(status: str) -> dict[str, int]:
    rows = [line.split() for line in status.strip().splitlines()[1:]]
    return {row[0]: int(row[2]) for row in rows}


def test_the_process_managers_run_on_their_own(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}"
    settings = Settings(database_url=url, config=Config(payment_window=timedelta(seconds=1)))
    with open_ordertrail(settings) as ot:
        stocked_product(ot, "TEA-1", 100, 5)
        placed = ot.ordering.place_order(order_of(("TEA-1", 2), total=200), customer())
        order_id = placed.value.order_id
    env = {**os.environ, "ORDERTRAIL_DATABASE_URL": url}

    def status() -> dict[str, int]:
        done = subprocess.run(
            [sys.executable, "-m", "ordertrail", "processes", "status"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return positions(done.stdout)

    assert status()["order-expiry"] == 0
    time.sleep(1.1)  # past the payment deadline
    runner = subprocess.Popen(
        [sys.executable, "-m", "ordertrail", "processes", "run", "--interval", "0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with open_ordertrail(settings) as ot:
                expired = ot.orders.order(order_id).status is OrderStatus.EXPIRED
                held = ot.inventory.stock_level("TEA-1").reserved
            if expired and held == 0:
                break
            assert time.monotonic() < deadline, "the order was not expired and released"
            time.sleep(0.2)
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 0
    assert status()["order-expiry"] > 0
    assert status()["stock-releaser"] > 0
