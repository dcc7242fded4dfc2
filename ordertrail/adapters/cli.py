"""The ``ordertrail`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ordertrail.adapters.audit.commands import add_audit_commands
from ordertrail.adapters.bootstrap import open_ordertrail, setup_lock
from ordertrail.adapters.demo import SimulatedClock, fresh_demo_dir, run_scenario
from ordertrail.adapters.read_models import READ_MODELS, ReadSide, format_status, read_store
from ordertrail.adapters.serve import add_serve_command
from ordertrail.adapters.settings import Settings
from ordertrail.application.followers import FollowerThreads, format_followers


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "database_url", ""):
        settings = Settings(database_url=args.database_url, config=settings.config)
    return settings


def _demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.database_url:
        settings = Settings(database_url=args.database_url, config=settings.config)
    else:
        data_dir = fresh_demo_dir(Path(args.data_dir))
        settings = Settings(database_url=f"sqlite://{data_dir}", config=settings.config)
    clock = SimulatedClock()
    with open_ordertrail(settings, clock=clock) as ot:
        print(f"ordertrail demo on {settings.backend} ({settings.database_url})")
        run_scenario(ot, clock, print)
    return 0


def _projections(args: argparse.Namespace) -> int:
    settings = _settings(args)
    names = args.names or None
    with open_ordertrail(settings) as ot:
        with setup_lock(settings):
            side = ReadSide.open(ot, read_store(settings), names)
        try:
            if args.action == "status":
                print(format_status(side.status()))
            elif args.action == "rebuild":
                for name, worker in side.workers.items():
                    count = worker.rebuild()
                    print(f"{name}: rebuilt from {count} events")
            else:
                _run_until_stopped(side.start, side.workers)
        finally:
            side.close()
    return 0


def _processes(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with open_ordertrail(settings) as ot:
        if args.action == "status":
            print(format_followers(ot.followers))
            return 0
        runner = FollowerThreads(ot.followers, interval=args.interval)
        try:
            _run_until_stopped(runner.start, [follower.name for follower in ot.followers])
        finally:
            runner.stop()
    return 0


def _run_until_stopped(start: Callable[[], None], names: Iterable[str]) -> None:
    """Start background work and wait until SIGTERM or Ctrl-C (the caller then stops it)."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    start()
    print(f"running {', '.join(names)}; Ctrl-C to stop", flush=True)
    try:
        while not stopping.wait(5):
            pass
    except KeyboardInterrupt:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ordertrail", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run a demo scenario on a fresh embedded store and print what happened"
    )
    demo.add_argument(
        "--data-dir",
        default="var/demo",
        help="directory of the SQLite demo store (recreated on each run)",
    )
    demo.add_argument(
        "--database-url", default="", help="use this store instead (e.g. postgresql://...)"
    )
    demo.set_defaults(run=_demo)

    projections = commands.add_parser(
        "projections", help="run, rebuild or inspect the read models' workers"
    )
    projections.add_argument("action", choices=("run", "rebuild", "status"))
    projections.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"read models (default: all of {', '.join(READ_MODELS)})",
    )
    projections.add_argument(
        "--database-url", default="", help="the store (default: ORDERTRAIL_DATABASE_URL)"
    )
    projections.set_defaults(run=_projections)

    processes = commands.add_parser(
        "processes",
        help="run the process managers (order expiry, stock release, fulfilment, "
        "after-sales) on their own, or show their positions",
    )
    processes.add_argument("action", choices=("run", "status"))
    processes.add_argument(
        "--interval", type=float, default=0.5, help="seconds between polls when idle"
    )
    processes.add_argument(
        "--database-url", default="", help="the store (default: ORDERTRAIL_DATABASE_URL)"
    )
    processes.set_defaults(run=_processes)
    add_audit_commands(commands)
    add_serve_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
