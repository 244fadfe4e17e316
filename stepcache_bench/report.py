"""Terminal table (rich), PNG plots (matplotlib, Agg) and the markdown page of a benchmark run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stepcache_bench.harness import PATHS, Record
from stepcache_bench.metrics import percentile

ARM_LABELS = {
    "no_cache": "no cache",
    "exact": "exact-match cache",
    "langchain_exact": "LangChain InMemoryCache",
    "semantic": "semantic cache",
    "gptcache": "GPTCache 0.1.44 (default 0.8 = cos 0.6)",
    "gptcache_cos08": "GPTCache 0.1.44 (0.9 = cos 0.8)",
    "stepcache": "StepCache",
    "stepcache_no_fallback": "StepCache, no fallback",
}


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _ms(x: float) -> str:
    return f"{1000 * x:.1f} ms" if x < 1 else f"{x:.2f} s"


def arm_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per arm: the figures with their ratios to the no-cache arm."""
    rows = []
    for name, a in results["arms"].items():
        r = results["ratios"].get(name, {})
        lat = a["latency_s"]
        paths = " / ".join(str(a["paths"][p]) for p in PATHS)
        rows.append(
            [
                ARM_LABELS.get(name, name),
                f"{_ms(lat['mean'])} ({_ratio(r.get('mean'))})",
                f"{_ms(lat['median'])} ({_ratio(r.get('median'))})",
                f"{_ms(lat['p95'])} ({_ratio(r.get('p95'))})",
                f"{a['tokens']['total']:,} ({_ratio(r.get('tokens'))})",
                _pct(a["correct_task"]),
                _pct(a["correct_integrity"]),
                str(a["wrong_served"]),
                paths,
                _ms(a["overhead_s"]["mean"]),
                _ms(a["lookup_s"]["median"]) if "lookup_s" in a else "-",
            ]
        )
    return rows


ARM_HEADER = [
    "arm",
    "mean latency",
    "median",
    "p95",
    "backend tokens",
    "correct (task)",
    "correct (integrity)",
    "wrong served",
    "exact/reuse/patch/skip/miss",
    "cache overhead (mean)",
    "lookup (median)",
]


SHORT_LABELS = {
    "no_cache": "no cache",
    "exact": "exact",
    "langchain_exact": "LC InMemory",
    "semantic": "semantic",
    "gptcache": "GPTCache 0.8",
    "gptcache_cos08": "GPTCache 0.9",
    "stepcache": "StepCache",
    "stepcache_no_fallback": "SC no fallbk",
}


def print_table(results: dict[str, Any]) -> None:
    """Two narrow tables (they fit 80 columns): speed and cost, then quality and paths."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"StepCache benchmark: {results['requests']['total']} requests x "
        f"{len(results['arms'])} arms, seeds {results['seeds']}, {results['model']}"
    )
    speed = Table(title="Latency and backend tokens (ratio to no cache)")
    for i, h in enumerate(("arm", "mean", "median", "p95", "tokens", "overhead", "lookup p50")):
        speed.add_column(h, justify="left" if i == 0 else "right")
    quality = Table(title="Correctness and paths")
    for i, h in enumerate(("arm", "correct", "integrity", "wrong", *PATHS)):
        quality.add_column(h, justify="left" if i == 0 else "right")
    for name, a in results["arms"].items():
        r = results["ratios"].get(name, {})
        lat = a["latency_s"]
        label = SHORT_LABELS.get(name, name)
        speed.add_row(
            label,
            f"{_ms(lat['mean'])} {_ratio(r.get('mean'))}",
            f"{_ms(lat['median'])} {_ratio(r.get('median'))}",
            f"{_ms(lat['p95'])} {_ratio(r.get('p95'))}",
            f"{a['tokens']['total']:,} {_ratio(r.get('tokens'))}",
            _ms(a["overhead_s"]["mean"]),
            _ms(a["lookup_s"]["median"]),
        )
        quality.add_row(
            label,
            _pct(a["correct_task"]),
            _pct(a["correct_integrity"]),
            str(a["wrong_served"]),
            *(str(a["paths"][p]) for p in PATHS),
        )
    console.print(speed)
    console.print(quality)
    t = Table(title="Targets (StepCache, fallback on, vs no cache)")
    for h in ("target", "measured", "goal", "pass", "why"):
        t.add_column(h)
    for name, v in results.get("targets", {}).items():
        ok = v["pass"]
        mark = "-" if ok is None else ("[green]yes[/green]" if ok else "[red]NO[/red]")
        t.add_row(name, _fmt_measured(v["measured"]), str(v["target"]), mark, v.get("why", ""))
    console.print(t)


def _fmt_measured(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


#: Files of a results set: docs/results/<name>.json, one per workload and ALL for them together.
ALL = "all"
#: Marks of the generated headline block in README.md.
HEADLINE_BEGIN = "<!-- bench:headline -->"
HEADLINE_END = "<!-- /bench:headline -->"
#: Figures a workload's part of the results holds; the rest of the results is the run's context.
PART_KEYS = (
    "arms",
    "by_kind",
    "by_seed",
    "ratios",
    "latency_cdf_s",
    "paths_not_core",
    "mean_latency_floor",
    "mean_latency_ratio_not_core",
    "targets",
    "targets_v1",
    "comparison",
)
PLOTS = (
    ("latency-cdf", "Latency CDF"),
    ("wrong-served", "Wrong answers served"),
    ("paths", "Paths"),
    ("tokens", "Backend tokens"),
)


def results_files(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A run's results as the files of a results set: ALL (every workload together) and one per
    workload, each the run's context (command, machine, model, notes) with its own figures."""
    context = {k: v for k, v in results.items() if k not in PART_KEYS and k != "workloads"}
    files = {ALL: {**context, "workload": ALL, **{k: results[k] for k in PART_KEYS}}}
    for name, part in results.get("workloads", {}).items():
        files[name] = {**context, "workload": name, **part}
    return files


def write_results(files: dict[str, dict[str, Any]], directory: Path) -> list[Path]:
    """DIR/<name>.json for every file of a results set; stale ones of other names are removed."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.json"):
        if old.stem not in files:
            old.unlink()
    out = []
    for name, data in files.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        out.append(path)
    return out


def read_results(directory: Path) -> dict[str, dict[str, Any]]:
    """The results set in DIR (ALL first, then the workloads by name)."""
    import json

    paths = sorted(directory.glob("*.json"), key=lambda p: (p.stem != ALL, p.stem))
    return {p.stem: json.loads(p.read_text()) for p in paths}


def sections(files: dict[str, dict[str, Any]]) -> list[str]:
    """The parts a page shows: ALL then each workload, or the one workload alone."""
    workloads = [n for n in files if n != ALL]
    return workloads if len(workloads) == 1 else [ALL, *workloads]


def _title(name: str) -> str:
    return "all workloads together" if name == ALL else f"workload `{name}`"


def plots(files: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """<name>-latency-cdf.png, -wrong-served.png, -paths.png, -tokens.png per shown part, drawn
    from the results JSON alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for name in sections(files):
        data = files[name]
        arms = list(data["arms"])
        labels = [ARM_LABELS.get(a, a) for a in arms]
        cdf = data["latency_cdf_s"]

        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for a, label in zip(arms, labels, strict=True):
            xs = [max(x, 1e-4) for x in cdf[a]]
            ys = [i / (len(xs) - 1) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency per request (s, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"Latency CDF per arm: {_title(name)}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
        made.append(_save(fig, out / f"{name}-latency-cdf.png"))

        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        wrong = [float(data["arms"][a]["wrong_served"]) for a in arms]
        ax.bar(labels, wrong, color="tab:red")
        for i, v in enumerate(wrong):
            ax.annotate(f"{v:.0f}", (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("wrong answers served from a cache")
        ax.set_title(f"Wrong served per arm: {_title(name)}")
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        made.append(_save(fig, out / f"{name}-wrong-served.png"))

        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        bottom = [0.0] * len(arms)
        for p in PATHS:
            vals = [float(data["arms"][a]["paths"][p]) for a in arms]
            ax.bar(labels, vals, bottom=bottom, label=p)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("requests")
        ax.set_title(f"Paths per arm: {_title(name)}")
        ax.legend(fontsize=8)
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        made.append(_save(fig, out / f"{name}-paths.png"))

        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        pt = [float(data["arms"][a]["tokens"]["prompt"]) for a in arms]
        ct = [float(data["arms"][a]["tokens"]["completion"]) for a in arms]
        ax.bar(labels, pt, label="prompt tokens")
        ax.bar(labels, ct, bottom=pt, label="completion tokens")
        ax.set_ylabel("backend tokens")
        ax.set_title(f"Backend tokens per arm: {_title(name)}")
        ax.legend(fontsize=8)
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        made.append(_save(fig, out / f"{name}-tokens.png"))
    return made


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _pass(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def target_rows(targets: dict[str, Any]) -> list[list[str]]:
    """target | measured | goal | pass | why, one row per target."""
    return [
        [name, _fmt_measured(v["measured"]), v["target"], _pass(v["pass"]), v.get("why", "")]
        for name, v in targets.items()
    ]


def comparison_rows(comparison: dict[str, Any]) -> list[list[str]]:
    return [
        [
            ARM_LABELS.get(a, a),
            str(c["wrong_served"]),
            f"{c['lookup_median_ms']:.1f} ms",
            _pct(c["correct_task"]),
        ]
        for a, c in comparison.items()
    ]


def _kind_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    arms = list(data["arms"])
    head = ["kind", "n", *(f"{ARM_LABELS.get(a, a)}: latency / correct" for a in arms)]
    head += ["StepCache paths", "StepCache: no model call"]
    rows = []
    for kind, sc in data["by_kind"].get("stepcache", {}).items():
        cells = [kind, str(sc["n"])]
        for a in arms:
            k = data["by_kind"][a].get(kind)
            cells.append(
                "-" if k is None else f"{k['latency_mean_s']:.2f} / {100 * k['correct_task']:.0f} %"
            )
        cells.append(" / ".join(str(sc["paths"][p]) for p in PATHS))
        cells.append(str(sc.get("no_model_call", "-")))
        rows.append(cells)
    return head, rows


def _met(targets: dict[str, Any]) -> tuple[int, int]:
    judged = [v["pass"] for v in targets.values() if v["pass"] is not None]
    return sum(judged), len(judged)


def page(files: dict[str, dict[str, Any]], img_prefix: str = "img/") -> str:
    """docs/benchmark.md: a pure function of the results set (docs/results/*.json)."""
    first = files[ALL]
    m = first["machine"]
    calls = first["backend_calls"]
    per_workload = ", ".join(f"{n}: {files[n]['requests']['total']}" for n in files if n != ALL)
    lines = [
        "# Benchmark: StepCache against no cache, exact-match and semantic caches",
        "",
        "<!-- Generated from docs/results/*.json by stepcache_bench.report; do not edit. -->",
        "",
        "Every figure on this page is read from the results JSON in [results/](results/) "
        "(`all.json`, and one file per workload). Regenerate it all from the committed memo of "
        "model answers with `make bench-full`; re-render this page, the plots and README's "
        "headline from the JSON alone with "
        "`python -m stepcache_bench.report --from-json docs/results --docs docs "
        "--readme README.md`.",
        "",
        headline_block(files, page_link=""),
        "",
        f"- Command: `{first['command']}`",
        f"- Date: {first['date']}; duration {first['duration_s'] / 60:.1f} min "
        f"(model time {first['model_time_s'] / 60:.1f} min)",
        f"- Model answers: {calls.get('from_memo_file', 0)} from the memo file, "
        f"{calls['computed']} computed in this run",
        f"- Machine: {m['cpu']} ({m['cores']} cores), {m['memory_gb']:.0f} GB RAM, "
        f"{m['platform']}, Python {m['python']}",
        f"- Model: {first['model']}; backend tokens capped at {first['config']['max_tokens']}",
        f"- Seeds {first['seeds']}; {first['requests']['total']} evaluation requests in all "
        f"({per_workload}).",
        "",
        "The machine is shared and noisy: compare the arms as ratios within this run.",
    ]
    for name in sections(files):
        data = files[name]
        met, judged = _met(data["targets"])
        lines += [
            "",
            f"## Targets: {_title(name)} ({data['requests']['total']} requests; "
            f"{met} of {judged} met)",
            "",
            "StepCache (fallback on) against no cache in the same run.",
            "",
            *_table(("target", "measured", "goal", "pass", "why"), target_rows(data["targets"])),
            "",
            "StepCache and the GPTCache-style caches side by side:",
            "",
            *_table(
                ("arm", "wrong served", "lookup (median)", "correct (task)"),
                comparison_rows(data["comparison"]),
            ),
            "",
            f"### Per arm: {_title(name)} (ratio to no cache)",
            "",
            *_table(ARM_HEADER, arm_rows(data)),
        ]
        head, rows = _kind_rows(data)
        if rows:
            lines += ["", f"### Per perturbation kind: {_title(name)}", ""]
            lines += [
                "Mean latency (s), correctness by the task checker, StepCache's paths "
                "(exact/reuse/patch/skip/miss), and how many of the kind StepCache served "
                "without asking the model (reuses, and patches that only drop steps: a key "
                "removed, prose the new wording forbids).",
                "",
                *_table(head, rows),
            ]
        lines += ["", f"### Plots: {_title(name)}", ""]
        lines += [f"![{title}]({img_prefix}{name}-{stem}.png)" for stem, title in PLOTS]
    stages = first["arms"].get("stepcache", {}).get("stage_median_ms", {})
    if stages:
        names = sorted({k for v in stages.values() for k in v})
        rows = [
            [path, *(f"{v[k]:.1f}" if k in v else "-" for k in names)] for path, v in stages.items()
        ]
        lines += [
            "",
            "## Where StepCache's overhead goes (median ms per stage, by path; all workloads)",
            "",
            *_table(("path", *names), rows),
        ]
    if first.get("targets_v1"):
        lines += [
            "",
            "## The first benchmark's targets, for comparison (all workloads)",
            "",
            *_table(
                ("target", "measured", "goal", "pass"),
                [r[:4] for r in target_rows(first["targets_v1"])],
            ),
        ]
    lines += ["", "## Method", ""]
    lines += [f"- {v}" for v in first["notes"].values()]
    lines += [
        "",
        "Lookup latency and memory against cache size (`stepcache scale`): [scale.md](scale.md).",
    ]
    lines.append("")
    return "\n".join(lines)


def headline(files: dict[str, dict[str, Any]], page_link: str = "docs/benchmark.md") -> str:
    """README's headline paragraph, from the results set (between HEADLINE_BEGIN and _END); the
    page's own opening with `page_link` empty."""
    data = files[ALL]
    if "stepcache" not in data["arms"] or "no_cache" not in data["arms"]:
        return "This run did not compare StepCache with no cache."
    sc, nc = data["arms"]["stepcache"], data["arms"]["no_cache"]
    rt = data["ratios"]["stepcache"]
    t = data["targets"]
    workloads = [n for n in files if n != ALL]
    gpt = data["comparison"].get("gptcache")
    p95 = files.get("paper", data)["ratios"]["stepcache"]["p95"]
    met = "; ".join(
        "{} {} of {}".format(_title(n).removeprefix("workload "), *_met(files[n]["targets"]))
        for n in sections(files)
    )
    where = f"[{page_link}]({page_link}): " if page_link else ""
    parts = [
        f"On the committed benchmark run ({where}"
        f"{', '.join(workloads)}; seeds {', '.join(map(str, data['seeds']))}; "
        f"{data['requests']['total']} requests; {data['model'].split(' via ')[0]}; all arms on "
        f"the same requests), StepCache served {sc['wrong_served']} wrong answers and was "
        f"{_pct(sc['correct_task'])} correct by the independent checker, where the model alone "
        f"was right {_pct(nc['correct_task'])} of the time",
        f" and GPTCache (its default threshold) served {gpt['wrong_served']} wrong answers"
        if gpt
        else "",
        f". It spent {rt['tokens']:.2f}x the backend tokens of no cache, with "
        f"{rt['mean']:.2f}x its mean latency (floor {data['mean_latency_floor']:.2f}x; "
        f"{t['mean_latency_ratio_not_core']['measured']:.2f}x on the requests that are not "
        f"core-meaning changes) and {p95:.2f}x its p95"
        + (" on `paper`" if "paper" in files else "")
        + f"; a reuse took a median {t['reuse_median_ms']['measured'] or 0:.1f} ms"
        f" and a lookup that embedded and searched "
        f"{t['searched_miss_median_ms']['measured'] or 0:.1f} ms"
        + (f" (GPTCache's lookup: {gpt['lookup_median_ms']:.1f} ms)" if gpt else "")
        + f". Targets met: {met}.",
    ]
    return "".join(parts)


def headline_block(files: dict[str, dict[str, Any]], page_link: str = "docs/benchmark.md") -> str:
    """The headline as README holds it between its marks: wrapped at 100 columns."""
    import textwrap

    text = headline(files, page_link)
    return textwrap.fill(text, 100, break_long_words=False, break_on_hyphens=False)


def readme_with_headline(readme: str, files: dict[str, dict[str, Any]]) -> str:
    """README text with its headline block replaced by `headline_block(files)`."""
    begin, end = readme.index(HEADLINE_BEGIN), readme.index(HEADLINE_END)
    return f"{readme[:begin]}{HEADLINE_BEGIN}\n{headline_block(files)}\n{readme[end:]}"


def readme_headline_block(readme: str) -> str:
    """The text between README's headline marks."""
    begin = readme.index(HEADLINE_BEGIN) + len(HEADLINE_BEGIN)
    return readme[begin : readme.index(HEADLINE_END)].strip()


def write_docs(
    files: dict[str, dict[str, Any]], docs: Path, readme: Path | None = None
) -> list[Path]:
    """DOCS/results/*.json, DOCS/img/<part>-*.png and DOCS/benchmark.md from a results set, and
    README's headline block when `readme` is given; the page and block are re-read from the JSON
    written, so they are what the committed JSON renders."""
    write_results(files, docs / "results")
    files = read_results(docs / "results")
    made = plots(files, docs / "img")
    (docs / "benchmark.md").write_text(page(files))
    made.append(docs / "benchmark.md")
    if readme is not None:
        readme.write_text(readme_with_headline(readme.read_text(), files))
        made.append(readme)
    return made


def load_records(path: Path) -> list[Record]:
    """Records back from a run's records.jsonl."""
    import json

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row.setdefault("timings", {})
        out.append(Record(**row))
    return out


def latency_summary(records: Sequence[Record], arm: str) -> str:
    xs = [r.latency_s for r in records if r.arm == arm]
    return f"{arm}: p50 {percentile(xs, 50):.3f}s p95 {percentile(xs, 95):.3f}s"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stepcache_bench.report --from-json docs/results --docs docs [--readme README.md]`
    or `python -m stepcache_bench.report RUN_DIR --docs docs` (a run's results.json)."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(
        prog="python -m stepcache_bench.report",
        description="Re-render the benchmark page, plots and README headline from results JSON",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("run_dir", type=Path, nargs="?", help="a run's --out directory")
    src.add_argument("--from-json", type=Path, help="a results set directory (docs/results)")
    p.add_argument("--docs", type=Path, default=None, help="write DIR/benchmark.md, img, results")
    p.add_argument("--readme", type=Path, default=None, help="update this README's headline")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.from_json is not None:
        files = read_results(args.from_json)
    else:
        files = results_files(json.loads((args.run_dir / "results.json").read_text()))
    if args.docs is not None:
        for path in write_docs(files, args.docs, args.readme):
            print(path)
    else:
        print(page(files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
