"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_runs(tmp_path: Path, capsys) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        code = block.replace("sqlite:///tmp/shop", f"sqlite://{tmp_path / 'shop'}")
        exec(compile(code, "README.md", "exec"), {})
    assert "awaiting_payment" in capsys.readouterr().out
