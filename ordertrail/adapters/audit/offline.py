"""Verify an exported event log without the database, and define the export format.

    python -m ordertrail.adapters.audit.offline EXPORT.jsonl
    python -m ordertrail.adapters.audit.offline EXPORT.jsonl \\
        --checkpoint orders.checkpoint.json --public-key audit.pub.pem
    python -m ordertrail.adapters.audit.offline ORDER.jsonl --subset

It prints ``OK ...`` or the first break and exits 0 (verified), 1 (a break, a bad
signature, a checkpoint that does not match) or 2 (unusable arguments or files). It needs
only the standard library, ``cryptography`` (for checkpoints) and
``ordertrail.adapters.audit.chain`` (standard library only): give an auditor this file,
``chain.py`` and an export.

The export format (JSON Lines, UTF-8, one event per line, ``\\n`` after each line)
==================================================================================

    {"application":"Orders","position":17,"originator_id":"5c1f...-...","originator_version":3,
     "topic":"ordertrail.orders:Order.Paid","timestamp":"2026-11-11T10:00:00.000001Z",
     "state":{...},"prev_hash":"<64 hex>","hash":"<64 hex>"}

- keys in exactly that order, no spaces, JSON strings as Python's ``json.dumps`` with
  ``ensure_ascii=False`` writes them, hashes as lower-case hex (``null`` for an event
  without a chain row); ``timestamp`` is copied from the state (``null`` if it has none);
- ``state`` is the stored bytes **verbatim** (the stored JSON, so a JSON parser decodes it
  as an object). The hash covers those bytes, so a verifier hashes the raw text of that
  value, never a re-encoding of the parsed object. A state that is not a single-line JSON
  object (encrypted, compressed) is exported as ``"state":null,"state_base64":"..."``.

A line that is not exactly what the exporter would write for its own content is reported
as ``changed``, so editing any byte of a line (even one the hash does not cover, such as
the application name or the copied timestamp) is detected.

Two kinds of export:

- a range of one log (the default): contiguous positions, so each line's ``prev_hash``
  must be the ``hash`` of the line before it (the first line's ``prev_hash`` is taken as
  the anchor, and is ``GENESIS`` when the export starts at the log's first event). The
  whole chain is verified as in the database;
- a subset (``--subset``; the events of one order across logs): each event's own link
  (``hash == SHA-256(prev_hash ‖ its fields)``) is verified. That proves each exported
  event is the one its hash commits to, but not that the hash is part of the log, nor
  that the log holds no other event about the order: for that, verify a range export of
  the log against a signed checkpoint, then check the subset's hashes appear in it.

Checkpoints (``--checkpoint``, ``--public-key``): the Ed25519 signature must verify over
the canonical JSON of the checkpoint, its application must be the export's, the exported
line at its position must carry its ``head_hash``, and, when the export starts at the
log's first event, the export must hold ``count`` events up to that position.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ordertrail.adapters.audit.chain import (
    GENESIS,
    HASH_SIZE,
    LOOKAHEAD,
    Break,
    Link,
    verify_links,
)

KEYS = (
    "application",
    "position",
    "originator_id",
    "originator_version",
    "topic",
    "timestamp",
    "state",
    "prev_hash",
    "hash",
)
STATE_B64 = "state_base64"
CHECKPOINT_FIELDS = ("application", "position", "count", "head_hash", "created_at")

_decoder = json.JSONDecoder()


# --- the export line --------------------------------------------------------------------


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _state_text(state: bytes) -> tuple[str | None, Any]:
    """The state as line text and its parsed value, or (None, None) if it cannot be
    embedded verbatim (not UTF-8, not a JSON object, or not on a single line)."""
    try:
        text = state.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(value, dict) or text != text.strip() or "\n" in text or "\r" in text:
        return None, None
    return text, value


def render_line(application: str, link: Link) -> str:
    """The export line of one event (``link`` must hold the event), without newline."""
    if link.topic is None or link.state is None or link.originator_version is None:
        raise ValueError(f"no event at position {link.position} to export")
    state, prev_hash, digest = link.state, link.stored_prev, link.stored_hash
    text, value = _state_text(state)
    timestamp = value.get("timestamp") if isinstance(value, dict) else None
    parts = [
        f'"application":{_dumps(application)}',
        f'"position":{int(link.position)}',
        f'"originator_id":{_dumps(str(link.originator_id))}',
        f'"originator_version":{int(link.originator_version)}',
        f'"topic":{_dumps(link.topic)}',
        f'"timestamp":{_dumps(timestamp if isinstance(timestamp, str) else None)}',
    ]
    if text is not None:
        parts.append(f'"state":{text}')
    else:
        parts.append('"state":null')
        parts.append(f'"{STATE_B64}":{_dumps(base64.b64encode(state).decode("ascii"))}')
    parts.append(f'"prev_hash":{_dumps(None if prev_hash is None else prev_hash.hex())}')
    parts.append(f'"hash":{_dumps(None if digest is None else digest.hex())}')
    return "{" + ",".join(parts) + "}"


class LineError(ValueError):
    """A line that is not a well-formed export line."""


@dataclass(frozen=True)
class Line:
    number: int
    application: str
    link: Link


def _members(line: str) -> list[tuple[str, Any, str]]:
    """The top-level members of a JSON object line: (key, value, raw text of value)."""
    members: list[tuple[str, Any, str]] = []
    if not line.startswith("{") or not line.endswith("}"):
        raise LineError("not a JSON object")
    index = 1
    while True:
        key, index = _decoder.raw_decode(line, index)
        if not isinstance(key, str) or line[index : index + 1] != ":":
            raise LineError("malformed member")
        start = index + 1
        value, index = _decoder.raw_decode(line, start)
        members.append((key, value, line[start:index]))
        if line[index : index + 1] == ",":
            index += 1
            continue
        if index == len(line) - 1:
            return members
        raise LineError("malformed object")


def _hash_field(value: Any, name: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LineError(f"{name} is not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise LineError(f"{name} is not hex") from None
    if len(raw) != HASH_SIZE:
        raise LineError(f"{name} is not {HASH_SIZE} bytes")
    return raw


def parse_line(text: str, number: int = 0) -> Line:
    """Parse one export line; ``LineError`` unless it is exactly what ``render_line``
    writes for its own content."""
    try:
        members = _members(text)
    except (ValueError, IndexError) as error:
        raise LineError(f"line {number} is not a JSON object: {error}") from None
    values = {key: value for key, value, _ in members}
    raw = {key: raw for key, _, raw in members}
    if len(values) != len(members) or not set(KEYS) <= set(values):
        raise LineError(f"line {number} does not have the export's keys")
    try:
        if STATE_B64 in values:
            state = base64.b64decode(values[STATE_B64], validate=True)
        else:
            state = raw["state"].encode("utf-8")
        application = values["application"]
        link = Link(
            position=int(values["position"]),
            originator_id=str(values["originator_id"]),
            originator_version=int(values["originator_version"]),
            topic=str(values["topic"]),
            state=state,
            stored_hash=_hash_field(values["hash"], "hash"),
            stored_prev=_hash_field(values["prev_hash"], "prev_hash"),
        )
    except (TypeError, ValueError, binascii.Error) as error:
        raise LineError(f"line {number}: {error}") from None
    if not isinstance(application, str) or render_line(application, link) != text:
        raise LineError(f"line {number} is not as the exporter writes it")
    return Line(number, application, link)


def read_lines(data: bytes | Iterable[bytes]) -> Iterator[str]:
    """The lines of an export: its bytes, or its byte lines as a binary file yields them
    (a missing final newline is tolerated)."""
    chunks: Iterable[bytes] = data.split(b"\n") if isinstance(data, bytes) else data
    pending: bytes | None = None
    number = 0
    for chunk in chunks:
        if pending is not None:
            number += 1
            yield _decoded(pending, number)
        pending = chunk[:-1] if chunk.endswith(b"\n") else chunk
    if pending:  # (the empty piece after the final newline is no line)
        yield _decoded(pending, number + 1)


def _decoded(chunk: bytes, number: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return f"\x00invalid UTF-8 on line {number}"


# --- checkpoints ------------------------------------------------------------------------


def canonical_json(value: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Checkpoint:
    application: str
    position: int  # the head of the log when it was taken
    count: int  # events from the first up to ``position``
    head_hash: str  # hex of the hash at ``position``
    created_at: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CHECKPOINT_FIELDS}

    def canonical(self) -> bytes:
        return canonical_json(self.as_dict())


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signature: bytes  # Ed25519 over ``checkpoint.canonical()``

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint.as_dict(),
            "algorithm": "Ed25519",
            "signature": self.signature.hex(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SignedCheckpoint:
        data = json.loads(text)
        body = data["checkpoint"]
        if set(body) != set(CHECKPOINT_FIELDS) or data.get("algorithm") != "Ed25519":
            raise ValueError("not an ordertrail checkpoint")
        checkpoint = Checkpoint(
            application=str(body["application"]),
            position=int(body["position"]),
            count=int(body["count"]),
            head_hash=str(body["head_hash"]),
            created_at=str(body["created_at"]),
        )
        if checkpoint.as_dict() != body:  # no value was coerced
            raise ValueError("checkpoint fields have the wrong types")
        return cls(checkpoint, bytes.fromhex(data["signature"]))


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def signature_valid(signed: SignedCheckpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(signed.signature, signed.checkpoint.canonical())
    except InvalidSignature:
        return False
    return True


# --- verifying an export ----------------------------------------------------------------


@dataclass(frozen=True)
class ExportVerdict:
    ok: bool
    events: int
    message: str
    broken: Break | None = None
    line: int | None = None

    def __str__(self) -> str:
        return self.message


def _fail(
    message: str, events: int, broken: Break | None = None, line: int | None = None
) -> ExportVerdict:
    return ExportVerdict(False, events, message, broken, line)


def verify_export(
    lines: Iterable[str],
    *,
    subset: bool = False,
    checkpoint: SignedCheckpoint | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> ExportVerdict:
    """Verify the lines of an export (a range of one log unless ``subset``), streaming:
    memory does not grow with the length of the export."""
    if checkpoint is not None:
        if public_key is None:
            return _fail("a checkpoint needs the public key to check it", 0)
        if not signature_valid(checkpoint, public_key):
            return _fail("checkpoint: the signature does not verify with this key", 0)
    reader = _Reader(lines, checkpoint.checkpoint if checkpoint else None)
    verdict = _verify_subset(reader) if subset else _verify_range(reader)
    if reader.error is not None and (verdict.ok or verdict.line is None):
        return reader.error  # a malformed line comes before anything else that failed
    if not verdict.ok:
        return verdict
    if reader.seen == 0:
        return _fail("the export holds no event", 0)
    return verdict


class _Reader:
    """Parses lines one by one; stops at the first malformed one (kept as ``error``) and
    notes what a checkpoint needs along the way."""

    def __init__(self, lines: Iterable[str], checkpoint: Checkpoint | None) -> None:
        self.lines = enumerate(lines, start=1)
        self.checkpoint = checkpoint
        self.error: ExportVerdict | None = None
        self.seen = 0
        self.numbers: OrderedDict[int, int] = OrderedDict()  # position -> line, latest few
        self.at_checkpoint: Line | None = None
        self.upto_checkpoint = 0

    def __iter__(self) -> Iterator[Line]:
        for number, text in self.lines:
            try:
                line = parse_line(text, number)
            except LineError as error:
                self.error = _fail(
                    f"changed at line {number}: {error}",
                    self.seen,
                    Break("changed", _position_of(text), str(error)),
                    number,
                )
                return
            self.seen += 1
            self.numbers[line.link.position] = number
            if len(self.numbers) > 2 * LOOKAHEAD:
                self.numbers.popitem(last=False)
            cp = self.checkpoint
            if cp is not None and line.application == cp.application:
                if line.link.position <= cp.position:
                    self.upto_checkpoint += 1
                if line.link.position == cp.position:
                    self.at_checkpoint = line
            yield line


def _position_of(text: str) -> int:
    """The position a malformed line claims, if it can be read at all (else 0)."""
    try:
        value = json.loads(text)
        return int(value["position"]) if isinstance(value, dict) else 0
    except (ValueError, KeyError, TypeError):
        return 0


def _verify_subset(reader: _Reader) -> ExportVerdict:
    last: dict[str, int] = {}
    count = 0
    for line in reader:
        link = line.link
        broken: Break | None = None
        if link.position <= last.get(line.application, 0):
            broken = Break("reordered", link.position, "positions of a log must increase")
        elif link.stored_hash is None or link.stored_prev is None:
            broken = Break("unchained", link.position, "the event has no chain row")
        elif link.computed(link.stored_prev) != link.stored_hash:
            broken = Break("changed", link.position, "the event no longer matches its hash")
        if broken is not None:
            return _fail(
                f"{line.application}: {broken} (line {line.number})", count, broken, line.number
            )
        last[line.application] = link.position
        count += 1
    note = ""
    cp = reader.checkpoint
    if cp is not None:
        at = reader.at_checkpoint
        if at is None:
            note = "; checkpoint signature valid (a subset cannot be tied to its head)"
        elif at.link.stored_hash is None or at.link.stored_hash.hex() != cp.head_hash:
            return _fail("checkpoint: its head is not the exported event", count)
        else:
            note = "; checkpoint head matches"
    logs = ", ".join(sorted(last))
    return ExportVerdict(
        True, count, f"OK subset: {count} events of {logs}, each link verified{note}"
    )


def _verify_range(reader: _Reader) -> ExportVerdict:
    lines = iter(reader)
    first_line = next(lines, None)
    if first_line is None:
        return _fail("the export holds no event", 0)
    application = first_line.application
    first = first_line.link
    anchor = first.stored_prev if first.stored_prev is not None else GENESIS
    stray: list[Line] = []

    def links() -> Iterator[Link]:
        yield first
        for line in lines:
            if line.application != application:
                stray.append(line)
                return
            yield line.link

    outcome = verify_links(links(), start_hash=anchor)
    if outcome.broken is not None:
        number = reader.numbers.get(outcome.broken.position)
        where = f" (line {number})" if number else ""
        return _fail(
            f"{application}: {outcome.broken}{where}", outcome.count, outcome.broken, number
        )
    if stray:
        line = stray[0]
        broken = Break("changed", line.link.position, f"a line of {line.application}")
        return _fail(
            f"{application}: {broken} (line {line.number})", outcome.count, broken, line.number
        )
    if reader.error is not None:
        return reader.error
    from_genesis = anchor == GENESIS
    span = f"positions {first.position}..{outcome.head_position}"
    note = " from the first event" if from_genesis else f", anchored at {anchor.hex()[:16]}..."
    cp = reader.checkpoint
    if cp is not None:
        if cp.application != application:
            return _fail(
                f"checkpoint: it is for {cp.application}, the export for {application}",
                outcome.count,
            )
        at = reader.at_checkpoint
        if at is None:
            if outcome.head_position < cp.position:
                broken = Break(
                    "truncated",
                    cp.position,
                    f"the export ends at {outcome.head_position}, before the signed head",
                )
                return _fail(
                    f"checkpoint: its position {cp.position} is not in the export ({span}): "
                    "events after the export's last one were removed, or the export stops "
                    "before the checkpoint",
                    outcome.count,
                    broken,
                )
            return _fail(
                f"checkpoint: its position {cp.position} is not in the export ({span})",
                outcome.count,
                Break("rewritten", cp.position, "no exported event at the signed head"),
            )
        if at.link.stored_hash is None or at.link.stored_hash.hex() != cp.head_hash:
            return _fail(
                f"checkpoint: the hash at position {cp.position} is not its head_hash",
                outcome.count,
                Break("rewritten", cp.position, "the chain differs from the signed head"),
                at.number,
            )
        if from_genesis and reader.upto_checkpoint != cp.count:
            return _fail(
                f"checkpoint: {reader.upto_checkpoint} events up to position {cp.position}, "
                f"it says {cp.count}",
                outcome.count,
                Break("rewritten", cp.position, "the count differs from the signed one"),
            )
        note += f"; checkpoint at {cp.position} ({cp.created_at}) matches"
    return ExportVerdict(
        True, outcome.count, f"OK {application}: {outcome.count} events, {span}{note}"
    )


def verify_export_file(
    path: Path,
    *,
    subset: bool = False,
    checkpoint_path: Path | None = None,
    public_key_path: Path | None = None,
) -> ExportVerdict:
    checkpoint = (
        SignedCheckpoint.from_json(checkpoint_path.read_text("utf-8")) if checkpoint_path else None
    )
    public_key = load_public_key(public_key_path.read_bytes()) if public_key_path else None
    with path.open("rb") as export:
        return verify_export(
            read_lines(export), subset=subset, checkpoint=checkpoint, public_key=public_key
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ordertrail.adapters.audit.offline",
        description="Verify an exported ordertrail event log without the database.",
    )
    parser.add_argument("export", type=Path, help="the JSONL export")
    parser.add_argument("--checkpoint", type=Path, help="a signed checkpoint (JSON)")
    parser.add_argument("--public-key", type=Path, help="the Ed25519 public key (PEM)")
    parser.add_argument(
        "--subset",
        action="store_true",
        help="the export is a subset (an order's events): verify each event's own link",
    )
    args = parser.parse_args(argv)
    if (args.checkpoint is None) != (args.public_key is None):
        parser.error("--checkpoint and --public-key go together")
    try:
        verdict = verify_export_file(
            args.export,
            subset=args.subset,
            checkpoint_path=args.checkpoint,
            public_key_path=args.public_key,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(verdict.message if verdict.ok else f"FAILED {verdict.message}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
