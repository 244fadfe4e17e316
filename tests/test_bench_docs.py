"""docs/benchmark.md, the results JSON under docs/results/ and README's headline agree: the page,
the plots and the headline are rendered from the JSON alone.

A small fake-backend run (hash embedder, one base per family) writes a results set, its page and a
README block; re-rendering from the JSON files alone must give the same text. The committed docs
are held to the same rule once their results JSON is committed (`make bench-full`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stepcache_bench import report
from stepcache_bench.run import main as bench

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("no_cache", "gptcache", "stepcache")
README = "# A project\n\n<!-- bench:headline -->\nold figures\n<!-- /bench:headline -->\n\nMore.\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fake-backend run of all three workloads into DIR (docs, README.md, memo.jsonl.gz)."""
    root = tmp_path_factory.mktemp("bench-docs")
    (root / "README.md").write_text(README)
    args = ["--backend", "fake", "--embedder", "hash", "--bases", "1", "--k", "1"]
    args += ["--seeds", "42", "--workload", "all", "--arms", *ARMS, "--no-progress"]
    args += ["--out", str(root / "out"), "--memo-file", str(root / "memo.jsonl.gz")]
    args += ["--docs", str(root / "docs"), "--readme", str(root / "README.md")]
    assert bench(args) == 0
    return root


def _images(page: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)


def test_the_run_writes_a_results_file_per_workload_and_all(run_dir: Path) -> None:
    files = report.read_results(run_dir / "docs" / "results")
    assert list(files) == ["all", "hard", "paper", "structured"]
    for name in ("hard", "paper", "structured"):
        assert files[name]["workload"] == name
        assert list(files[name]["arms"]) == list(ARMS)
        assert "p95_ratio" in files[name]["targets"]
    n = {name: files[name]["arms"]["stepcache"]["n"] for name in files}
    assert n["all"] == n["hard"] + n["paper"] + n["structured"] == files["all"]["requests"]["total"]
    # the p95 target is judged on paper only
    assert files["paper"]["targets"]["p95_ratio"]["pass"] is not None
    assert files["hard"]["targets"]["p95_ratio"]["pass"] is None
    assert set(files["all"]["comparison"]) == {"stepcache", "gptcache"}
    for name, data in files.items():
        for target, row in data["targets"].items():
            assert set(row) == {"measured", "target", "pass", "why"}
            assert bool(row["why"]) == (row["pass"] is False), (name, target, row)


def test_page_plots_and_headline_are_a_pure_function_of_the_results_json(
    run_dir: Path, tmp_path: Path
) -> None:
    docs = run_dir / "docs"
    page = (docs / "benchmark.md").read_text()
    files = report.read_results(docs / "results")
    assert page == report.page(files)
    readme = (run_dir / "README.md").read_text()
    assert report.readme_headline_block(readme) == report.headline_block(files)
    assert readme.startswith("# A project\n\n<!-- bench:headline -->\nOn the committed")
    assert readme.endswith("\n<!-- /bench:headline -->\n\nMore.\n")  # the rest untouched
    for image in _images(page):
        assert (docs / image).stat().st_size > 0, image
    assert len(_images(page)) == 4 * 4  # CDF, wrong served, paths, tokens: all and each workload

    # re-render from the JSON files alone, elsewhere: the same page and README text
    (tmp_path / "results").mkdir()
    for json_file in (docs / "results").glob("*.json"):
        (tmp_path / "results" / json_file.name).write_text(json_file.read_text())
    (tmp_path / "README.md").write_text(README)
    args = ["--from-json", str(tmp_path / "results"), "--docs", str(tmp_path / "docs")]
    code = report.main([*args, "--readme", str(tmp_path / "README.md")])
    assert code == 0
    assert (tmp_path / "docs" / "benchmark.md").read_text() == page
    assert (tmp_path / "README.md").read_text() == (run_dir / "README.md").read_text()


def test_every_figure_in_the_headline_and_targets_is_read_from_the_json(run_dir: Path) -> None:
    files = report.read_results(run_dir / "docs" / "results")
    sc = files["all"]["arms"]["stepcache"]
    text = report.headline(files)
    assert f"StepCache served {sc['wrong_served']} wrong answers" in text
    assert f"{files['all']['ratios']['stepcache']['tokens']:.2f}x the backend tokens" in text
    gpt = files["all"]["comparison"]["gptcache"]
    assert f"GPTCache (its default threshold) served {gpt['wrong_served']} wrong" in text
    # a changed figure in the JSON changes the page: nothing on it is typed by hand
    changed: dict[str, Any] = {**files, "paper": {**files["paper"]}}
    changed["paper"]["targets"] = {
        **files["paper"]["targets"],
        "tokens_ratio": {"measured": 0.123, "target": "<= 0.40", "pass": True, "why": ""},
    }
    assert "| tokens_ratio | 0.123 | <= 0.40 | yes |  |" in report.page(changed)
    assert "| tokens_ratio | 0.123 |" not in report.page(files)


def test_a_third_workload_gets_its_own_targets_tables_and_plots(
    run_dir: Path, tmp_path: Path
) -> None:
    files = report.read_results(run_dir / "docs" / "results")
    files["structured"] = {**files["paper"], "workload": "structured"}
    page = report.page(files)
    assert "## Targets: workload `structured`" in page
    made = report.plots(files, tmp_path)
    assert {p.name for p in made} >= {f"structured-{stem}.png" for stem, _ in report.PLOTS}
    assert {f"img/structured-{stem}.png" for stem, _ in report.PLOTS} <= set(_images(page))


def test_the_run_says_how_many_answers_came_from_the_memo(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["--backend", "fake", "--embedder", "hash", "--bases", "1", "--k", "1"]
    args += ["--seeds", "42", "--workload", "paper", "--arms", *ARMS, "--no-progress"]
    args += ["--out", str(tmp_path / "out"), "--memo-file", str(run_dir / "memo.jsonl.gz")]
    assert bench(args) == 0
    out = capsys.readouterr().out
    found = re.search(r"model answers: (\d+) from the memo file \S+, (\d+) computed", out)
    assert found, out[-2000:]
    assert int(found.group(1)) > 0 and int(found.group(2)) == 0  # every prompt was in the memo


def test_committed_docs_agree_with_the_committed_results_json() -> None:
    """docs/benchmark.md and README's headline are what docs/results/*.json renders. Until a run
    of `make bench-full` commits that JSON, the hand-written page must not claim to be generated
    and README keeps exactly one headline block for it to fill."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count(report.HEADLINE_BEGIN) == 1 and readme.count(report.HEADLINE_END) == 1
    page = (ROOT / "docs" / "benchmark.md").read_text()
    results = ROOT / "docs" / "results"
    if not (results / "all.json").exists():
        assert "Generated from docs/results" not in page
        return
    files = report.read_results(results)
    assert page == report.page(files)
    expected = report.readme_with_headline(readme, files)
    assert report.readme_headline_block(readme) == report.readme_headline_block(expected)
    for image in _images(page):
        assert (ROOT / "docs" / image).exists(), image
