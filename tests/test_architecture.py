"""The layers point inward, and the domain runs on the standard library and eventsourcing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    """adapters -> application | projections -> domain; see [tool.importlinter]."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_the_domain_imports_nothing_but_the_standard_library_and_eventsourcing() -> None:
    """Every installed third-party package except eventsourcing (and its typing_extensions)
    stays unloaded after ``import ordertrail.domain``, in a fresh interpreter."""
    probe = (
        "import sys, importlib.metadata as md\n"
        "before = set(sys.modules)\n"
        "import ordertrail.domain\n"
        "allowed = {'eventsourcing', 'typing_extensions', 'ordertrail'}\n"
        "third_party = set(md.packages_distributions()) - set(sys.stdlib_module_names)\n"
        "loaded = {name.split('.')[0] for name in set(sys.modules) - before}\n"
        "print(sorted((loaded & third_party) - allowed))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
