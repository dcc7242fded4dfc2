"""Runs the slow counting read model in a process of its own (killed by a test)."""

from __future__ import annotations

import sys

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.projections.runner import ProjectionWorker
from tests.projections.support import SlowEventCounter, opened


def main(url: str) -> None:
    settings = Settings(database_url=url)
    with open_ordertrail(settings, create_tables=False) as ot, opened(settings) as store:
        worker = ProjectionWorker(
            SlowEventCounter(), store, {"Inventory": ot.inventory}, batch_size=100
        )
        worker.run_until_idle()


if __name__ == "__main__":
    main(sys.argv[1])
