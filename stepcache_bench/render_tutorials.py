"""Render the tutorial notebooks, executed, as Markdown pages under docs/tutorials/.

The notebooks are committed without outputs (``tests/test_notebooks_clean.py``), so GitHub shows
their code but not what it prints. ``python -m stepcache_bench.render_tutorials [NAME ...]``
runs each notebook once (nbclient, the local model: a minute or two each) and writes
``docs/tutorials/<name>.md``: every cell's source, then its text outputs in a ````` ````text `````
block after an ``<!-- output -->`` line. ``tests/test_tutorials_rendered.py`` checks that a page's
cells, outputs left out, are the notebook's; outputs (timings) may differ from run to run.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PAGES = ROOT / "docs" / "tutorials"
OUTPUT_MARK = "<!-- output -->"
_OUTPUT = re.compile(rf"{re.escape(OUTPUT_MARK)}\n````text\n.*?\n````\n\n", re.DOTALL)


def page_path(notebook: Path) -> Path:
    return PAGES / f"{notebook.stem}.md"


def render(notebook: Any, name: str) -> str:
    """`notebook` (an nbformat node) as Markdown: sources, and the outputs it holds."""
    parts = [
        f"<!-- Rendered from notebooks/{name} by `python -m stepcache_bench.render_tutorials`: "
        "edit the notebook, then render it again. -->\n\n"
    ]
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source.rstrip() + "\n\n")
        elif cell.cell_type == "code":
            parts.append(f"```python\n{cell.source.rstrip()}\n```\n\n")
            text = "".join(_text(output) for output in cell.get("outputs", ())).rstrip()
            if text:
                parts.append(f"{OUTPUT_MARK}\n````text\n{text}\n````\n\n")
    return "".join(parts).rstrip() + "\n"


def without_outputs(page: str) -> str:
    """A rendered page with its output blocks removed."""
    return _OUTPUT.sub("", page + "\n").rstrip() + "\n"


def _text(output: Any) -> str:
    if output.output_type == "stream":
        return str(output.text)
    if output.output_type in ("execute_result", "display_data"):
        data = output.get("data", {})
        if "text/plain" in data and "image/png" not in data:
            return str(data["text/plain"]) + "\n"
        return "(a figure: run the notebook to see it)\n"
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}\n"
    return ""


def execute(path: Path, timeout: int) -> Any:
    """The notebook at `path`, run top to bottom in its own directory."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": path.parent}},
    )
    client.execute()
    return notebook


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names or stems (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        notebooks = [p for p in notebooks if p.name in args.names or p.stem in args.names]
    PAGES.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        page = page_path(path)
        page.write_text(render(execute(path, args.timeout), path.name), encoding="utf-8")
        print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
