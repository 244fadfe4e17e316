"""The tutorial notebooks are committed clean: no outputs, the `python3` kernel, valid code.

Running them is nbmake's job (`pytest --nbmake notebooks/`); these checks are fast and need no
model, so a notebook saved with its outputs or with a syntax error fails even in quick runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = [
    "01_langchain_quickstart.ipynb",
    "02_llamaindex.ipynb",
    "03_how_it_works.ipynb",
    "04_custom_task.ipynb",
    "05_benchmark.ipynb",
    "06_structured_output_and_tools.ipynb",
]


def test_the_tutorials_are_all_there() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_committed_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not cell.outputs, f"{name}: cell {i} has outputs; clear them before committing"
        assert cell.execution_count is None, f"{name}: cell {i} has an execution count"
        # Notebooks may `await` at the top level (IPython runs an event loop).
        compile(cell.source, f"{name}[{i}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
