"""The documentation site builds with warnings as errors, and its pages hold together.

One Sphinx build of a copy of ``docs/`` and ``examples/`` (so that the working tree is
left as it is) with ``-W --keep-going``: sphinx-gallery executes every example, myst-parser
reads the Markdown benchmark pages. The tests then read the built HTML: every example
has its page, every image a page shows exists, no link leads to a raw ``.md`` file or
loads anything from the network, and the API page documents every public name.

The build takes one to two minutes on two CPU cores (the examples run in it). It needs
the ``docs`` extra (sphinx-gallery, myst-parser) and the examples' data (scikit-survival,
pydicom), which the lowest-versions environment of CI lacks: it is skipped there.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

for _module in ("sphinx", "sphinx_gallery", "myst_parser", "numpydoc"):
    pytest.importorskip(_module)
# what the examples use (found, not imported: scikit-survival takes seconds to import)
_LACKING = [m for m in ("matplotlib", "sksurv", "pydicom", "optuna")
            if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(_LACKING), reason=f"the examples need {_LACKING}")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))
#: Sphinx-gallery writes these into the source folder; they are not sources of ours.
_GENERATED = ("_build", "auto_examples", "sg_execution_times.rst")
_TAGS = re.compile(r"<(img|script|link|a)\b([^>]*)>", flags=re.I)
_ATTRIBUTE = re.compile(r'\b(src|href)\s*=\s*"([^"]*)"', flags=re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the site once for this module; return the folder of the HTML pages."""
    work = tmp_path_factory.mktemp("docs_site")
    shutil.copytree(ROOT / "docs", work / "docs", ignore=shutil.ignore_patterns(*_GENERATED))
    shutil.copytree(ROOT / "examples", work / "examples")
    # conf.py puts the folder above docs/ first on sys.path: the package of this tree
    (work / "mmfusion_sklearn").symlink_to(ROOT / "mmfusion_sklearn", target_is_directory=True)
    out = work / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         "docs", str(out)],
        cwd=work, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (
        f"sphinx-build failed ({result.returncode}):\n{result.stderr[-6000:]}"
    )
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _references(page: Path) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every src/href of img, script, link and a tags."""
    found = []
    for tag, attributes in _TAGS.findall(page.read_text(encoding="utf-8")):
        for attribute, value in _ATTRIBUTE.findall(attributes):
            found.append((tag.lower(), attribute.lower(), html.unescape(value)))
    return found


def test_every_example_has_an_executed_page(site):
    assert EXAMPLES, "examples/ holds no example"
    for example in EXAMPLES:
        relative = example.relative_to(ROOT / "examples").with_suffix(".html")
        page = site / "auto_examples" / relative
        assert page.is_file(), f"{example.name} produced no page"
        text = page.read_text(encoding="utf-8")
        # sphinx-gallery writes the running time of examples it executed
        assert "Total running time of the script" in text, f"{example.name} did not run"
        assert "broken_example.png" not in text, f"{example.name} failed"
    index = (site / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for example in EXAMPLES:
        assert example.stem in index, f"{example.name} is missing from the gallery index"


def test_every_image_exists(site):
    missing, count = [], 0
    for page in _pages(site):
        for tag, _, value in _references(page):
            if tag != "img" or value.startswith("data:"):
                continue
            count += 1
            target = (page.parent / unquote(urlsplit(value).path)).resolve()
            if urlsplit(value).scheme or not target.is_file():
                missing.append(f"{page.relative_to(site)}: {value}")
    assert count > 20, f"only {count} images in the whole site"
    assert not missing, "images that do not exist:\n" + "\n".join(missing)


def test_benchmark_pages_are_pages_with_their_figures(site):
    for name in ("benchmarks", "benchmarks_speed", "benchmarks_imaging", "reliability"):
        assert (site / f"{name}.html").is_file(), f"{name}.md was not built into a page"
    for name in ("benchmarks", "benchmarks_speed"):
        source = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
        figures = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", source)
        images = [v for t, a, v in _references(site / f"{name}.html") if t == "img"]
        assert len(images) >= len(figures) > 0, f"{name}: {figures} vs {images}"
        # and the tables are tables, not Markdown text
        assert "<table" in (site / f"{name}.html").read_text(encoding="utf-8")


def test_no_link_to_markdown_and_nothing_loaded_from_the_network(site):
    to_markdown, remote = [], []
    for page in _pages(site):
        for tag, attribute, value in _references(page):
            parts = urlsplit(value)
            if tag == "a" and not parts.scheme and parts.path.endswith(".md"):
                to_markdown.append(f"{page.relative_to(site)}: {value}")
            if tag in ("img", "script", "link") and (parts.scheme or value.startswith("//")):
                remote.append(f"{page.relative_to(site)}: <{tag} {attribute}={value}>")
    assert not to_markdown, "links to raw Markdown files:\n" + "\n".join(to_markdown)
    assert not remote, "resources loaded from the network:\n" + "\n".join(remote)


def _public_names() -> list[str]:
    import mmfusion_sklearn
    from mmfusion_sklearn import io, metrics

    names = [f"mmfusion_sklearn.{n}" for n in mmfusion_sklearn.__all__ if n != "__version__"]
    modules = [io, metrics]
    for optional in ("plotting", "tuning"):
        try:
            modules.append(__import__(f"mmfusion_sklearn.{optional}", fromlist=["_"]))
        except ImportError:  # a module not written yet has no page section either
            continue
    for module in modules:
        names += [f"{module.__name__}.{n}" for n in module.__all__]
    return names


def test_api_page_documents_every_public_name(site):
    text = (site / "api.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'\bid="([^"]+)"', text))
    undocumented = [name for name in _public_names() if name not in anchors]
    assert not undocumented, f"api.rst does not document {undocumented}"
    # numpydoc turned the sections into field lists: no raw "Parameters / ----------"
    assert "----------" not in re.sub(r"<[^>]+>", "", text)
    assert text.count('class="field-list') >= 10


def test_gallery_time_report_is_a_page(site):
    report = site / "sg_execution_times.html"
    assert report.is_file()
    text = report.read_text(encoding="utf-8")
    for example in EXAMPLES:
        assert example.name in text, f"{example.name} is missing from the time report"
