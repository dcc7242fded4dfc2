"""Several processes starting at once on a fresh PostgreSQL schema (API workers and the
projection runner of one deployment) all create their tables and come up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_schema_all_come_up(
    postgres_schema_url: str,
) -> None:
    starts = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ordertrail",
                "projections",
                "status",
                "--database-url",
                postgres_schema_url,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [process.communicate(timeout=180) for process in starts]
    failures = [
        err for process, (_, err) in zip(starts, outcomes, strict=True) if process.returncode != 0
    ]
    assert failures == []
    assert all("order_tracking" in out for out, _ in outcomes)
