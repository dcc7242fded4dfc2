"""Signed checkpoints: the head of a log, signed with Ed25519, kept outside the database.

A checkpoint is ``{application, position, count, head_hash, created_at}``; what is signed
is its canonical JSON (sorted keys, no spaces, UTF-8; ``offline.canonical_json``). The
file holds the checkpoint, the algorithm and the signature (hex)::

    {"algorithm": "Ed25519",
     "checkpoint": {"application": "Orders", "count": 120, "created_at": "...Z",
                    "head_hash": "<64 hex>", "position": 123},
     "signature": "<128 hex>"}

Anyone who can write to the database can rewrite the chain from a changed event onwards
so that it verifies again; they cannot make it end at the signed ``head_hash`` at the
signed position without the private key. Keep the private key away from the database
hosts (sign where the checkpoint is taken, publish or archive the checkpoint file
elsewhere). Events appended after the newest checkpoint are covered by the next one only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from ordertrail.adapters.audit.chain import GENESIS
from ordertrail.adapters.audit.offline import (
    Checkpoint,
    SignedCheckpoint,
    load_public_key,
    signature_valid,
)
from ordertrail.adapters.audit.verify import Report, verify_log

__all__ = [
    "CheckKind",
    "Checkpoint",
    "CheckpointCheck",
    "SignedCheckpoint",
    "check_checkpoint",
    "generate_keys",
    "load_private_key",
    "load_public_key",
    "read_checkpoint",
    "sign_checkpoint",
    "take_checkpoint",
    "verify_checkpoint",
    "write_checkpoint",
]


# --- keys -------------------------------------------------------------------------------


def generate_keys(
    private_path: Path, public_path: Path, *, passphrase: bytes | None = None
) -> Ed25519PublicKey:
    """Write a new Ed25519 key pair as PEM (the private key PKCS#8, mode 0600, encrypted
    with ``passphrase`` if given). Refuses to overwrite an existing file."""
    key = Ed25519PrivateKey.generate()
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: not overwriting a key")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    return key.public_key()


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem, password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


# --- taking and signing -----------------------------------------------------------------


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, private_key.sign(checkpoint.canonical()))


def checkpoint_of(report: Report, *, now: datetime | None = None) -> Checkpoint:
    """The checkpoint of a verified log (a broken log gets none)."""
    if not report.ok:
        raise ValueError(f"not signing a broken log: {report}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return Checkpoint(
        application=report.application,
        position=report.head_position,
        count=report.count,
        head_hash=report.head_hash.hex(),
        created_at=when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    )


def take_checkpoint(
    recorder: Any,
    application: str,
    private_key: Ed25519PrivateKey,
    *,
    now: datetime | None = None,
    previous: SignedCheckpoint | None = None,
) -> SignedCheckpoint:
    """Verify the log, then sign its head. With ``previous`` (an earlier checkpoint of
    this log, signed with this key), only what was written since it is verified, on
    from its signed head: periodic checkpoints cost what was appended, not the log."""
    start = None
    if previous is not None:
        if previous.checkpoint.application != application:
            raise ValueError(f"the previous checkpoint is for {previous.checkpoint.application}")
        if not signature_valid(previous, private_key.public_key()):
            raise ValueError("the previous checkpoint was not signed with this key")
        start = previous.checkpoint
    report = verify_log(recorder, application=application, start=start)
    return sign_checkpoint(checkpoint_of(report, now=now), private_key)


def write_checkpoint(signed: SignedCheckpoint, path: Path) -> None:
    path.write_text(signed.to_json(), encoding="utf-8")


def read_checkpoint(path: Path) -> SignedCheckpoint:
    return SignedCheckpoint.from_json(path.read_text(encoding="utf-8"))


# --- checking ---------------------------------------------------------------------------


CheckKind = Literal["ok", "signature", "application", "broken", "truncated", "rewritten"]


@dataclass(frozen=True)
class CheckpointCheck:
    """The verdict on one signed checkpoint: ``kind`` says what is wrong (``ok`` if
    nothing), at ``position`` (the checkpoint's, or the chain break that comes first)."""

    ok: bool
    reason: str
    kind: CheckKind = "ok"
    position: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"OK {self.reason}"
        return f"FAILED {self.kind} at position {self.position}: {self.reason}"


def check_checkpoint(
    checkpoint: SignedCheckpoint, public_key: Ed25519PublicKey, report: Report
) -> CheckpointCheck:
    """Whether the log, as ``report`` verified it, still holds the signed head. The
    report must cover the checkpoint's position and watch it (``verify_log(...,
    watch=[position])``; ``verify_checkpoint`` does both)."""
    cp = checkpoint.checkpoint
    at = cp.position
    if at != 0 and at not in report.watched:
        raise ValueError(f"the report was not asked to watch position {at}")

    def failed(kind: CheckKind, reason: str, position: int = at) -> CheckpointCheck:
        return CheckpointCheck(False, reason, kind, position)

    if not signature_valid(checkpoint, public_key):
        return failed("signature", "the signature does not verify with this key")
    if report.application and report.application != cp.application:
        return failed("application", f"the checkpoint is for {cp.application}, not this log")
    mark = (0, GENESIS) if at == 0 else report.marks.get(at)  # (an empty log's checkpoint)
    if mark is None:
        if report.broken is not None and report.broken.position <= at:
            return failed(
                "broken",
                f"the chain breaks before the signed head: {report.broken}",
                report.broken.position,
            )
        if report.broken is None and report.head_position < at:
            return failed(
                "truncated",
                f"the log now ends at position {report.head_position}, before the signed "
                f"head at {at} ({cp.count} events): events were removed",
            )
        return failed(
            "rewritten", f"no event at position {at} verifies any more: the chain was rewritten"
        )
    count, digest = mark
    if digest.hex() != cp.head_hash:
        return failed("rewritten", f"the hash at position {at} is not the signed head")
    if count != cp.count:
        return failed("rewritten", f"{count} events up to position {at}, signed {cp.count}")
    return CheckpointCheck(
        True, f"{cp.application} holds its checkpoint at {at} ({cp.created_at})", "ok", at
    )


def verify_checkpoint(
    recorder: Any, checkpoint: SignedCheckpoint, public_key: Ed25519PublicKey
) -> CheckpointCheck:
    """Verify the log up to the checkpoint's position and check it against the checkpoint."""
    cp = checkpoint.checkpoint
    report = verify_log(recorder, application=cp.application, stop=cp.position, watch=[cp.position])
    return check_checkpoint(checkpoint, public_key, report)
