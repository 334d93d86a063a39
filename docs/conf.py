"""Sphinx configuration of the mmfusion_sklearn documentation.

Build with ``python -m sphinx -b html -W --keep-going docs docs/_build/html``. Nothing
here reaches the network: no intersphinx inventories, no remote images or themes.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document the working tree, installed or not

import mmfusion_sklearn  # noqa: E402

project = "mmfusion_sklearn"
author = "mmfusion_sklearn developers"
copyright = "mmfusion_sklearn developers"
version = release = mmfusion_sklearn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
]

# Only .rst sources; benchmarks.md (written alongside the benchmarks) is copied as is.
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "benchmarks.md", "benchmarks_speed.md"]
templates_path: list[str] = []

# autodoc: numpydoc documents the types, so keep signatures free of type hints and
# keep the order of the source.
autodoc_typehints = "none"
autodoc_member_order = "bysource"

# numpydoc: members are listed by autodoc's ``:members:``, not by autosummary tables
# (which would need generated stub pages).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()  # tests/test_docstrings.py checks them

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"mmfusion_sklearn {release}"
# Ship the benchmark report next to the pages when it exists, so that its link works.
html_extra_path = [
    name for name in ("benchmarks.md", "benchmarks_speed.md") if (HERE / name).is_file()
]
