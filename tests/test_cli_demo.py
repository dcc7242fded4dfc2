"""The README's run command: the demo scenario runs from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_demo(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ordertrail", "demo", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_runs_on_the_embedded_store_and_tells_what_happened(tmp_path: Path) -> None:
    out = run_demo("--data-dir", str(tmp_path / "demo"))
    assert "Order A (Alipay, 136.00 CNY) paid in full: ready_to_ship." in out
    assert "order D is expired; KETTLE-GLASS: 8 on hand, 0 reserved, 8 available" in out
    assert "refused: inventory.insufficient_stock" in out
    assert (tmp_path / "demo" / "orders.db").exists()
    # Run twice: the demo store is recreated, not appended to.
    assert "Catalog: 5 products registered and stocked." in out
    assert "Catalog: 5 products registered and stocked." in run_demo(
        "--data-dir", str(tmp_path / "demo")
    )


@pytest.mark.postgres
def test_the_demo_runs_on_postgresql(postgres_schema_url: str) -> None:
    out = run_demo("--database-url", postgres_schema_url)
    assert "ordertrail demo on postgres" in out
    assert "Order C cancelled: cancelled; card authorization voided" in out
