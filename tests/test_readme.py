"""The README's two commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = _code_blocks((ROOT / "README.md").read_text())
    demo_command, test_command = blocks[0], blocks[1]
    assert "pip install" in demo_command and "mmr-pipeline" in demo_command
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()
