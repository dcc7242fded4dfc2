"""The read models' command line: status shows positions, heads and lag; rebuild and run
bring them up to date."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ordertrail(*args: str, url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ordertrail", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, "ORDERTRAIL_DATABASE_URL": url},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lags(status: str) -> dict[tuple[str, str], int]:
    rows = [line.split() for line in status.strip().splitlines()[1:]]
    return {(row[0], row[1]): int(row[4]) for row in rows}


def test_status_rebuild_and_run(tmp_path: Path) -> None:
    store = tmp_path / "demo"
    subprocess.run(
        [sys.executable, "-m", "ordertrail", "demo", "--data-dir", str(store)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    url = f"sqlite://{store}"
    before = lags(ordertrail("projections", "status", url=url))
    assert before[("inventory_levels", "Inventory")] > 0
    assert "inventory_levels: rebuilt from" in ordertrail(
        "projections", "rebuild", "inventory_levels", url=url
    )
    after = lags(ordertrail("projections", "status", url=url))
    assert after[("inventory_levels", "Inventory")] == 0
    runner = subprocess.Popen(
        [sys.executable, "-m", "ordertrail", "projections", "run"],
        cwd=ROOT,
        env={**os.environ, "ORDERTRAIL_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while any(lags(ordertrail("projections", "status", url=url)).values()):
            assert time.monotonic() < deadline, "the workers did not catch up"
            time.sleep(0.2)
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 0
