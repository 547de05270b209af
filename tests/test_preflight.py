"""Set-up mistakes stop before the first component, with one line naming the problem.

Each case runs `python -m pipeline run` (in this process) on data or paths
the test makes, and checks the exit code, the one line, and that nothing
was written where the run would write.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from components import mlmd
from pipeline import preflight
from pipeline.__main__ import main
from pipeline.preflight import find_undecodable
from tests.conftest import TAXI_CSV, csv_columns, read_csv_rows, write_csv


def _run(tmp_path: Path, *overrides: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    defaults = {
        "run.pipeline_root": tmp_path / "root",
        "metadata.sqlite_path": tmp_path / "md" / "metadata.sqlite",
        "registry.uri": tmp_path / "registry",
    }
    given = {o.split("=", 1)[0] for o in overrides}
    args = [f"{k}={v}" for k, v in defaults.items() if k not in given] + list(overrides)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", *[x for a in args for x in ("--set", a)]])
    return code, err.getvalue().strip().splitlines()


def _one_line(tmp_path: Path, *overrides: str) -> str:
    code, lines = _run(tmp_path, *overrides)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").iterdir())
    assert not (tmp_path / "root" / "example_gen").exists(), "a component ran"
    return lines[0]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=100)


def test_a_data_root_that_does_not_exist(tmp_path):
    line = _one_line(tmp_path, f"data.root={tmp_path / 'nope'}")
    assert f"data.root={tmp_path / 'nope'} does not exist" in line


def test_a_folder_without_csv_files_names_what_it_holds(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "README.md").write_text("notes")
    line = _one_line(tmp_path, f"data.root={data}")
    assert f"data.root={data} has no *.csv file (it holds README.md)" in line


def test_an_empty_csv_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("")
    line = _one_line(tmp_path, f"data.root={data}")
    assert f"{data / 'data.csv'} is empty" in line


def test_header_only_csv_files_have_0_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    header = ",".join(csv_columns(TAXI_CSV)) + "\n"
    (data / "a.csv").write_text(header)
    (data / "b.csv").write_text(header)
    line = _one_line(tmp_path, f"data.root={data}")
    assert f"data.root={data} has 0 rows: its 2 CSV file(s) hold a header" in line


def test_two_headers_are_named_with_their_files(tmp_path, rows):
    data = tmp_path / "data"
    columns = csv_columns(TAXI_CSV)
    write_csv(data / "a.csv", rows, columns)
    write_csv(data / "b.csv", rows, [c for c in columns if c != "company"])
    line = _one_line(tmp_path, f"data.root={data}")
    assert str(data / "b.csv") in line and str(data / "a.csv") in line
    assert "only in the first: ['company']" in line


def test_a_byte_order_mark_is_named_as_the_cause(tmp_path, rows):
    data = tmp_path / "data"
    write_csv(data / "data.csv", rows, csv_columns(TAXI_CSV))
    path = data / "data.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    line = _one_line(tmp_path, f"data.root={data}")
    assert f"{path} starts with a UTF-8 byte order mark" in line
    assert "'pickup_community_area'" in line or "first column" in line


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("registry.uri", "/proc/x/registry", "registry.uri=/proc/x/registry cannot be written"),
        ("run.pipeline_root", "/proc/x", "run.pipeline_root=/proc/x cannot be written"),
        (
            "metadata.sqlite_path",
            "/proc/x/md.sqlite",
            "metadata.sqlite_path's folder=/proc/x cannot be written",
        ),
    ],
)
def test_outputs_that_cannot_be_written_are_named_before_anything_runs(tmp_path, key, value, named):
    line = _one_line(tmp_path, f"{key}={value}")
    assert named in line


def test_a_store_the_local_runner_cannot_use_is_named(tmp_path):
    line = _one_line(tmp_path, "metadata.kind=grpc")
    assert "metadata.kind=grpc: the local runner writes ML Metadata directly" in line


def test_a_store_that_does_not_open_is_named(tmp_path):
    folder = tmp_path / "md"
    folder.mkdir()
    (folder / "metadata.sqlite").write_text("not a database")
    line = _one_line(tmp_path, f"metadata.sqlite_path={folder / 'metadata.sqlite'}")
    assert f"metadata.sqlite_path={folder / 'metadata.sqlite'}: cannot open the ML Metadata" in line


def test_an_undecodable_byte_is_found_by_file_and_line(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("x,y\n1,2\n")
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"x,y\n1,2\n3,caf\xe9\n")
    line = find_undecodable(str(tmp_path))
    assert line is not None and line.startswith(f"{bad}, line 3, byte 6: 0xe9 is not UTF-8")
    assert find_undecodable(str(tmp_path / "none")) is None


def _store_that_fails(monkeypatch, times: int) -> list[int]:
    """MetadataStore refusing `times` times as ML Metadata does while another run creates tables."""
    from ml_metadata import metadata_store

    real = metadata_store.MetadataStore
    calls: list[int] = []

    def store(connection):
        calls.append(1)
        if len(calls) <= times:
            raise RuntimeError(
                "There are a subset of tables in MLMD instance. This may be due to concurrent "
                "connection to the empty database. Please retry the connection."
            )
        return real(connection)

    monkeypatch.setattr(metadata_store, "MetadataStore", store)
    monkeypatch.setattr(mlmd, "STORE_RETRY_S", 0.0)
    return calls


def test_a_store_another_run_is_creating_is_retried(tmp_path, monkeypatch):
    from pipeline.config import load_config

    config = load_config(None, [f"metadata.sqlite_path={tmp_path / 'metadata.sqlite'}"])
    calls = _store_that_fails(monkeypatch, 3)
    preflight.check_store(config)
    assert len(calls) == 4


def test_a_store_that_stays_half_made_is_named(tmp_path, monkeypatch):
    from pipeline.config import load_config

    config = load_config(None, [f"metadata.sqlite_path={tmp_path / 'metadata.sqlite'}"])
    calls = _store_that_fails(monkeypatch, mlmd.STORE_ATTEMPTS)
    with pytest.raises(preflight.PreflightError, match="cannot open the ML Metadata store: There"):
        preflight.check_store(config)
    assert len(calls) == mlmd.STORE_ATTEMPTS
