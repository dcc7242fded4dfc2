"""The real Litestar app, on the test's store (SQLite or PostgreSQL), through its client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient

from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.http.auth import Role, issue_token
from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.http.routes.common import runtime_of
from ordertrail.adapters.http.runtime import Runtime
from ordertrail.adapters.settings import Settings
from tests.support.clock import FakeClock


@dataclass
class Api:
    client: TestClient[Any]

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.client.app.state)

    def token(self, role: Role, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.runtime.auth, role, subject)}"}

    def customer(self, subject: str = "li-lei") -> dict[str, str]:
        return self.token(Role.CUSTOMER, subject)

    def staff(self, subject: str = "mei") -> dict[str, str]:
        return self.token(Role.STAFF, subject)

    def auditor(self, subject: str = "audit-1") -> dict[str, str]:
        return self.token(Role.AUDITOR, subject)

    def settle(self) -> None:
        """Run the process managers and read models until idle (instead of waiting)."""
        self.runtime.ot.run_processes()
        self.runtime.read.run_until_idle()


def api_settings(store: Settings, **changes: Any) -> ApiSettings:
    """Development tokens on; background workers off unless asked for (tests settle)."""
    return ApiSettings(**{"store": store, "dev_tokens": True, "run_workers": False, **changes})


@pytest.fixture
def api(store_settings: Settings, clock: FakeClock) -> Iterator[Api]:
    app = create_app(api_settings(store_settings), clock=clock)
    with TestClient(app=app, raise_server_exceptions=False) as client:
        yield Api(client)
