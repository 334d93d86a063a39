"""The examples of the user guide (docs/*.rst) run and print what the page says.

Each page is one doctest session: later examples use the names of earlier ones. The
examples fit tiny networks (embed_dim 8, 3 epochs), so the whole page takes seconds.
"""

from __future__ import annotations

import doctest
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages with examples; every .rst page holding a ``>>>`` prompt must be listed here.
PAGES = ["user_guide.rst", "plotting.rst", "tuning.rst", "explanations.rst"]


def test_every_page_with_examples_is_tested():
    with_examples = sorted(p.name for p in DOCS.glob("*.rst") if ">>> " in p.read_text())
    assert with_examples == sorted(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page):
    # the file examples need the optional readers (part of the "test" extra)
    pytest.importorskip("pydicom")
    pytest.importorskip("nibabel")
    # conftest.py runs torch on one thread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = doctest.testfile(
            str(DOCS / page),
            module_relative=False,
            optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
            raise_on_error=False,
            report=True,
            verbose=False,
        )
    assert result.attempted > 0, f"{page} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {page} failed"
