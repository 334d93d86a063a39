"""The README's code runs, and its test command is the one CI runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_examples_run():
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "the README has no python example"
    namespace: dict = {}
    for block in blocks:  # later blocks use names from earlier ones
        exec(compile(block, "README.md", "exec"), namespace)
    assert set(namespace["report"]["modalities"]) == {"clinical+image", "clinical", "image"}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    test_command = [c.strip() for c in commands if "pytest" in c]
    assert len(test_command) == 1
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command[0] in ci_lines


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode,
    reason="ruff is not installed",
)
def test_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "mmfusion_sklearn", "tests", "benchmarks"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_named_in_the_reliability_table_exists():
    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(test_\w+)\.py::(test_\w+)`", text)
    assert len(named) > 30
    for module, name in named:
        source = (root / "tests" / f"{module}.py").read_text()
        assert f"def {name}(" in source, f"{module}.py::{name}"
