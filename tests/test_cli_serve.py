"""The README's run command: ``ordertrail serve --demo`` serves the API over real HTTP on
a fresh embedded store holding the demo history, with a working token per role."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_serve_demo_answers_over_http_with_the_demo_history(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ordertrail",
            "serve",
            "--demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "serve"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ORDERTRAIL_DATABASE_URL": ""},
    )
    lines: list[str] = []
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Uvicorn running on" in line:
                break
        output = "".join(lines)
        assert "Uvicorn running on" in output, output
        tokens = dict(re.findall(r"^\s+(customer|staff|auditor)\s+\S+\s+(\S+)$", output, re.M))
        assert set(tokens) == {"customer", "staff", "auditor"}, output
        base = f"http://127.0.0.1:{port}"

        status, health = _get(f"{base}/health")
        assert status == 200
        assert health["stores"]["Orders"] > 0

        status, _ = _get(f"{base}/customers/me/orders")
        assert status == 401
        mine: dict[str, Any] = {"items": []}
        for _ in range(50):  # the read models catch up in the background
            status, mine = _get(f"{base}/customers/me/orders", tokens["customer"])
            assert status == 200
            if len(mine["items"]) >= 4:
                break
            time.sleep(0.2)
        statuses = {item["status"] for item in mine["items"]}
        assert {"ready_to_ship", "cancelled", "awaiting_payment"} <= statuses, mine

        status, found = _get(f"{base}/articles/search?q=tin", tokens["staff"])
        assert status == 200
        for _ in range(50):
            if found["hits"]:
                break
            time.sleep(0.2)
            status, found = _get(f"{base}/articles/search?q=tin", tokens["staff"])
        assert [hit["title"] for hit in found["hits"]] == ["Dented or cracked tea tins"]

        status, schema = _get(f"{base}/schema/openapi.json")
        assert status == 200
        assert schema["openapi"].startswith("3.1")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
