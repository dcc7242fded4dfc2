"""A worker process killed in the middle of a batch, then restarted, applies every event
exactly once: its rows and its position commit together or not at all."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.projections.runner import ProjectionWorker
from tests.projections.support import EventCounter, SlowEventCounter, opened
from tests.projections.test_runtime import expected_counts, receive_many

ROOT = Path(__file__).resolve().parents[2]


def start_worker(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.projections.worker_process", url], cwd=ROOT
    )


@pytest.mark.slow
def test_killing_a_worker_mid_batch_never_double_counts(
    ot: Ordertrail, store_settings: Settings
) -> None:
    receive_many(ot, 400)  # 800 events; the slow model takes ~2 ms each
    url = store_settings.database_url
    with opened(store_settings) as store:
        worker = ProjectionWorker(SlowEventCounter(), store, {"Inventory": ot.inventory})
        worker.setup()
        kills = 0
        for _ in range(3):
            process = start_worker(url)
            # Let it commit at least one batch, then kill it at a random moment.
            deadline = time.monotonic() + 30
            start = worker.status().positions.get("Inventory", 0)
            while worker.status().positions.get("Inventory", 0) == start:
                assert time.monotonic() < deadline, "the worker made no progress"
                assert process.poll() is None
                time.sleep(0.01)
            time.sleep(random.uniform(0.02, 0.15))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
        assert kills >= 1
        assert not worker.status().caught_up
        finisher = start_worker(url)
        assert finisher.wait(timeout=120) == 0
        assert worker.status().caught_up
        assert EventCounter.counts(store) == expected_counts(ot)
