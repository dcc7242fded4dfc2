"""``ordertrail audit``: keys, verification, signed checkpoints and exports.

    ordertrail audit keygen --private-key audit.key.pem --public-key audit.pub.pem
    ordertrail audit verify [--app Orders] [--checkpoint DIR_OR_FILE ... --public-key K]
    ordertrail audit checkpoint --private-key audit.key.pem --out checkpoints/
    ordertrail audit export --app Orders [--since T] [--until T] --out orders.jsonl
    ordertrail audit export --order ORDER_ID --out order.jsonl
    ordertrail audit verify-export orders.jsonl [--checkpoint CP --public-key K] [--subset]
    ordertrail audit seal [--app Knowledge]

The store is ``--database-url`` or ``ORDERTRAIL_DATABASE_URL``, as for the other
commands. ``verify``, ``verify-export`` and ``checkpoint`` exit 0 when everything holds,
1 on the first break of any log (printed as ``<application>: BROKEN, <kind> at position
<n>: ...``) or a checkpoint that fails, 2 when they cannot run (a missing file, a store
without the chain tables). ``docs/audit.md`` describes the formats and the threat model.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from ordertrail.adapters.audit.checkpoints import (
    SignedCheckpoint,
    check_checkpoint,
    generate_keys,
    load_private_key,
    load_public_key,
    read_checkpoint,
    take_checkpoint,
    write_checkpoint,
)
from ordertrail.adapters.audit.export import export_order, export_range
from ordertrail.adapters.audit.history_commands import add_history_commands
from ordertrail.adapters.audit.offline import verify_export_file
from ordertrail.adapters.audit.verify import chained, verify_log
from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.system import Ordertrail

OK, BROKEN, UNUSABLE = 0, 1, 2
CHECKPOINT_SUFFIX = ".checkpoint.json"

Command = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """The command cannot run as asked (exit status 2)."""


def add_audit_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``audit`` and its subcommands to the ``ordertrail`` command line."""
    audit = commands.add_parser(
        "audit", help="verify the hash chains, sign checkpoints, export and check events"
    )
    actions = audit.add_subparsers(dest="audit_command", required=True)

    keygen = actions.add_parser("keygen", help="write a new Ed25519 key pair (PEM)")
    keygen.add_argument("--private-key", type=Path, required=True, help="where to write it")
    keygen.add_argument("--public-key", type=Path, required=True, help="where to write it")
    _passphrase_option(keygen, "encrypt the private key with the passphrase in this variable")
    keygen.set_defaults(run=_guarded(_keygen))

    verify = actions.add_parser(
        "verify", help="recompute every log's chain; report the first break of each"
    )
    _store_options(verify)
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="also check these signed checkpoints (a directory: every *.checkpoint.json)",
    )
    verify.add_argument("--public-key", type=Path, help="the key that signed the checkpoints")
    verify.set_defaults(run=_guarded(_verify))

    checkpoint = actions.add_parser(
        "checkpoint", help="verify each log and write its head and count, signed"
    )
    _store_options(checkpoint)
    checkpoint.add_argument("--private-key", type=Path, required=True, help="Ed25519 (PEM)")
    _passphrase_option(checkpoint, "the private key's passphrase is in this variable")
    checkpoint.add_argument(
        "--out", type=Path, default=Path("checkpoints"), help="directory to write them to"
    )
    checkpoint.add_argument(
        "--full",
        action="store_true",
        help="verify each whole log, not only what was written since its newest "
        "checkpoint in --out",
    )
    checkpoint.set_defaults(run=_guarded(_checkpoint))

    export = actions.add_parser("export", help="write events with their hashes as JSON Lines")
    _store_options(export, several=False)
    export.add_argument(
        "--order", type=UUID, help="an order's events, its shipments' and its cases'"
    )
    export.add_argument(
        "--since", type=_instant, help="first timestamp (ISO 8601; UTC unless given)"
    )
    export.add_argument("--until", type=_instant, help="timestamp to stop before")
    export.add_argument("--out", default="-", help="file to write (default: standard output)")
    export.set_defaults(run=_guarded(_export))

    verify_export = actions.add_parser(
        "verify-export", help="verify an export without the database (as audit.offline)"
    )
    verify_export.add_argument("export", type=Path, help="the JSON Lines export")
    verify_export.add_argument("--checkpoint", type=Path, help="a signed checkpoint")
    verify_export.add_argument("--public-key", type=Path, help="the key that signed it")
    verify_export.add_argument(
        "--subset", action="store_true", help="an order's export: check each event's own link"
    )
    verify_export.set_defaults(run=_guarded(_verify_export))

    seal = actions.add_parser(
        "seal", help="chain the events of logs written before the chain existed"
    )
    _store_options(seal)
    seal.set_defaults(run=_guarded(_seal))

    add_history_commands(actions)  # history, as-of, aggregate, replay-verify


def _store_options(parser: argparse.ArgumentParser, *, several: bool = True) -> None:
    parser.add_argument(
        "--database-url", default="", help="the store (default: ORDERTRAIL_DATABASE_URL)"
    )
    if several:
        parser.add_argument(
            "--app",
            action="append",
            default=[],
            metavar="NAME",
            help="only this application's log (repeatable; default: all)",
        )
    else:
        parser.add_argument("--app", metavar="NAME", help="the application whose log to export")


def _passphrase_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--passphrase-env", metavar="VARIABLE", help=text)


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _passphrase(args: argparse.Namespace) -> bytes | None:
    name = args.passphrase_env
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise CommandError(f"the variable {name} is not set")
    return value.encode("utf-8")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if args.database_url:
        settings = Settings(database_url=args.database_url, config=settings.config)
    if settings.backend == "memory":
        raise CommandError("an in-memory store keeps no chain: give a SQLite or PostgreSQL URL")
    return settings


@contextmanager
def _deployment(args: argparse.Namespace, *, create: bool = False) -> Iterator[Ordertrail]:
    """The deployment, opened without creating anything unless ``create`` (an auditor
    may only read)."""
    with open_ordertrail(_settings(args), create_tables=create) as ot:
        yield ot


def _applications(ot: Ordertrail, names: Sequence[str]) -> list[OrdertrailApplication]:
    apps = {app.name.lower(): app for app in ot.applications}
    if not names:
        return list(apps.values())
    unknown = [name for name in names if name.lower() not in apps]
    if unknown:
        known = ", ".join(app.name for app in apps.values())
        raise CommandError(f"no application {', '.join(unknown)} (there are {known})")
    return [apps[name.lower()] for name in names]


def _checkpoint_files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob(f"*{CHECKPOINT_SUFFIX}")))
        elif path.exists():
            found.append(path)
        else:
            raise CommandError(f"{path} does not exist")
    return found


# --- the commands --------------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    generate_keys(args.private_key, args.public_key, passphrase=_passphrase(args))
    print(f"wrote {args.private_key} (keep it off the database hosts) and {args.public_key}")
    return OK


def _verify(args: argparse.Namespace) -> int:
    checkpoints = [read_checkpoint(path) for path in _checkpoint_files(args.checkpoint)]
    if checkpoints and args.public_key is None:
        raise CommandError("--checkpoint needs --public-key")
    public_key = load_public_key(args.public_key.read_bytes()) if args.public_key else None
    status = OK
    with _deployment(args) as ot:
        for app in _applications(ot, args.app):
            own = [cp for cp in checkpoints if cp.checkpoint.application == app.name]
            report = verify_log(
                app.recorder,
                application=app.name,
                watch=[cp.checkpoint.position for cp in own],
            )
            print(f"{report} [{report.seconds:.2f} s]")
            status = max(status, OK if report.ok else BROKEN)
            for signed in own:
                assert public_key is not None
                check = check_checkpoint(signed, public_key, report)
                print(f"  checkpoint {signed.checkpoint.position}: {check}")
                status = max(status, OK if check.ok else BROKEN)
        names = {app.name for app in ot.applications}
    for signed in checkpoints:
        if signed.checkpoint.application not in names:
            print(f"checkpoint for an unknown application {signed.checkpoint.application}")
            status = BROKEN
    return status


def _newest_checkpoint(directory: Path, application: str) -> SignedCheckpoint | None:
    newest: SignedCheckpoint | None = None
    for path in directory.glob(f"{application.lower()}-*{CHECKPOINT_SUFFIX}"):
        signed = read_checkpoint(path)
        if signed.checkpoint.application != application:
            continue
        if newest is None or signed.checkpoint.position > newest.checkpoint.position:
            newest = signed
    return newest


def _checkpoint(args: argparse.Namespace) -> int:
    private_key = load_private_key(args.private_key.read_bytes(), _passphrase(args))
    args.out.mkdir(parents=True, exist_ok=True)
    status = OK
    with _deployment(args) as ot:
        for app in _applications(ot, args.app):
            previous = None if args.full else _newest_checkpoint(args.out, app.name)
            try:
                signed = take_checkpoint(app.recorder, app.name, private_key, previous=previous)
            except ValueError as error:  # a broken log is not signed
                print(f"{app.name}: no checkpoint: {error}")
                status = BROKEN
                continue
            cp = signed.checkpoint
            if cp.count == 0:
                print(f"{app.name}: no events yet, nothing to sign")
                continue
            stamp = cp.created_at.replace("-", "").replace(":", "").split(".")[0]
            path = args.out / f"{app.name.lower()}-{cp.position:012d}-{stamp}Z{CHECKPOINT_SUFFIX}"
            write_checkpoint(signed, path)
            since = f" (verified from {previous.checkpoint.position})" if previous else ""
            print(f"{app.name}: {cp.count} events up to {cp.position}{since} -> {path}")
    return status


@contextmanager
def _output(target: str) -> Iterator[TextIO]:
    if target == "-":
        yield sys.stdout
        return
    with open(target, "w", encoding="utf-8", newline="\n") as out:
        yield out


def _export(args: argparse.Namespace) -> int:
    if (args.order is None) == (args.app is None):
        raise CommandError("give either --app (a range of one log) or --order")
    if args.order is not None and (args.since or args.until):
        raise CommandError("--since and --until go with --app")
    with _deployment(args) as ot, _output(args.out) as out:
        if args.order is not None:
            summary = export_order(ot, args.order, out)
            what = f"order {args.order}"
        else:
            (app,) = _applications(ot, [args.app])
            summary = export_range(app, out, since=args.since, until=args.until)
            what = app.name
    span = (
        f", positions {summary.first_position}..{summary.last_position}"
        if summary.first_position is not None
        else ""
    )
    print(f"exported {summary.events} events of {what}{span}", file=sys.stderr)
    return OK


def _verify_export(args: argparse.Namespace) -> int:
    if (args.checkpoint is None) != (args.public_key is None):
        raise CommandError("--checkpoint and --public-key go together")
    verdict = verify_export_file(
        args.export,
        subset=args.subset,
        checkpoint_path=args.checkpoint,
        public_key_path=args.public_key,
    )
    print(verdict.message if verdict.ok else f"FAILED {verdict.message}")
    return OK if verdict.ok else BROKEN


def _seal(args: argparse.Namespace) -> int:
    with _deployment(args, create=True) as ot:  # (the chain tables, if they are missing)
        for app in _applications(ot, args.app):
            recorder = chained(app.recorder)
            if recorder.select_chain(0, recorder.log_stop(), 1):
                print(f"{app.name}: already chained")
                continue
            print(f"{app.name}: sealed {recorder.seal_existing()} events")
    return OK


def _guarded(command: Command) -> Command:
    """``command``, turning what stops it from running into exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (CommandError, OSError, ValueError, TypeError, PersistenceError) as error:
            print(f"ordertrail audit {args.audit_command}: {error}", file=sys.stderr)
            if isinstance(error, PersistenceError) and "_chain" in str(error):
                print(
                    "(a store written before the chain existed: `ordertrail audit seal` "
                    "chains what it holds)",
                    file=sys.stderr,
                )
            return UNUSABLE

    return run
