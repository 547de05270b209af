"""`skew`: logged REST predict bodies against the served version's training data, with TFDV.

The served version is real registry and ML Metadata records (a version
published with `Registry.publish`, its run written as TFX's local runner
records it, tests/mlmd_records.py) over real TFDV statistics of the taxi
data and the curated schema, so no pipeline runs here (test_e2e.py runs
one). The last tests send requests through Debian's nginx running the
shipped front config to the TF Serving double and run `skew` on the log
lines nginx wrote.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import contracts
from components.errors import ConfigError
from components.registry.store import Registry
from pipeline.cli import main
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.serving.columns import columns_for
from pipeline.serving.rows import parse_row, to_instance
from pipeline.serving.skew import NOT_LOGGED, NOT_SERVED, RequestsError, read_requests
from tests import nginx_front
from tests.conftest import (
    load_schema,
    read_csv_rows,
    taxi_config,
    taxi_schema_file,
    write_csv,
)
from tests.conftest import to_instance as to_tfdv_instance
from tests.mlmd_records import StoreWriter

COLUMNS = columns_for(taxi_config())
TRAIN_ROWS = 12000  # the "train split": the first rows of the taxi CSV
RUN = "run-1"


@pytest.fixture(scope="module")
def train_rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=TRAIN_ROWS)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, train_rows) -> list[str]:  # type: ignore[no-untyped-def]
    """A registry whose stable version's run has TFDV statistics and the curated schema.

    Returns:
        The `--set` arguments pointing the CLI at it.
    """
    import pandas as pd
    import tensorflow_data_validation as tfdv

    root = tmp_path_factory.mktemp("served")
    schema = load_schema()
    frame = pd.DataFrame([to_tfdv_instance(row, schema) for row in train_rows])
    statistics = tfdv.generate_statistics_from_dataframe(frame, tfdv.StatsOptions(schema=schema))
    statistics_uri = root / "statistics_gen" / "statistics" / "3"
    (statistics_uri / "Split-train").mkdir(parents=True)
    (statistics_uri / "Split-train" / "FeatureStats.pb").write_bytes(statistics.SerializeToString())
    schema_uri = root / "schema_importer" / "schema" / "2"
    schema_uri.mkdir(parents=True)
    shutil.copy(taxi_schema_file(), schema_uri / contracts.SCHEMA_FILE)

    writer = StoreWriter(root / "metadata.sqlite", "local")
    examples = writer.artifact("Examples", str(root / "example_gen" / "1"))
    schema_id = writer.artifact("Schema", str(schema_uri))
    stats_id = writer.artifact("ExampleStatistics", str(statistics_uri))
    writer.execution("example_gen", RUN, {}, {"examples": examples})
    writer.execution("schema_importer", RUN, {}, {"schema": schema_id})
    writer.execution(
        "statistics_gen", RUN, {"examples": examples, "schema": schema_id}, {"statistics": stats_id}
    )
    model = root / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"not read by skew")
    registry = Registry(str(root / "registry"), "taxi")
    registry.publish(
        str(model), {"pipeline": {"name": "taxi", "run_id": RUN}, "mlmd": {"examples_id": examples}}
    )
    registry.set_label(contracts.STABLE_LABEL, 1)
    return [
        "--set",
        f"metadata.sqlite_path={root / 'metadata.sqlite'}",
        "--set",
        f"registry.uri={root / 'registry'}",
    ]


def _bodies(rows: list[dict[str, str]], batch: int = 16) -> list[dict]:
    """REST predict bodies as the predict client builds them (empty cells filled)."""
    instances = [to_instance(parse_row(r, n, COLUMNS), COLUMNS) for n, r in enumerate(rows, 1)]
    return [
        {"signature_name": contracts.SERVING_RAW, "instances": instances[i : i + batch]}
        for i in range(0, len(instances), batch)
    ]


def _write(path: Path, bodies: list) -> str:
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return str(path)


@pytest.fixture(scope="module")
def sample(train_rows) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return random.Random(7).sample(train_rows, 640)


def _skew(capsys, *argv: str) -> tuple[int, dict, str]:  # type: ignore[no-untyped-def]
    code = main(["skew", *argv, "-o", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {}, captured.err


def test_requests_drawn_from_the_training_data_pass(served, sample, tmp_path, capsys):
    requests = _write(tmp_path / "requests.jsonl", _bodies(sample))
    code, result, err = _skew(capsys, "--requests", requests, *served)
    assert code == 0, err
    assert result["version"] == 1 and result["chosen_by"] == "label 'stable'"
    assert result["run"] == RUN and result["training_examples"] == TRAIN_ROWS
    assert result["requests"]["instances"] == 640 and result["requests"]["bodies"] == 40
    features = {f["feature"]: f for f in result["features"]}
    assert set(features) == {c.name for c in COLUMNS}
    assert features["company"]["measure"] == "L-infinity"
    assert features["company"]["kind"] == "categorical"
    assert features["fare"]["measure"] == "Jensen-Shannon"
    assert all(f["value"] is not None for f in features.values())
    assert result["drifted"] == [] and result["schema_anomalies"] == []
    # The table, for people.
    assert main(["skew", "--requests", requests, *served]) == 0
    out = capsys.readouterr().out
    assert "FEATURE" in out and "VERDICT" in out and "DRIFT" not in out
    assert "no drift: 14 features" in out


def _drifted(sample: list[dict[str, str]]) -> list[dict]:
    bodies = _bodies(sample)
    for body in bodies:
        for instance in body["instances"]:
            instance["company"] = "Flash Cab"  # one value for everyone
            instance["fare"] = instance["fare"] * 3 + 10
    return bodies


def test_drifted_requests_exit_1_naming_each_drifted_feature(served, sample, tmp_path, capsys):
    requests = _write(tmp_path / "drifted.jsonl", _drifted(sample))
    code, result, err = _skew(capsys, "--requests", requests, *served)
    assert code == 1
    assert result["drifted"] == ["fare", "company"]
    features = {f["feature"]: f for f in result["features"]}
    assert features["company"]["value"] == pytest.approx(1.0)
    assert features["fare"]["value"] > 0.5
    assert "FAILED: drift over the threshold in fare (Jensen-Shannon" in err
    assert "company (L-infinity 1.0000 > 0.1)" in err
    assert "trip_miles" not in err


def test_thresholds_come_from_the_config(served, sample, tmp_path, capsys):
    drifted = _write(tmp_path / "drifted.jsonl", _drifted(sample))
    config = tmp_path / "skew.yaml"
    config.write_text(
        f"extends: {DEFAULT_CONFIG}\nskew:\n  features: {{company: 1.0, fare: 0.95}}\n"
    )
    code, result, err = _skew(capsys, "--requests", drifted, "--config", str(config), *served)
    assert code == 0, err
    thresholds = {f["feature"]: f["threshold"] for f in result["features"]}
    assert thresholds["company"] == 1.0 and thresholds["fare"] == 0.95
    assert thresholds["trip_miles"] == 0.2 and thresholds["payment_type"] == 0.1
    # A tight numeric threshold flags the very requests the defaults pass.
    clean = _write(tmp_path / "requests.jsonl", _bodies(sample))
    code, result, err = _skew(
        capsys, "--requests", clean, *served, "--set", "skew.numeric_threshold=0.001"
    )
    assert code == 1 and "fare" in result["drifted"] and "company" not in result["drifted"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("skew.features.no_such_feature=0.2", "skew.features: no_such_feature not feature"),
        ("skew.categorical_threshold=0", "skew.categorical_threshold must be in (0, 1]"),
        ("skew.features.fare=1.5", "skew.features.fare must be in (0, 1]"),
        ("skew.features.fare=high", "skew.features.fare: expected a number"),
        ("skew.numeric_histogram=deciles", "one of quantiles, standard"),
    ],
)
def test_a_malformed_skew_section_fails_at_load_time(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(DEFAULT_CONFIG, [override])


GOOD = {"instances": [{"fare": 5.0, "company": "Flash Cab"}]}


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2: not JSON"),
        (json.dumps({"predictions": []}), "line 2: no instances (or inputs)"),
        (json.dumps({"instances": [{"fare": 5.0, "tip": 1}]}), "line 2, instance 1: column 'tip'"),
        (json.dumps({"instances": [{"fare": "5"}]}), "line 2, instance 1, column 'fare' (float)"),
        (
            json.dumps({"instances": [{"trip_start_hour": 3.5}]}),
            "column 'trip_start_hour' (int): expected an integer",
        ),
        (json.dumps({"instances": [[5.0, 1]]}), "line 2, instance 1: expected an object"),
        (
            json.dumps({"signature_name": "serving_default", "instances": []}),
            "line 2: signature_name 'serving_default'",
        ),
        (json.dumps({"inputs": {"fare": [1.0, 2.0], "trip_miles": [1.0]}}), "different lengths"),
    ],
)
def test_a_bad_line_is_named(tmp_path, line, message):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(RequestsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_requests(str(path), COLUMNS)


def test_a_bad_line_exits_2_with_one_line(served, tmp_path, capsys):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + "[1, 2\n")
    assert main(["skew", "--requests", str(path), *served]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}, line 3: not JSON") and "Traceback" not in err


def test_front_log_records_and_columnar_bodies_are_read(tmp_path):
    lines = [
        {"status": 200, "uri": "/v1/models/taxi:predict", "body": json.dumps(GOOD)},
        {"status": 400, "uri": "/v1/models/taxi:predict", "body": json.dumps(GOOD)},
        {"status": 200, "uri": "/v1/models/taxi:predict", "body": ""},
        {"inputs": {"fare": [1.0, 2.0], "company": ["A", {"b64": "Qg=="}]}},
    ]
    requests = read_requests(_write(tmp_path / "log.jsonl", lines), COLUMNS)
    assert requests.lines == 4 and requests.bodies == 2
    assert requests.skipped == {NOT_SERVED: 1, NOT_LOGGED: 1}
    assert requests.instances == [
        {"fare": [5.0], "company": [b"Flash Cab"]},
        {"fare": [1.0], "company": [b"A"]},
        {"fare": [2.0], "company": [b"B"]},
    ]


# -- through the real front ----------------------------------------------------------


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nginx_front.Front]:
    from tests.fake_serving import serve_constant

    nginx_front.nginx()
    with serve_constant(tmp_path_factory.mktemp("double"), 0.25, COLUMNS) as fake:
        running = nginx_front.start(fake.rest_url.removeprefix("http://"), fake.grpc_target)
        yield running
        nginx_front.stop(running)


def _through_front(front, rows, tmp_path: Path, name: str) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """Sends `rows` through the front in batches of 32; returns the new log lines' file."""
    log = front.folder / "run" / "predict-requests.jsonl"
    before = log.read_text().count("\n")
    csv_path = tmp_path / f"{name}.csv"
    write_csv(csv_path, rows, list(rows[0]))
    tls = ["--ca-cert", front.ca_cert, "--api-key-env", "FRONT_KEY"]
    argv = ["predict", "--endpoint", front.rest_url, "--csv", str(csv_path), "-o", "json"]
    assert main([*argv, "--batch-size", "32", *tls]) == 0
    lines = log.read_text().splitlines()[before:]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path), len(lines)


def test_skew_reads_the_sampled_log_the_real_front_writes(
    front, served, train_rows, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FRONT_KEY", f"{nginx_front.KEY_ID}:{nginx_front.KEY}")
    rows = random.Random(11).sample(train_rows, 6400)  # 200 requests
    logged, count = _through_front(front, rows, tmp_path, "clean")
    capsys.readouterr()
    # The shipped config logs a 10% sample: never 0 of 200 in practice (0.9^200).
    assert 0 < count < 200
    record = json.loads(Path(logged).read_text().splitlines()[0])
    assert record["status"] == 200 and record["uri"] == "/v1/models/taxi:predict"
    assert json.loads(record["body"])["signature_name"] == contracts.SERVING_RAW
    # The sample is nginx's random share of the rows: allow its noise.
    loose = ["--set", "skew.numeric_threshold=0.3"]
    code, result, err = _skew(capsys, "--requests", logged, *served, *loose)
    assert code == 0, err
    assert result["requests"]["lines"] == count == result["requests"]["bodies"]
    assert result["requests"]["instances"] == 32 * count

    for row in rows:
        row["company"] = "Flash Cab"
    logged, count = _through_front(front, rows, tmp_path, "drifted")
    capsys.readouterr()
    code, result, err = _skew(capsys, "--requests", logged, *served, *loose)
    assert code == 1 and result["drifted"] == ["company"]
    assert "company (L-infinity 1.0000 > 0.1)" in err
