"""The two recipes of docs/ARCHITECTURE.md stay true: a view is declared once (app_pages/ui/params.py,
``VIEWS``) and everything else derives from it; a cell is one module of rnnviz/cells/ (collected by
its ``SPECS``) plus its textbook reference in tests/reference.py; each has its row in the docs."""

from __future__ import annotations

import inspect
import re

from app_pages.ui import params
from app_pages.ui.params import PARAMS, VIEWS
from rnnviz import cells

from . import reference
from .conftest import REPO

#: Files whose view lists derive from params.VIEWS (they may name a view, e.g. for its extra URL
#: parameters, but never list them).
DERIVED = ["app.py", "app_pages/ui/url.py", "tools/loadtest.py", "tests/test_stale_cache.py",
           "tests/test_heavy_models.py", "tests/test_url_fuzz.py", "tests/test_url_fuzz_browser.py",
           "tests/test_xss_browser.py", "tests/test_hostile_text.py", "tests/test_readonly_model.py"]
#: Of those, the wiring: none of these names more than one view.
WIRING = ["app.py", "app_pages/ui/url.py", "tools/loadtest.py", "tests/test_url_fuzz_browser.py"]


def _table_rows(md: str) -> list[str]:
    """The first cell of every Markdown table row, backticks and bold stripped."""
    return [m.group(1).strip().strip("`*").strip() for m in re.finditer(r"^\|([^|\n]+)\|", md, re.M)]


def test_every_page_file_is_a_registered_view_and_back():
    pages = {f"app_pages/{p.name}" for p in (REPO / "app_pages").glob("*.py") if p.name != "__init__.py"}
    assert pages == {v.page for v in VIEWS}
    for field in ("title", "page", "url_path"):
        values = [getattr(v, field) for v in VIEWS]
        assert len(set(values)) == len(values), f"two views share a {field}: {values}"
    assert [v.default for v in VIEWS].count(True) == 1
    prefixes = [v.prefix for v in VIEWS if v.prefix]
    assert len(set(prefixes)) == len(prefixes)
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and a.startswith(b)]


def test_a_view_reads_its_own_prefix_and_every_key_belongs_to_a_view():
    for v in VIEWS:
        src = (REPO / v.page).read_text(encoding="utf-8")
        if v.prefix:
            assert f'view_params("{v.prefix}")' in src, f"{v.page} does not call view_params({v.prefix!r})"
        else:
            assert "view_params(" not in src, f"{v.page} has no prefix in params.VIEWS"
    stray = [k for k in PARAMS if "." in k and not k.startswith(params.VIEW_PREFIXES)]
    assert not stray, f"URL keys of no registered view: {stray}"


def test_the_registry_is_the_only_place_views_are_listed():
    """The wiring derives from params.VIEWS: no file lists views by hand (by title, page file or URL
    path; naming one view, e.g. the Train view a session leaves, is not a list)."""
    for rel in WIRING:
        src = (REPO / rel).read_text(encoding="utf-8")
        named = [v.title for v in VIEWS
                 if any(f'"{lit}"' in src for lit in (v.page, v.title, v.url_path) if lit)]
        assert len(named) <= 1, f"{rel} lists views by hand: {named}"
    assert not re.search(r"st\.Page\(\s*[\"']", (REPO / "app.py").read_text(encoding="utf-8"))
    for rel in DERIVED:
        src = (REPO / rel).read_text(encoding="utf-8")
        assert re.search(r"\b(VIEWS|VIEW_PREFIXES|PAGE_OF_PREFIX)\b", src), f"{rel} does not read params.VIEWS"


def test_every_view_has_its_row_in_the_readme_tour():
    rows = _table_rows((REPO / "README.md").read_text(encoding="utf-8"))
    missing = [v.title for v in VIEWS if v.title not in rows]
    assert not missing, f"README.md's tour of the views has no row for {missing}"


def test_every_cell_module_is_collected_and_has_a_reference_and_a_docs_row():
    modules = {p.stem for p in (REPO / "rnnviz/cells").glob("*.py")
               if re.search(r"^SPECS\s*=", p.read_text(encoding="utf-8"), re.M)}
    assert modules == {inspect.getmodule(s.step).__name__.rsplit(".", 1)[-1] for s in cells.SPECS.values()}
    reference_src = inspect.getsource(reference.textbook_step)
    rows = _table_rows((REPO / "docs/BACKEND.md").read_text(encoding="utf-8"))
    for name in cells.CELLS:
        assert f'"{name}"' in reference_src, f"tests/reference.py has no textbook step for {name!r}"
        assert name in rows, f"docs/BACKEND.md's table of cells has no row for {name!r}"
