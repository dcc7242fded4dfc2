#!/usr/bin/env python3
"""Developer tasks that need nothing but Python >= 3.11 (and, for the tests, the
PostgreSQL server binaries): the first run creates ./.venv and installs the project.

    python3 dev.py run      # the HTTP service on the embedded store, with demo data
    python3 dev.py test     # lint, type checks and the whole test suite
    python3 dev.py setup    # only (re)create the virtual environment
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".ordertrail-installed"


def _digest() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def setup() -> None:
    """Create the virtual environment and install the project, once per pyproject."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit("ordertrail needs Python 3.11 or newer")
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _digest():
        return
    print("installing ordertrail and its development tools into .venv ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "-e", ".[dev]"], check=True, cwd=ROOT
    )
    STAMP.write_text(_digest())


def run(args: list[str]) -> int:
    return subprocess.call([str(PYTHON), "-m", "ordertrail", "serve", "--demo", *args], cwd=ROOT)


def test(args: list[str]) -> int:
    bin_dir = VENV / "bin"
    steps = [
        [str(bin_dir / "ruff"), "check", "ordertrail", "tests", "benchmarks", "dev.py"],
        # The benchmarks keep long table rows and one long main (see their headers).
        [str(bin_dir / "ruff"), "format", "--check", "ordertrail", "tests", "dev.py"],
        [str(bin_dir / "mypy"), "--strict", "ordertrail/domain", "ordertrail/application"],
        [str(PYTHON), "-m", "pytest", *(args or ["-q", "-n", "2"])],
    ]
    env = {**os.environ, "HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci")}
    for step in steps:
        print(
            "$",
            " ".join(Path(step[0]).name if i == 0 else part for i, part in enumerate(step)),
            flush=True,
        )
        code = subprocess.call(step, cwd=ROOT, env=env)
        if code:
            return code
    return 0


def main() -> int:
    task, *rest = sys.argv[1:] or ["help"]
    if task not in ("run", "test", "setup"):
        print(__doc__)
        return 0 if task == "help" else 2
    setup()
    if task == "run":
        return run(rest)
    if task == "test":
        return test(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
