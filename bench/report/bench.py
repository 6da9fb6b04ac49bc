"""The report's plotting library, chosen by measurement: the same charts of one suite drawn by each candidate, the
page's size, the time to build it and the time headless chromium takes to show every chart.

    pip install plotly vl-convert-python altair playwright   # the candidates (not the product's dependencies)
    PYTHONPATH=. python bench/report/bench.py [--chromium /usr/bin/chromium] [--rounds 3]

Candidates: matplotlib to inline SVG (what `evals report` uses), plotly with plotly.js inlined once, Vega-Lite
(altair's specs) rendered to static SVG by vl-convert, and Vega-Lite with the vega/vega-lite/vega-embed bundle
inlined (interactive, as plotly). The suite: 3 models x 4 tasks, 500 samples and requests each (tests/unit/
report_runs.py's builder, scaled up); per task 3 charts (scores with CI error bars, latency histogram, tokens), 12
in all. The whole `evals report` page of that suite is measured too. Writes bench/report/RESULTS.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from orchestrator.host.report import charts, page  # noqa: E402
from orchestrator.host.report.gather import gather  # noqa: E402
from orchestrator.host.report.tables import ScoreRow, Usage, score_rows, usage_of  # noqa: E402
from tests.unit import report_runs  # noqa: E402

MODELS = ("model-a", "model-b", "model-c")
TASKS = ("gsm8k", "arc_easy", "mmlu", "ifeval")


def make_suite(root: Path) -> Path:
    report_runs.SAMPLES = 500
    report_runs.MODELS = MODELS
    report_runs.TASKS = TASKS
    for model in range(len(MODELS)):
        for task in range(len(TASKS)):
            report_runs.write_output_dir(root / MODELS[model] / f"lm-eval-{TASKS[task]}", model=model % 2, task=task)
            results = root / MODELS[model] / f"lm-eval-{TASKS[task]}" / "results.yml"
            results.write_text(results.read_text().replace(f"model_id: {MODELS[model % 2]}",
                                                           f"model_id: {MODELS[model]}"))
    return root


Inputs = tuple[list[str], list[ScoreRow], dict[str, list[Usage | None]]]


def inputs(root: Path) -> Inputs:
    outputs = gather([str(root)])
    models = list(dict.fromkeys(output.model for output in outputs))
    rows = score_rows(outputs, models)
    usage = {task: [next((usage_of(o) for o in outputs if o.model == m and o.tasks == [task]), None) for m in models]
             for task in TASKS}
    return models, rows, usage


def with_matplotlib(models: list[str], rows: list[ScoreRow], usage: dict[str, list[Usage | None]]) -> str:
    parts = []
    for task in TASKS:
        parts.append(charts.scores_chart([row for row in rows if row.task == task], models))
        parts.append(charts.latency_chart(usage[task], models))
        parts.append(charts.tokens_chart(usage[task], models))
    return _page("".join(f"<figure>{part}</figure>" for part in parts))


def with_plotly(models: list[str], rows: list[ScoreRow], usage: dict[str, list[Usage | None]]) -> str:
    import plotly.graph_objects as go  # noqa: PLC0415
    from plotly.offline import get_plotlyjs  # noqa: PLC0415

    divs = []
    for task in TASKS:
        task_rows = [row for row in rows if row.task == task]
        bars = go.Figure([go.Bar(name=model, x=[row.metric for row in task_rows],
                                 y=[row.cells[i].value if row.cells[i] else None for row in task_rows],
                                 error_y={"type": "data", "symmetric": False,
                                          "array": [(c.upper or c.value) - c.value if (c := row.cells[i]) else 0
                                                    for row in task_rows],
                                          "arrayminus": [c.value - (c.lower or c.value) if (c := row.cells[i]) else 0
                                                         for row in task_rows]})
                          for i, model in enumerate(models)])
        latency = go.Figure([go.Histogram(x=found.latencies_ms, name=model, opacity=0.6)
                             for model, found in zip(models, usage[task], strict=True) if found])
        tokens = go.Figure([go.Bar(x=models, y=[u.prompt_tokens if u else 0 for u in usage[task]], name="prompt"),
                            go.Bar(x=models, y=[u.completion_tokens if u else 0 for u in usage[task]],
                                   name="completion")], layout={"barmode": "stack"})
        for figure in (bars, latency, tokens):
            figure.update_layout(width=460, height=280)
            divs.append(figure.to_html(full_html=False, include_plotlyjs=False))
    return _page("".join(divs), script=get_plotlyjs())


def _vegalite(models: list[str], rows: list[ScoreRow], usage: dict[str, list[Usage | None]]) -> list[dict[str, Any]]:
    import altair as alt  # noqa: PLC0415

    specs = []
    for task in TASKS:
        values = [{"metric": row.metric, "model": model, "value": cell.value, "lower": cell.lower or cell.value,
                   "upper": cell.upper or cell.value}
                  for row in rows if row.task == task for model, cell in zip(models, row.cells, strict=True) if cell]
        base = alt.Chart(alt.Data(values=values)).encode(x=alt.X("model:N"), color="model:N")
        bars = alt.layer(base.mark_bar().encode(y="value:Q"),
                         base.mark_errorbar().encode(y="lower:Q", y2="upper:Q")).properties(width=300, height=200)
        latencies = [{"model": model, "ms": ms} for model, found in zip(models, usage[task], strict=True) if found
                     for ms in found.latencies_ms]
        latency = alt.Chart(alt.Data(values=latencies)).mark_bar(opacity=0.6).encode(
            x=alt.X("ms:Q", bin=alt.Bin(maxbins=30)), y="count():Q", color="model:N").properties(width=300, height=200)
        tokens = [{"model": model, "kind": kind, "tokens": getattr(found, f"{kind}_tokens")}
                  for model, found in zip(models, usage[task], strict=True) if found
                  for kind in ("prompt", "completion")]
        stacked = alt.Chart(alt.Data(values=tokens)).mark_bar().encode(
            x="model:N", y="sum(tokens):Q", color="kind:N").properties(width=200, height=200)
        specs += [bars.to_dict(), latency.to_dict(), stacked.to_dict()]
    return specs


def with_vl_convert_svg(models: list[str], rows: list[ScoreRow], usage: dict[str, list[Usage | None]]) -> str:
    import vl_convert  # noqa: PLC0415

    return _page("".join(f"<figure>{vl_convert.vegalite_to_svg(spec)}</figure>"
                         for spec in _vegalite(models, rows, usage)))


def with_vega_embed(models: list[str], rows: list[ScoreRow], usage: dict[str, list[Usage | None]]) -> str:
    import vl_convert  # noqa: PLC0415

    specs = _vegalite(models, rows, usage)
    calls = "".join(f"vegaEmbed('#c{i}', {json.dumps(spec)}, {{renderer: 'svg', actions: false}});"
                    for i, spec in enumerate(specs))
    standalone = vl_convert.vegalite_to_html(specs[0], bundle=True)  # its first script: vega, vega-lite, vega-embed
    start = standalone.index(">", standalone.index("<script")) + 1
    bundle = standalone[start:standalone.index("</script>", start)]
    return _page("".join(f'<figure id="c{i}"></figure>' for i in range(len(specs))), script=bundle, after=calls)


def _page(body: str, *, script: str = "", after: str = "") -> str:
    head = f"<script>{script}</script>" if script else ""
    tail = f"<script>{after}</script>" if after else ""
    return f'<!DOCTYPE html><html><head><meta charset="utf-8">{head}</head><body>{body}{tail}</body></html>'


CANDIDATES: dict[str, Callable[[list[str], list[ScoreRow], dict[str, list[Usage | None]]], str]] = {
    "matplotlib, inline SVG": with_matplotlib,
    "plotly, plotly.js inlined": with_plotly,
    "Vega-Lite via vl-convert, static SVG": with_vl_convert_svg,
    "Vega-Lite + vega-embed inlined": with_vega_embed,
}


def shown_ms(browser: Any, path: Path, expected: int) -> float:
    """From navigation to every chart drawn (an svg or canvas of non-zero size per chart)."""
    context = browser.new_context(offline=True)
    page_ = context.new_page()
    start = time.perf_counter()
    page_.goto(path.as_uri(), wait_until="load")
    page_.wait_for_function(
        """n => [...document.querySelectorAll(
                 'figure svg, .plotly-graph-div svg.main-svg:first-of-type, figure canvas')].filter(
                 e => e.getBoundingClientRect().width > 0).length >= n""", arg=expected, timeout=60000)
    elapsed = (time.perf_counter() - start) * 1000
    context.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="report-bench-"))
    root = make_suite(work / "suite")
    data = inputs(root)
    found: list[dict[str, Any]] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for name, draw in CANDIDATES.items():
            builds, shows = [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                html = draw(*data)
                builds.append((time.perf_counter() - start) * 1000)
                path = work / f"{len(found)}.html"
                path.write_text(html, encoding="utf-8")
                shows.append(shown_ms(browser, path, 3 * len(TASKS)))
            found.append({"candidate": name, "bytes": len(html.encode()), "build_ms": statistics.median(builds),
                          "shown_ms": statistics.median(shows)})
        start = time.perf_counter()
        whole = page.build([str(root)])
        build_ms = (time.perf_counter() - start) * 1000
        path = work / "report.html"
        path.write_text(whole, encoding="utf-8")
        found.append({"candidate": "the whole `evals report` page (matplotlib; with compare, samples, provenance)",
                      "bytes": len(whole.encode()), "build_ms": build_ms,
                      "shown_ms": statistics.median(shown_ms(browser, path, 3 * len(TASKS)) for _ in range(3))})
        browser.close()
    machine = f"{platform.node()}, {os.cpu_count()} cores, {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    (HERE / "RESULTS.json").write_text(json.dumps({"machine": machine, "date": time.strftime("%Y-%m-%d"),
                                                   "results": found}, indent=2) + "\n")
    lines = [f"# Report plotting candidates ({time.strftime('%Y-%m-%d')}; {machine})", "",
             f"One suite: {len(MODELS)} models x {len(TASKS)} tasks, 500 samples each; 12 charts. Median of "
             f"{args.rounds} rounds.", "", "| candidate | page size | build (Python) | shown in chromium |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r['candidate']} | {r['bytes'] / 1024:,.0f} KiB | {r['build_ms']:,.0f} ms | {r['shown_ms']:,.0f} ms |"
              for r in found]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
