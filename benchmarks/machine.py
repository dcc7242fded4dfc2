"""What machine a benchmark ran on (printed with every table)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess


def describe() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            kib = int(info.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    postgres = "PostgreSQL ?"
    with contextlib.suppress(OSError):
        postgres = subprocess.run(["postgres", "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip() or postgres
    return (f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()}; "
            f"{postgres}")
