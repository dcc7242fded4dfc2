"""Signed checkpoints are refused when their signature or key is wrong; exports verify
offline, in a separate process that needs no database, and an export tampered with in any
way fails there with the kind and position of the first break."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from uuid import uuid4

import pytest

from ordertrail.adapters.audit.chain import Link, link_hash
from ordertrail.adapters.audit.checkpoints import (
    SignedCheckpoint,
    check_checkpoint,
    generate_keys,
    load_private_key,
    load_public_key,
    take_checkpoint,
    write_checkpoint,
)
from ordertrail.adapters.audit.export import export_order, export_range
from ordertrail.adapters.audit.offline import (
    Checkpoint,
    parse_line,
    read_lines,
    render_line,
    verify_export,
)
from ordertrail.adapters.audit.verify import verify_log
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from tests.audit import History, RawLog, open_chained
from tests.support.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(seeded_history: History) -> History:
    return seeded_history


@pytest.fixture
def chained(store_settings: Settings, clock: FakeClock, history: History) -> Iterator[Ordertrail]:
    with open_chained(store_settings, clock) as ot:
        yield ot


@pytest.fixture
def orders_log(store_settings: Settings) -> Iterator[RawLog]:
    raw = RawLog(store_settings, "Orders")
    yield raw
    raw.close()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "audit.key.pem", tmp_path / "audit.pub.pem"
    generate_keys(private, public)
    return private, public


def checkpoint_orders(ot: Ordertrail, keys: tuple[Path, Path], path: Path) -> SignedCheckpoint:
    signed = take_checkpoint(
        ot.orders.recorder, ot.orders.name, load_private_key(keys[0].read_bytes())
    )
    write_checkpoint(signed, path)
    return signed


def offline(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordertrail.adapters.audit.offline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


# --- checkpoints ------------------------------------------------------------------------


def test_keys_are_written_as_pem_and_never_overwritten(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert private.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        generate_keys(private, public)


def test_a_wrong_key_or_an_edited_checkpoint_is_refused(
    chained: Ordertrail, history: History, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "cp.json"
    signed = checkpoint_orders(chained, keys, path)
    position = signed.checkpoint.position
    report = verify_log(chained.orders.recorder, application="Orders", watch=[position])
    other = tmp_path / "other.pub.pem"
    generate_keys(tmp_path / "other.key.pem", other)
    wrong = check_checkpoint(signed, load_public_key(other.read_bytes()), report)
    assert (wrong.ok, wrong.kind) == (False, "signature")
    public = load_public_key(keys[1].read_bytes())
    assert check_checkpoint(signed, public, report).ok

    flipped = bytearray(signed.signature)
    flipped[7] ^= 0x01
    bad = SignedCheckpoint(signed.checkpoint, bytes(flipped))
    assert check_checkpoint(bad, public, report).kind == "signature"

    edited = path.read_text().replace(
        f'"count": {signed.checkpoint.count}', f'"count": {signed.checkpoint.count + 1}'
    )
    assert edited != path.read_text()
    forged = SignedCheckpoint.from_json(edited)
    assert check_checkpoint(forged, public, report).kind == "signature"


# --- exports ------------------------------------------------------------------------------


def export_orders(ot: Ordertrail, path: Path, **window: datetime) -> list[str]:
    out = io.StringIO()
    summary = export_range(ot.orders, out, batch_size=6, **window)
    path.write_text(out.getvalue(), encoding="utf-8")
    lines = out.getvalue().splitlines()
    assert summary.events == len(lines)
    return lines


def test_an_export_verifies_offline_with_its_checkpoint(
    chained: Ordertrail, history: History, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.json"
    checkpoint_orders(chained, keys, checkpoint)
    export = tmp_path / "orders.jsonl"
    lines = export_orders(chained, export)
    assert len(lines) == len(chained.orders.recorder.select_notifications(0, 10_000))

    done = offline(export, "--checkpoint", checkpoint, "--public-key", keys[1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK Orders")
    assert "checkpoint at" in done.stdout

    other = tmp_path / "other.pub.pem"
    generate_keys(tmp_path / "other.key.pem", other)
    refused = offline(export, "--checkpoint", checkpoint, "--public-key", other)
    assert refused.returncode == 1
    assert "signature" in refused.stdout


def test_an_edited_byte_of_an_export_is_detected(
    chained: Ordertrail, history: History, tmp_path: Path
) -> None:
    export = tmp_path / "orders.jsonl"
    lines = export_orders(chained, export)
    data = export.read_bytes()
    # offline, in a process of its own: one byte of a state
    line = len(lines) // 2
    start = sum(len(text.encode()) + 1 for text in lines[:line])
    at = data.index(b'"state":{', start) + 12
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    done = offline(edited)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED Orders: changed at position")

    # every byte of one line, each edited on its own, in a window of three lines (a run of
    # a log verifies on its own, anchored at its first line's prev_hash)
    before, target, after = (text.encode() for text in lines[line - 1 : line + 2])
    assert verify_export(read_lines(b"\n".join((before, target, after)))).ok
    for index in range(len(target)):
        mutated = target[:index] + bytes([target[index] ^ 0x01]) + target[index + 1 :]
        verdict = verify_export(read_lines(b"\n".join((before, mutated, after))))
        assert not verdict.ok, f"byte {index} of line {line + 1} edited unnoticed"


def test_a_time_range_export_is_contiguous_and_anchored(
    chained: Ordertrail, history: History, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    everything = export_orders(chained, tmp_path / "all.jsonl")
    stamps = [datetime.fromisoformat(_field(text, "timestamp")) for text in everything]
    since, until = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    export = tmp_path / "window.jsonl"
    window = export_orders(chained, export, since=since, until=until)
    assert 0 < len(window) < len(everything)
    assert window == everything[len(stamps) // 3 : len(stamps) // 3 + len(window)]
    done = offline(export)
    assert done.returncode == 0, done.stdout
    assert "anchored" in done.stdout
    # a checkpoint beyond the window cannot be tied to it
    checkpoint = tmp_path / "cp.json"
    checkpoint_orders(chained, keys, checkpoint)
    beyond = offline(export, "--checkpoint", checkpoint, "--public-key", keys[1])
    assert beyond.returncode == 1
    assert "not in the export" in beyond.stdout


def _field(line: str, name: str) -> str:
    value = json.loads(line)[name]
    assert isinstance(value, str)
    return value


def test_an_orders_export_covers_its_shipments_and_cases_and_verifies_as_a_subset(
    chained: Ordertrail, history: History, tmp_path: Path
) -> None:
    out = io.StringIO()
    summary = export_order(chained, history.delivered, out)
    export = tmp_path / "order.jsonl"
    export.write_text(out.getvalue(), encoding="utf-8")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.events == len(rows)
    assert {row["application"] for row in rows} == {"Orders", "Logistics", "AfterSales"}
    topics = {row["topic"] for row in rows}
    assert "ordertrail.orders:Order.Placed" in topics
    assert any(topic.startswith("ordertrail.logistics:Shipment.") for topic in topics)
    assert any(topic.startswith("ordertrail.aftersales:AfterSalesCase.") for topic in topics)
    assert all(isinstance(row["state"], dict) for row in rows)

    done = offline(export, "--subset")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK subset")
    # as a range it is not contiguous, and says so
    assert offline(export).returncode == 1

    data = export.read_bytes()
    at = data.index(b'"topic":"') + 12
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(data[:at] + b"X" + data[at + 1 :])
    refused = offline(edited, "--subset")
    assert refused.returncode == 1
    assert "changed" in refused.stdout


def test_the_offline_verifier_needs_only_the_standard_library_and_cryptography() -> None:
    """(and the cffi backend that cryptography loads)"""
    probe = (
        "import sys, importlib.metadata as md\n"
        "before = set(sys.modules)\n"
        "import ordertrail.adapters.audit.offline\n"
        "third_party = set(md.packages_distributions()) - set(sys.stdlib_module_names)\n"
        "loaded = {name.split('.')[0] for name in set(sys.modules) - before}\n"
        "allowed = {'cryptography', 'cffi', '_cffi_backend', 'ordertrail'}\n"
        "print(sorted((loaded & third_party) - allowed))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- an export tampered with, each way, fails offline -------------------------------------

ExportEdit = Callable[[list[str], Checkpoint], tuple[list[str], str, int]]


def _link(line: str) -> Link:
    return parse_line(line).link


def _render(line: str, link: Link) -> str:
    return render_line(parse_line(line).application, link)


def edit_a_byte_of_a_state(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    i = len(lines) // 2
    start = lines[i].index('"state":{')
    found = re.compile(r"\d").search(lines[i], start)
    assert found is not None
    at = found.start()
    digit = str((int(lines[i][at]) + 1) % 10)
    lines[i] = lines[i][:at] + digit + lines[i][at + 1 :]
    return lines, "changed", _link(lines[i]).position


def edit_a_topic(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    i = len(lines) // 2
    link = _link(lines[i])
    lines[i] = _render(lines[i], link._replace(topic="ordertrail.orders:Order.Cancelled"))
    return lines, "changed", link.position


def delete_a_line(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    i = len(lines) // 2
    del lines[i]
    return lines, "missing", _link(lines[i]).position


def _forge_at(lines: list[str], i: int, *, chained: bool) -> tuple[list[str], int]:
    """A forged line where line ``i`` was, the lines from there renumbered up by one."""
    position = _link(lines[i]).position
    moved = [
        _render(line, _link(line)._replace(position=_link(line).position + 1)) for line in lines[i:]
    ]
    template = _link(lines[i])
    oid = str(uuid4())
    prev = _link(lines[i - 1]).stored_hash
    assert prev is not None
    assert template.state is not None
    digest = link_hash(prev, position, oid, 1, str(template.topic), template.state)
    fake = template._replace(
        originator_id=oid,
        originator_version=1,
        stored_hash=digest if chained else None,
        stored_prev=prev if chained else None,
    )
    return [*lines[:i], _render(lines[i], fake), *moved], position


def insert_a_forged_chained_line(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    edited, position = _forge_at(lines, len(lines) // 2, chained=True)
    return edited, "inserted", position


def insert_a_forged_unchained_line(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    edited, position = _forge_at(lines, len(lines) // 2, chained=False)
    return edited, "inserted", position


def swap_two_lines(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    i, j = len(lines) // 3, len(lines) // 3 + 2
    lines[i], lines[j] = lines[j], lines[i]
    return lines, "reordered", _link(lines[i]).position


def swap_two_lines_contents(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    # each line keeps its position and hashes but now holds the other's event
    i, j = len(lines) // 3, len(lines) // 3 + 2
    a, b = _link(lines[i]), _link(lines[j])
    keep = ("position", "stored_hash", "stored_prev")
    lines[i] = _render(lines[i], b._replace(**{name: getattr(a, name) for name in keep}))
    lines[j] = _render(lines[j], a._replace(**{name: getattr(b, name) for name in keep}))
    return lines, "reordered", a.position


def cut_the_tail(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    return lines[:-3], "truncated", cp.position


def rehash_after_a_change(lines: list[str], cp: Checkpoint) -> tuple[list[str], str, int]:
    # the intruder re-hashes every line from the changed one: the chain alone verifies
    i = len(lines) // 2
    prev = _link(lines[i]).stored_prev
    assert prev is not None
    for n in range(i, len(lines)):
        link = _link(lines[n])
        if n == i:
            link = link._replace(topic="ordertrail.orders:Order.Cancelled")
        digest = link.computed(prev)
        lines[n] = _render(lines[n], link._replace(stored_prev=prev, stored_hash=digest))
        prev = digest
    assert verify_export(lines).ok
    return lines, "rewritten", cp.position


EXPORT_EDITS = [
    edit_a_byte_of_a_state,
    edit_a_topic,
    delete_a_line,
    insert_a_forged_chained_line,
    insert_a_forged_unchained_line,
    swap_two_lines,
    swap_two_lines_contents,
    cut_the_tail,
    rehash_after_a_change,
]


@pytest.mark.parametrize("edit", EXPORT_EDITS, ids=lambda e: e.__name__)
def test_an_export_tampered_with_fails_offline_with_its_kind_and_position(
    chained: Ordertrail,
    history: History,
    keys: tuple[Path, Path],
    tmp_path: Path,
    edit: ExportEdit,
) -> None:
    signed = checkpoint_orders(chained, keys, tmp_path / "cp.json")
    public = load_public_key(keys[1].read_bytes())
    lines = export_orders(chained, tmp_path / "orders.jsonl")
    assert verify_export(lines, checkpoint=signed, public_key=public).ok

    edited, kind, position = edit(list(lines), signed.checkpoint)

    assert edited != lines
    verdict = verify_export(edited, checkpoint=signed, public_key=public)
    assert not verdict.ok, "tampering went unnoticed"
    assert verdict.broken is not None, verdict.message
    assert (verdict.broken.kind, verdict.broken.position) == (kind, position), verdict.message


def test_an_export_with_a_badly_signed_checkpoint_is_refused_offline(
    chained: Ordertrail, history: History, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "cp.json"
    checkpoint_orders(chained, keys, path)
    export = tmp_path / "orders.jsonl"
    export_orders(chained, export)
    data = json.loads(path.read_text())
    signature = bytearray(bytes.fromhex(data["signature"]))
    signature[0] ^= 0x80
    data["signature"] = signature.hex()
    path.write_text(json.dumps(data))
    done = offline(export, "--checkpoint", path, "--public-key", keys[1])
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED checkpoint: the signature does not verify")
