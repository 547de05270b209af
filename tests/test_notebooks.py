"""The notebooks: committed without outputs, and executed top to bottom, headless.

They run in a real Jupyter kernel (nbclient) against the pipeline root, ML
Metadata and registry of two small real local runs, which they find through
the project's configuration (PIPELINE_CONFIG), as a user's would.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from pipeline.config import load_config, to_dict
from pipeline.notebook import CONFIG_ENV
from pipeline.runners import local
from tests.conftest import csv_columns, read_csv_rows, write_csv

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = [
    "01_data_exploration.ipynb",
    "02_interactive_pipeline.ipynb",
    "03_model_analysis.ipynb",
    "04_lineage.ipynb",
]


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    """Runs every cell in a fresh kernel; raises CellExecutionError on the first failing one."""
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return book


def test_the_four_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs; clear them"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    assert "widgets" not in book.metadata, f"{path.name}: widget state is an output too"


def test_a_failing_cell_fails_the_run(tmp_path):
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("raise ValueError('boom')"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(book, path)
    with pytest.raises(CellExecutionError, match="boom"):
        execute(path, tmp_path)


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small local runs (the second has the first as baseline); returns their config file."""
    root = tmp_path_factory.mktemp("notebook_runs")
    write_csv(root / "data" / "data.csv", read_csv_rows(limit=2000), csv_columns())
    overrides = [
        f"data.root={root / 'data'}",
        f"run.pipeline_root={root / 'pipeline_root'}",
        f"metadata.sqlite_path={root / 'metadata.sqlite'}",
        f"registry.uri={root / 'registry'}",
        "trainer.train_steps=100",
        "trainer.eval_steps=5",
        "trainer.batch_size=64",
        "evaluator.min_auc=0.5",
        "evaluator.max_auc_drop=0.5",
    ]
    config = load_config(None, overrides)
    assert local.run(config).pushed_uri
    second = load_config(None, [*overrides, "trainer.train_steps=150"])
    assert local.run(second).pushed_uri
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(to_dict(second), sort_keys=False))
    return path


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(small_runs, path, monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, str(small_runs))
    book = execute(path, REPO / "notebooks")
    errors = [
        output
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    # Every notebook says which configuration it used: the small runs', not the default.
    first_output = "".join(
        o.get("text", "") for o in book.cells[1].outputs if o.output_type == "stream"
    )
    assert str(small_runs.parent / "pipeline_root") in first_output
