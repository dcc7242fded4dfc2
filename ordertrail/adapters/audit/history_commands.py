"""``ordertrail audit history | as-of | aggregate | replay-verify``: the auditor's history,
point-in-time and replay-verification commands.

``add_history_commands(audit_subparsers)`` adds them to the ``audit`` command group; each
sets ``run`` to a function of the parsed arguments that returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO
from uuid import UUID

from ordertrail.adapters.audit.history import format_history, order_history
from ordertrail.adapters.audit.pointintime import aggregate_as_of, order_as_of
from ordertrail.adapters.audit.replay import format_report, verify_replay
from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.read_models import READ_MODELS, read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain.errors import DomainError
from ordertrail.projections.store import ReadStore

Command = Callable[[argparse.Namespace], int]


def add_history_commands(audit: Any) -> None:
    """Add the history commands to ``audit`` (an ``argparse`` subparsers action)."""
    history = audit.add_parser(
        "history", help="every event of an order, in every context, in order"
    )
    history.add_argument("order_id", type=UUID, metavar="ORDER_ID")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _store_option(history)
    history.set_defaults(run=run_history)

    as_of = audit.add_parser(
        "as-of", help="an order with its parcels, cases, carts and reservations at a moment"
    )
    as_of.add_argument("order_id", type=UUID, metavar="ORDER_ID")
    as_of.add_argument(
        "timestamp", type=moment, metavar="TIMESTAMP", help="RFC 3339, e.g. 2026-11-11T08:00:00Z"
    )
    _store_option(as_of)
    as_of.set_defaults(run=run_as_of)

    aggregate = audit.add_parser(
        "aggregate", help="any aggregate at a version, or as of a moment (default: now)"
    )
    aggregate.add_argument("application", metavar="APPLICATION", help="orders, inventory, ...")
    aggregate.add_argument("aggregate_id", type=UUID, metavar="AGGREGATE_ID")
    when = aggregate.add_mutually_exclusive_group()
    when.add_argument("--version", type=int, help="fold the first N events")
    when.add_argument("--as-of", type=moment, dest="as_of", help="RFC 3339 moment")
    _store_option(aggregate)
    aggregate.set_defaults(run=run_aggregate)

    replay = audit.add_parser(
        "replay-verify",
        help="replay every event into scratch read models and compare with the live ones",
    )
    replay.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"read models to check (default: all of {', '.join(READ_MODELS)})",
    )
    replay.add_argument(
        "--no-aggregates",
        dest="aggregates",
        action="store_false",
        help="skip folding every aggregate from its events",
    )
    replay.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="give lagging read models this long to catch up first",
    )
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    _store_option(replay)
    replay.set_defaults(run=run_replay_verify)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default="", help="the store (default: ORDERTRAIL_DATABASE_URL)"
    )


def moment(text: str) -> datetime:
    """An RFC 3339 date-time with its offset (``Z`` allowed)."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset (Z or +08:00)")
    return parsed


def settings_of(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "database_url", ""):
        settings = Settings(database_url=args.database_url, config=settings.config)
    return settings


@contextmanager
def opened(args: argparse.Namespace) -> Iterator[tuple[Ordertrail, ReadStore]]:
    settings = settings_of(args)
    with open_ordertrail(settings) as ot:
        store = read_store(settings)
        try:
            yield ot, store
        finally:
            store.close()


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out)


def _failed(error: DomainError) -> int:
    print(f"error: {error.code}: {error.message}", file=sys.stderr)
    return 2


def run_history(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with opened(args) as (ot, store):
        try:
            history = order_history(ot, store, args.order_id)
        except DomainError as error:
            return _failed(error)
    if args.json:
        _print_json(history.to_json(), out)
    else:
        print(format_history(history), file=out)
    return 0


def run_as_of(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with opened(args) as (ot, store):
        try:
            snapshot = order_as_of(ot, store, args.order_id, args.timestamp)
        except DomainError as error:
            return _failed(error)
    _print_json(snapshot.to_json(), out)
    return 0


def run_aggregate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with opened(args) as (ot, store):
        try:
            state = aggregate_as_of(
                ot,
                store,
                args.application,
                args.aggregate_id,
                version=args.version,
                as_of=args.as_of,
            )
        except DomainError as error:
            return _failed(error)
    _print_json(state.to_json(), out)
    return 0


def run_replay_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Exit status 0 when the replay matches, 1 when it found differences."""
    out = out or sys.stdout
    unknown = sorted(set(args.models) - set(READ_MODELS))
    if unknown:
        print(f"error: no read model {', '.join(unknown)}", file=sys.stderr)
        return 2
    with opened(args) as (ot, store):
        report = verify_replay(
            ot,
            store,
            names=args.models or None,
            aggregates=args.aggregates,
            wait_seconds=args.wait,
        )
    if args.json:
        _print_json(report.to_json(), out)
    else:
        print(format_report(report), file=out)
    return 0 if report.ok else 1
