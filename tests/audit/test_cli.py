"""``ordertrail audit`` on SQLite and PostgreSQL: keys, verify (exit 1 and the first break
after tampering), signed checkpoints (periodic ones verify only what was appended; a cut
tail fails them), exports checked by ``verify-export`` and by the standalone offline
module, and exit status 2 when a command cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordertrail.adapters.cli import main
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from tests.audit import History, RawLog, open_chained, write_history
from tests.support.builders import customer, order_of
from tests.support.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(seeded_history: History) -> History:
    return seeded_history


@pytest.fixture
def chained(store_settings: Settings, clock: FakeClock, history: History) -> Iterator[Ordertrail]:
    with open_chained(store_settings, clock) as ot:
        yield ot


def audit(
    capsys: pytest.CaptureFixture[str], settings: Settings, *args: str | Path
) -> tuple[int, str, str]:
    """Run ``ordertrail audit ...`` on the test's store: (exit status, stdout, stderr)."""
    words = [str(arg) for arg in args]
    if words[0] not in ("keygen", "verify-export"):
        words[1:1] = ["--database-url", settings.database_url]
    capsys.readouterr()
    status = main(["audit", *words])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_checkpoint_export_and_offline(
    chained: Ordertrail,
    history: History,
    store_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = tmp_path / "audit.key.pem", tmp_path / "audit.pub.pem"
    assert (
        audit(capsys, store_settings, "keygen", "--private-key", private, "--public-key", public)[0]
        == 0
    )

    status, out, _ = audit(capsys, store_settings, "verify")
    assert status == 0, out
    assert {line.split(":")[0] for line in out.splitlines()} == {
        app.name for app in chained.applications
    }
    assert "Orders: OK, " in out

    checkpoints = tmp_path / "checkpoints"
    status, out, _ = audit(
        capsys, store_settings, "checkpoint", "--private-key", private, "--out", checkpoints
    )
    assert status == 0, out
    first = sorted(checkpoints.glob("orders-*.checkpoint.json"))
    assert len(first) == 1
    # the next one (periodic, say hourly) verifies only what was written since
    chained.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
    status, out, _ = audit(
        capsys,
        store_settings,
        "checkpoint",
        "--private-key",
        private,
        "--out",
        checkpoints,
        "--app",
        "Orders",
    )
    assert status == 0, out
    head = json.loads(first[0].read_text())["checkpoint"]["position"]
    assert f"(verified from {head})" in out
    newest = sorted(checkpoints.glob("orders-*.checkpoint.json"))[-1]
    assert newest != first[0]

    status, out, _ = audit(
        capsys, store_settings, "verify", "--checkpoint", checkpoints, "--public-key", public
    )
    assert status == 0, out
    assert out.count(": OK ") == len(list(checkpoints.iterdir()))

    export = tmp_path / "orders.jsonl"
    status, _, err = audit(capsys, store_settings, "export", "--app", "orders", "--out", export)
    assert status == 0, err
    status, out, _ = audit(
        capsys,
        store_settings,
        "verify-export",
        export,
        "--checkpoint",
        newest,
        "--public-key",
        public,
    )
    assert (status, out.split(" ")[0]) == (0, "OK"), out
    standalone = subprocess.run(
        [
            sys.executable,
            "-m",
            "ordertrail.adapters.audit.offline",
            str(export),
            "--checkpoint",
            str(newest),
            "--public-key",
            str(public),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert standalone.stdout.startswith("OK Orders")

    order = tmp_path / "order.jsonl"
    status, _, err = audit(
        capsys, store_settings, "export", "--order", str(history.delivered), "--out", order
    )
    assert status == 0, err
    status, out, _ = audit(capsys, store_settings, "verify-export", order, "--subset")
    assert status == 0, out
    assert out.startswith("OK subset")


def test_verify_exits_1_and_prints_the_first_break(
    chained: Ordertrail,
    history: History,
    store_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = RawLog(store_settings, "Orders")
    try:
        positions = raw.positions()
        victim = positions[len(positions) // 2]
        raw.set_topic(victim, "ordertrail.orders:Order.Cancelled")
        status, out, _ = audit(capsys, store_settings, "verify")
        assert status == 1
        assert f"Orders: BROKEN, changed at position {victim}: " in out
        assert "Catalog: OK" in out
        status, out, _ = audit(capsys, store_settings, "verify", "--app", "Catalog")
        assert (status, out.count("\n")) == (0, 1)
    finally:
        raw.close()


def test_a_cut_tail_fails_its_checkpoint(
    chained: Ordertrail,
    history: History,
    store_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    audit(capsys, store_settings, "keygen", "--private-key", private, "--public-key", public)
    checkpoints = tmp_path / "cp"
    audit(
        capsys,
        store_settings,
        "checkpoint",
        "--private-key",
        private,
        "--out",
        checkpoints,
        "--app",
        "Orders",
    )
    raw = RawLog(store_settings, "Orders")
    try:
        positions = raw.positions()
        raw.truncate_from(positions[-2])
    finally:
        raw.close()
    status, out, _ = audit(capsys, store_settings, "verify", "--app", "Orders")
    assert status == 0, out  # the chain alone cannot tell
    status, out, _ = audit(
        capsys,
        store_settings,
        "verify",
        "--app",
        "Orders",
        "--checkpoint",
        checkpoints,
        "--public-key",
        public,
    )
    assert status == 1
    assert f"FAILED truncated at position {positions[-1]}" in out


def test_commands_that_cannot_run_exit_2(
    store_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = audit(capsys, store_settings, "verify-export", tmp_path / "nothing.jsonl")
    assert status == 2
    assert "nothing.jsonl" in err
    status, _, err = audit(capsys, Settings(database_url="memory:"), "verify")
    assert status == 2
    assert "in-memory" in err
    status, _, err = audit(capsys, store_settings, "verify", "--app", "Nope")
    assert status == 2
    assert "no application Nope" in err
    status, _, err = audit(capsys, store_settings, "export", "--out", tmp_path / "x.jsonl")
    assert status == 2
    assert "--app" in err


def test_a_log_written_before_the_chain_is_sealed_by_the_command(
    store_settings: Settings, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.audit import open_unchained

    with open_unchained(store_settings, clock) as plain:
        write_history(plain, clock)
    status, _, err = audit(capsys, store_settings, "verify", "--app", "Logistics")
    assert status == 2
    assert "audit seal" in err
    status, out, _ = audit(capsys, store_settings, "seal")
    assert status == 0, out
    assert "Logistics: sealed " in out
    status, out, _ = audit(capsys, store_settings, "verify")
    assert status == 0, out
    status, out, _ = audit(capsys, store_settings, "seal", "--app", "Logistics")
    assert "Logistics: already chained" in out
