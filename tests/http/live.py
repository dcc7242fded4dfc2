"""The real app served by uvicorn in a thread, on a real port: for tests that need true
concurrency or a served schema (the in-process TestClient serialises requests)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from ordertrail.adapters.demo import seed_catalog
from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.http.auth import Role, issue_token
from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.http.runtime import Runtime, new_auth
from ordertrail.adapters.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveService:
    def __init__(self, store: Settings, **changes: Any) -> None:
        self.settings = ApiSettings(
            **{"store": store, "dev_tokens": True, "orders_per_minute": 100_000, **changes}
        )
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = create_app(self.settings)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        auth = new_auth(self.settings)
        self.tokens = {role: issue_token(auth, role, "li-lei") for role in Role}

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        seed_catalog(self.runtime.ot)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.server.config.loaded_app.app.state.runtime
        return runtime

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def headers_for(self, path: str, method: str) -> dict[str, str]:
        """Customers place and pay for orders and fill carts; auditors read; staff do the
        rest. A token of the wrong role would only ever test the 403 path."""
        customer = path.startswith(("/carts", "/customers/me")) or (
            method == "POST" and (path == "/orders" or "/cases" in path or "/checkout" in path)
        )
        role = Role.CUSTOMER if customer else Role.STAFF
        if path.startswith("/audit"):
            role = Role.AUDITOR
        return {"Authorization": f"Bearer {self.tokens[role]}"}
