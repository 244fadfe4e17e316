"""The rendered tutorials under docs/tutorials/ show the notebooks as they are: a page's cells,
outputs left out, equal the notebook's (outputs, with their timings, may differ between runs).

Rendering executes the notebooks (`python -m stepcache_bench.render_tutorials`); this check only
reads files, so a notebook edited without rendering its page again fails even in quick runs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from stepcache_bench.render_tutorials import (
    NOTEBOOKS,
    OUTPUT_MARK,
    PAGES,
    page_path,
    render,
    without_outputs,
)

#: Notebooks without a rendered page, and why.
NOT_RENDERED = {
    "05_benchmark.ipynb": "it runs the quick benchmark (minutes); docs/benchmark.md has the "
    "committed results",
}
RENDERED = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in NOT_RENDERED)


def test_every_page_has_its_notebook() -> None:
    pages = sorted(p.name for p in PAGES.glob("*.md"))
    assert pages == [f"{Path(name).stem}.md" for name in RENDERED]


@pytest.mark.parametrize("name", RENDERED)
def test_rendered_page_matches_its_notebook(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    page = page_path(NOTEBOOKS / name).read_text(encoding="utf-8")
    assert without_outputs(page) == render(notebook, name), (
        f"docs/tutorials/ is out of date for {name}: "
        f"run `python -m stepcache_bench.render_tutorials {name}`"
    )
    assert OUTPUT_MARK in page, f"the page of {name} shows no output: render it executed"


def test_outputs_are_left_out_of_the_comparison_only() -> None:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell("print(1)"),  # type: ignore[no-untyped-call]
    ]
    clean = render(nb, "x.ipynb")
    out = nbformat.v4.new_output("stream", name="stdout", text="1\n")  # type: ignore[no-untyped-call]
    nb.cells[1].outputs = [out]
    executed = render(nb, "x.ipynb")
    assert executed != clean and without_outputs(executed) == clean
    nb.cells[1].source = "print(2)"
    assert without_outputs(executed) != render(nb, "x.ipynb")
