"""The run report's page, rendered from synthetic run data and checked in a real Chromium.

The report of a real pipeline run is checked in test_e2e.py, on its run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.progress import NodeResult
from pipeline.report import page, svg
from pipeline.report.collect import (
    Anomaly,
    FeatureRow,
    ReportData,
    SliceRow,
    _present_and_missing,
)
from pipeline.summary import RunSummary
from tests import browser

NODES = [("example_gen", "COMPLETE"), ("statistics_gen", "COMPLETE"), ("trainer", "CACHED")]


def _data(**changes: object) -> ReportData:
    summary = RunSummary(
        nodes=[NodeResult(n, s, 1.5, i + 1) for i, (n, s) in enumerate(NODES)],
        metrics={"auc": 0.91, "example_count": 300.0},
        baseline_metrics={"auc": 0.9},
        blessed=True,
        reasons=["auc 0.9100 >= 0.8000 (evaluator.min_value)"],
        baseline_model_id=4,
        pushed_uri="/reg/m/2",
        run_id="run-7",
    )
    data = ReportData(
        pipeline="demo",
        summary=summary,
        gated_metric="auc",
        thresholds={"min_value": 0.8, "max_drop": 0.01},
        splits={
            "train": (
                10,
                [
                    FeatureRow("<b>age</b>", "numeric", 8, 2, 3.0, 1.0, 0.0, 9.0, 1),
                    FeatureRow("city", "string", 10, 0, unique=2, top=(("Paris", 6.0),)),
                ],
            )
        },
        anomalies=[Anomaly("city (eval)", "Unexpected string values", "Examples contain 'Lyon'")],
        slices={"city": [SliceRow("Paris", 6, {"auc": 0.95}), SliceRow("Rome", 4, {"auc": 0.85})]},
        curves={"loss": {"train": [(0, 0.7), (1, 0.5)], "validation": [(1, 0.55)]}},
        manifest={"format": 1, "model_name": "m", "version": 2, "files": {"a.pb": {"size": 3}}},
        nodes=list(NODES),
        edges=[
            ("example_gen", "statistics_gen", "examples"),
            ("example_gen", "trainer", "examples"),
        ],
    )
    for key, value in changes.items():
        setattr(data, key, value)
    return data


def test_every_section_is_rendered_with_its_content() -> None:
    html = page.render(_data())
    for key, title in page.SECTIONS:
        assert f'<section id="{key}"><h2>{title}</h2>' in html
    assert "&lt;b&gt;age&lt;/b&gt;" in html and "<b>age</b>" not in html  # names are escaped
    assert "Unexpected string values" in html
    assert "auc by city" in html and ">Paris<" in html
    assert "<polyline" in html  # the training curve
    assert "Version <b>2</b>" in html
    assert html.count('class="node"') == 3


def test_the_page_fetches_nothing_and_runs_no_script() -> None:
    html = page.render(_data())
    assert "<script" not in html
    assert re.findall(r'(?:src|href)="(?!#)[^"]*"', html) == []
    external = set(re.findall(r"https?://[^\s\"')]+", html))
    assert external <= {"http://www.w3.org/2000/svg"}


def test_missing_parts_say_so_instead_of_failing() -> None:
    html = page.render(
        _data(splits={}, anomalies=None, slices={}, curves={}, manifest=None, nodes=[], edges=[])
    )
    assert "No statistics were recorded" in html
    assert "ExampleValidator did not run" in html
    assert "Nothing was pushed by this run" in html
    assert "No TensorBoard events" in html


def test_an_empty_cell_counts_as_missing() -> None:
    # 10 examples had the column; 3 of them an empty cell (no value); 2 lacked it.
    common = statistics_pb2.CommonStatistics(
        num_non_missing=10, num_missing=2, tot_num_values=7, max_num_values=1
    )
    assert _present_and_missing(common) == (7, 5)
    # A list column (several values per example) is taken as TFDV counts it.
    lists = statistics_pb2.CommonStatistics(
        num_non_missing=10, num_missing=2, tot_num_values=30, max_num_values=5
    )
    assert _present_and_missing(lists) == (10, 2)


def test_the_dag_puts_each_node_right_of_its_inputs() -> None:
    drawn = svg.dag(
        NODES, [("example_gen", "statistics_gen", "x"), ("statistics_gen", "trainer", "y")]
    )
    xs = {
        name: float(x)
        for x, name in re.findall(r'<text x="([\d.]+)"[^>]*class="name">(\w+)<', drawn)
    }
    assert xs["example_gen"] < xs["statistics_gen"] < xs["trainer"]


def test_the_browser_check_sees_console_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); nothing();</script></body></html>")
    loaded = browser.load(bad, "400,300")
    assert any("boom" in m for m in loaded.console)
    assert any("nothing is not defined" in m for m in loaded.console)


@pytest.mark.parametrize("auc", [0.95, float("nan")])
def test_the_page_loads_in_chromium_without_console_errors(tmp_path: Path, auc: float) -> None:
    report = tmp_path / "report.html"
    report.write_text(page.render(_data(slices={"city": [SliceRow("Paris", 6, {"auc": auc})]})))
    loaded = browser.load(report)
    assert loaded.console == []
    for key, _ in page.SECTIONS:
        assert f'id="{key}"' in loaded.dom
    assert loaded.screenshot.startswith(b"\x89PNG") and len(loaded.screenshot) > 10_000


@pytest.mark.parametrize("value", [0.0, 0.5, 12.25, 123456.0])
def test_numbers_in_figures_are_short(value: float) -> None:
    assert len(svg._fmt(value)) <= 9


def test_non_finite_metrics_are_named_not_drawn() -> None:
    nan, inf = float("nan"), float("inf")
    data = _data(
        slices={"city": [SliceRow("Paris", 6, {"auc": nan}), SliceRow("Rome", 4, {"auc": 0.8})]},
        curves={"loss": {"train": [(0, 0.7), (1, nan), (2, inf), (3, 0.4)]}},
    )
    data.summary.metrics["auc"] = nan
    html = page.render(data)
    # No coordinate of any figure is NaN or infinite; the table still shows the value.
    assert re.search(r'="[^"]*(nan|inf)', html, re.IGNORECASE) is None
    assert "n/a (nan)" in html and html.count("<polyline") == 1


def test_slices_say_why_they_are_missing() -> None:
    assert "No slice columns are configured" in page.render(_data(slices={}))
    html = page.render(_data(slices={}, slice_columns=("city",)))
    assert "The Evaluator did not run" in html


def test_a_run_the_store_does_not_hold_is_named(tmp_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.config import EvaluatorConfig
    from pipeline.summary import summarize_run

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "mlmd.sqlite")
    store = metadata_store.MetadataStore(connection)
    with pytest.raises(ValueError, match=r"no execution of run 'run-9' of pipeline 'taxi'"):
        summarize_run(store, "taxi", "run-9", EvaluatorConfig(metric="auc"))


def test_the_error_page_says_why_and_escapes_it():
    from pipeline.report.executor import error_page

    html = error_page("run-<1>", "ValueError: <no> store")
    assert "run-&lt;1&gt;" in html and "ValueError: &lt;no&gt; store" in html
