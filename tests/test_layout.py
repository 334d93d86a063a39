"""The package's layers import downwards only (DESIGN.md section 3).

Parsed from the source with ``ast``, so that a new upward import fails here before it
becomes a circle or drags scikit-learn into the torch core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmfusion_sklearn"

#: Each layer and the package layers it may import (besides itself).
ALLOWED = {
    "_data": set(),
    "_torch": set(),
    "_preprocessing": {"_data"},
    "_training": {"_data", "_torch", "_preprocessing"},
    "_persistence": {"_data", "_torch", "_preprocessing", "_training"},
    "io": {"_data", "_preprocessing"},
    "_compose": {"_data", "_preprocessing"},
    "_estimators": {"_data", "_torch", "_preprocessing", "_training", "_persistence"},
}
#: Third-party packages a layer must not import.
FORBIDDEN = {"_data": {"torch", "skorch"}, "_preprocessing": {"torch", "skorch"},
             "_torch": {"sklearn", "skorch", "pandas"}}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> list[tuple[str, int]]:
    """(first component inside the package, or the top-level third-party name, line)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = list(rel[:-1])[: len(rel) - node.level] if node.level > 1 else \
                    list(rel[:-1])
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from .. import x" at the root: the names are modules
                    target = [alias.name for alias in node.names][:1]
                found.append(("pkg:" + target[0], node.lineno))
            elif node.module:
                found.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_down_the_layers(path):
    layer = _layer(path)
    for name, line in _imports(path):
        if name.startswith("pkg:"):
            target = name[4:]
            assert target in (layer, "_version") or target in ALLOWED[layer], (
                f"{path.relative_to(PACKAGE)}:{line} imports {target} from layer {layer}"
            )
        else:
            assert name not in FORBIDDEN.get(layer, set()), (
                f"{path.relative_to(PACKAGE)}:{line} imports {name} in layer {layer}"
            )


def test_every_task_is_a_short_module():
    for name in ("classifier", "regressor"):
        lines = (PACKAGE / "_estimators" / f"{name}.py").read_text().count("\n")
        assert lines < 300, f"_estimators/{name}.py has {lines} lines"


def test_long_modules_say_why_at_their_top():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 500:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            assert "because" in docstring or "about 500 lines" in docstring, (
                f"{path.relative_to(PACKAGE)} has {text.count(chr(10))} lines and no reason "
                "at its top"
            )
