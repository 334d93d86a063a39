"""Sphinx configuration of the mmfusion_sklearn documentation.

Build with ``python -m sphinx -b html -W --keep-going docs docs/_build/html``
(``tests/test_docs_site.py`` does so into a temporary folder). The examples gallery
(``examples/``) is executed during the build by sphinx-gallery and written to
``docs/auto_examples``; the benchmark and reliability pages are Markdown, read by
myst-parser, so that they are real pages whose images are copied. Nothing here reaches
the network: no intersphinx inventories, no remote images, themes or fonts.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document the working tree, installed or not

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # the examples' figures are rendered without a display

import torch  # noqa: E402
from sphinx_gallery.sorting import ExplicitOrder  # noqa: E402

import mmfusion_sklearn  # noqa: E402

project = "mmfusion_sklearn"
author = "mmfusion_sklearn developers"
copyright = "mmfusion_sklearn developers"
version = release = mmfusion_sklearn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
# Straight quotes: parameter defaults read default="mlp", as in the code (and the
# long benchmark pages build seconds faster).
smartquotes = False

# autodoc: numpydoc documents the types, so keep signatures free of type hints and
# keep the order of the source.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
# the sidebar lists "fit()", not "MultimodalFusionClassifier.fit()"
toc_object_entries_show_parents = "hide"

# numpydoc: members are listed by autodoc's ``:members:``, not by autosummary tables
# (which would need generated stub pages).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()  # tests/test_docstrings.py checks them

# myst-parser: the Markdown pages (benchmarks*.md, reliability.md) are written for
# GitHub as well, so CommonMark plus tables, no MyST extensions.
myst_enable_extensions: list[str] = []

# The examples run in this process. The networks are tiny, and on a machine whose cores
# are shared a second intra-op thread makes a fit several times slower, not faster
# (tests/conftest.py does the same for the suite).
torch.set_num_threads(1)

# sphinx-gallery: every example is executed at each build (nothing is downloaded; an
# example that fails fails the build), with matplotlib's Agg backend. The time each
# one took is on its page, and all of them on the page sg_execution_times, which
# sphinx-gallery writes next to this file (git ignores it).
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, not only plot_*.py
    "subsection_order": ExplicitOrder(
        [
            "../examples/data",
            "../examples/files",
            "../examples/encoders",
            "../examples/model_selection",
            "../examples/inspection",
            "*",  # subsections added later go here, before the benchmarks
            "../examples/benchmark_results",
        ]
    ),
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "write_computation_times": True,
    "show_signature": False,
    "doc_module": ("mmfusion_sklearn",),
}

html_theme = "alabaster"
html_theme_options = {
    "description": "Multimodal fusion with missing modalities, for scikit-learn",
    "page_width": "1180px",
    "sidebar_width": "230px",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_title = f"mmfusion_sklearn {release}"
html_show_sourcelink = False
html_copy_source = False


# sphinx-gallery's computation-time pages (sg_execution_times.rst) load jQuery,
# DataTables and Bootstrap from CDNs to make their table sortable. Strip that block,
# and the memory column (not measured here), so the pages stay offline and plain.
_REMOTE_BLOCK = re.compile(r"\n  \.\. raw:: html\n.*?\n(?=  \.\. list-table::)", flags=re.S)
_MEMORY_CELL = re.compile(r"^     - (Mem \(MB\)|\d+\.\d+|N/A)\n", flags=re.M)


def _offline_time_reports(app) -> None:
    for page in Path(app.srcdir).rglob("sg_execution_times.rst"):
        text = page.read_text(encoding="utf-8")
        stripped = _MEMORY_CELL.sub("", _REMOTE_BLOCK.sub("\n", text))
        if stripped != text:
            page.write_text(stripped, encoding="utf-8")


def setup(app) -> None:
    # after sphinx-gallery has executed the examples and written the pages (500)
    app.connect("builder-inited", _offline_time_reports, priority=600)
