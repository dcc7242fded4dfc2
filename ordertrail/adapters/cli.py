"""The ``ordertrail`` command line."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.demo import SimulatedClock, run_scenario
from ordertrail.adapters.settings import Settings


def _demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.database_url:
        settings = Settings(database_url=args.database_url, config=settings.config)
    else:
        data_dir = Path(args.data_dir)
        if data_dir.exists() and (data_dir / ".ordertrail-demo").exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / ".ordertrail-demo").touch()
        settings = Settings(database_url=f"sqlite://{data_dir.resolve()}", config=settings.config)
    clock = SimulatedClock()
    with open_ordertrail(settings, clock=clock) as ot:
        where = settings.database_url
        print(f"ordertrail demo on {settings.backend} ({where})")
        run_scenario(ot, clock, print)
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
