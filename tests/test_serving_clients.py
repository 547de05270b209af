"""The `predict` and `loadtest` clients against a TF Serving test double.

`FakeServing` (tests/fake_serving.py) serves two versions of model `taxi`:
version 1 is a stand-in that answers STUB for every row, version 2 the model
the real `run_fn` trained. The reference predictions come from calling the
trained SavedModel's `serving_default` directly on tf.Examples written the
way CsvExampleGen writes them, empty cells left out, so the tests also show
that filling empty cells with the serving columns' fills client-side
changes nothing. The columns are the taxi default's (`columns_for` of the
default configuration).
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from components.errors import UserError
from components.workload import FLOAT, INT, STRING
from pipeline.cli import serving as serving_cli
from pipeline.serving.client import (
    Prediction,
    ServingError,
    TargetError,
    grpc_target,
    make_client,
    predict_in_batches,
    rest_endpoint,
)
from pipeline.serving.columns import columns_for
from pipeline.serving.loadtest import batches, format_result, percentile, run_load_test
from pipeline.serving.rows import Row, RowError, read_rows
from tests.conftest import (
    TAXI_CSV,
    csv_columns,
    load_schema,
    read_csv_rows,
    taxi_config,
    to_tf_example,
    write_csv,
)
from tests.fake_serving import FakeServing, write_constant_model

MODEL = "taxi"
STUB = 0.25  # what version 1 answers for every row
ROWS = 40  # rows of the taxi CSV the reference predictions cover
PROTOCOLS = ["REST", "gRPC"]
COLUMNS = columns_for(taxi_config())


@pytest.fixture(scope="module")
def serving(trained_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServing]:
    stub = write_constant_model(str(tmp_path_factory.mktemp("stub") / "model"), STUB, COLUMNS)
    with FakeServing(MODEL, {1: stub, 2: trained_model}, {"canary": 1, "stable": 2}) as fake:
        yield fake


@pytest.fixture(scope="module")
def reference(trained_model: str) -> np.ndarray:
    """The trained model's own probabilities for the first ROWS rows of the CSV."""
    import tensorflow as tf

    raw = read_csv_rows(limit=ROWS)
    empty = {c.dtype for c in COLUMNS for r in raw if r[c.name] == ""}
    # The point of the comparison: rows with empty cells of every column type.
    assert empty == {FLOAT, INT, STRING}, (
        f"the first {ROWS} rows lack empty cells of {({FLOAT, INT, STRING}) - empty}"
    )
    schema = load_schema()
    examples = [to_tf_example(r, schema, columns=[c.name for c in COLUMNS]) for r in raw]
    model = tf.saved_model.load(trained_model)
    output = model.signatures["serving_default"](examples=tf.constant(examples))
    probabilities = output["probability"].numpy().reshape(-1)
    assert np.ptp(probabilities) > 1e-4, "a model answering one value everywhere proves nothing"
    return probabilities


def endpoint(fake: FakeServing, protocol: str) -> str:
    return fake.rest_url if protocol == "REST" else fake.grpc_target


def probabilities(predictions: list[Prediction]) -> list[float]:
    return [p.probability for p in predictions]


@pytest.fixture
def cli() -> Callable[[list[str]], int]:
    """The CLI's main(), which maps a ServingError to exit 1."""
    from pipeline.cli import main

    return main


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predictions_match_the_saved_model_on_rows_with_empty_cells(
    serving: FakeServing, reference: np.ndarray, protocol: str
) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=ROWS)
    with make_client(
        endpoint(serving, protocol), MODEL, COLUMNS, use_grpc=protocol == "gRPC"
    ) as client:
        # 7 does not divide 40: the last request is a short one.
        predictions = predict_in_batches(client, rows, batch_size=7)
    assert all(p.classes == () and p.top_class is None for p in predictions)
    np.testing.assert_allclose(probabilities(predictions), reference, rtol=1e-5, atol=1e-6)
    assert [c.rows for c in serving.calls[-6:]] == [7, 7, 7, 7, 7, 5]
    assert {c.signature for c in serving.calls[-6:]} == {
        "serving_raw" if protocol == "REST" else "serving_default"
    }


def test_rest_and_grpc_agree_row_by_row(serving: FakeServing) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=300)
    answers = {}
    for protocol in PROTOCOLS:
        with make_client(
            endpoint(serving, protocol), MODEL, COLUMNS, use_grpc=protocol == "gRPC"
        ) as c:
            answers[protocol] = probabilities(predict_in_batches(c, rows, batch_size=64))
    assert len(answers["REST"]) == len(rows)
    np.testing.assert_allclose(answers["REST"], answers["gRPC"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("choice", "reached"),
    [
        ({}, 2),  # no choice: the highest version
        ({"version": 1}, 1),
        ({"version": 2}, 2),
        ({"label": "canary"}, 1),
        ({"label": "stable"}, 2),
    ],
    ids=["default", "version-1", "version-2", "label-canary", "label-stable"],
)
def test_versions_and_labels_reach_the_version_asked(
    serving: FakeServing, reference: np.ndarray, protocol: str, choice: dict, reached: int
) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=ROWS)
    with make_client(
        endpoint(serving, protocol), MODEL, COLUMNS, use_grpc=protocol == "gRPC", **choice
    ) as client:
        predictions = client.predict(rows)
    assert serving.calls[-1].version == reached
    expected = np.full(ROWS, STUB) if reached == 1 else reference
    np.testing.assert_allclose(probabilities(predictions), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("model", "choice", "named", "code", "server_says"),
    [
        ("nope", {}, "model 'nope'", "NOT_FOUND", "Servable not found for request: Latest(nope)"),
        (
            MODEL,
            {"version": 9},
            "model 'taxi' version 9",
            "NOT_FOUND",
            "Servable not found for request: Specific(taxi, 9)",
        ),
        (
            MODEL,
            {"label": "beta"},
            "model 'taxi' label 'beta'",
            "INVALID_ARGUMENT",
            "Unrecognized servable version label: beta",
        ),
    ],
    ids=["model", "version", "label"],
)
def test_unknown_model_version_or_label_is_a_clear_error(
    serving: FakeServing,
    protocol: str,
    model: str,
    choice: dict,
    named: str,
    code: str,
    server_says: str,
) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=3)
    address = endpoint(serving, protocol)
    with (
        make_client(address, model, COLUMNS, use_grpc=protocol == "gRPC", **choice) as client,
        pytest.raises(ServingError) as error,
    ):
        client.predict(rows)
    message = str(error.value)
    assert address in message
    assert named in message
    assert server_says in message
    http_status = {"NOT_FOUND": "HTTP 404", "INVALID_ARGUMENT": "HTTP 400"}
    assert (http_status[code] if protocol == "REST" else code) in message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unreachable_server_is_named(protocol: str) -> None:
    port = _closed_port()
    address = f"http://127.0.0.1:{port}" if protocol == "REST" else f"127.0.0.1:{port}"
    rows = read_rows(TAXI_CSV, COLUMNS, limit=1)
    with (
        make_client(address, MODEL, COLUMNS, use_grpc=protocol == "gRPC", timeout=5) as client,
        pytest.raises(ServingError, match=re.escape(address)) as error,
    ):
        client.predict(rows)
    assert ("cannot reach" if protocol == "REST" else "UNAVAILABLE") in str(error.value)


def _post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_fake_speaks_tf_servings_rest_shapes(serving: FakeServing) -> None:
    with urllib.request.urlopen(f"{serving.rest_url}/v1/models/{MODEL}", timeout=10) as r:
        status = json.loads(r.read())
    assert [(s["version"], s["state"]) for s in status["model_version_status"]] == [
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]
    url = f"{serving.rest_url}/v1/models/{MODEL}/versions/1:predict"
    instance = {c.name: c.fill for c in COLUMNS}
    code, body = _post(
        url, {"signature_name": "serving_raw", "inputs": {k: [v] for k, v in instance.items()}}
    )
    assert (code, body) == (200, {"outputs": [[STUB]]})
    code, body = _post(
        url, {"signature_name": "serving_raw", "instances": [{**instance, "fare": "x"}]}
    )
    assert code == 400
    assert "fare" in body["error"]
    code, body = _post(url, {"signature_name": "nope", "instances": [instance]})
    assert code == 400
    assert body == {"error": 'Serving signature key "nope" not found.'}


@pytest.mark.parametrize(
    "how",
    [["--endpoint", "{rest}"], ["--grpc", "--endpoint", "{grpc}"], ["--endpoint", "grpc://{grpc}"]],
    ids=["rest", "grpc-flag", "grpc-scheme"],
)
def test_cli_predict_prints_each_rows_probability(
    serving: FakeServing,
    reference: np.ndarray,
    cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    how: list[str],
) -> None:
    args = [a.format(rest=serving.rest_url, grpc=serving.grpc_target) for a in how]
    code = cli(["predict", *args, "--csv", str(TAXI_CSV), "--limit", "12", "--batch-size", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    printed = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+(yes|no)$", out, re.MULTILINE)
    assert [int(n) for n, _, _ in printed] == list(range(1, 13))
    np.testing.assert_allclose([float(p) for _, p, _ in printed], reference[:12], atol=1e-6)
    assert [v for _, _, v in printed] == ["yes" if p >= 0.5 else "no" for p in reference[:12]]
    # The verdict column is the label's display name; the model name defaults to the config's.
    assert re.search(r"^\s+row\s+probability\s+big_tipper$", out, re.MULTILINE)
    big = sum(p >= 0.5 for p in reference[:12])
    assert f"12 rows of {TAXI_CSV} scored by" in out and "model 'taxi'" in out
    assert f": {big} called big_tipper (probability >= 0.5), mean probability" in out


def test_cli_predict_writes_json_and_csv(
    serving: FakeServing,
    reference: np.ndarray,
    cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["predict", "--endpoint", serving.rest_url, "--csv", str(TAXI_CSV), "--limit", "6"]
    assert cli([*args, "-o", "json", "--threshold", "0.3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["format"] == 1 and answer["protocol"] == "REST" and answer["task"] == "binary"
    assert answer["threshold"] == 0.3 and answer["model"] == "model 'taxi'"
    assert [r["row"] for r in answer["rows"]] == list(range(1, 7))
    probabilities = [r["probability"] for r in answer["rows"]]
    np.testing.assert_allclose(probabilities, reference[:6], atol=1e-6)
    assert [r["predicted"] for r in answer["rows"]] == [p >= 0.3 for p in probabilities]
    assert cli([*args, "-o", "csv"]) == 0
    written = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert written[0] == ["row", "predicted", "probability"]
    assert [int(r[0]) for r in written[1:]] == list(range(1, 7))
    assert [r[1] for r in written[1:]] == [str(int(p >= 0.5)) for p in reference[:6]]
    np.testing.assert_allclose([float(r[2]) for r in written[1:]], reference[:6], atol=1e-6)


def test_cli_predict_reports_a_server_error_and_exits_1(
    serving: FakeServing, cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(
        ["predict", "--endpoint", serving.rest_url, "--csv", str(TAXI_CSV), "--label", "beta"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("FAILED: REST ")
    assert "label 'beta'" in err
    assert "Unrecognized servable version label: beta" in err


def test_load_test_measures_concurrent_requests(serving: FakeServing) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=100)
    before = len(serving.calls)
    with make_client(serving.rest_url, MODEL, COLUMNS) as client:
        result = run_load_test(client, rows, concurrency=4, batch_size=8, duration=2.0)
    assert result.requests > 0
    assert result.errors == 0
    assert result.first_error is None
    # Every request the report counts reached the server, and no other did.
    assert len(serving.calls) - before == result.requests
    assert 1.9 <= result.seconds < 4
    assert result.rows_per_second == pytest.approx(result.qps * 8)
    p50, p95, p99, top = (result.percentile(p) for p in (50, 95, 99, 100))
    assert p50 is not None and p95 is not None and p99 is not None and top is not None
    assert 0 < p50 <= p95 <= p99 <= top == max(result.latencies_ms)
    report = format_result(result)
    assert f"requests {result.requests}, errors 0" in report
    assert "p50" in report and "p99" in report


def test_cli_loadtest_over_grpc_exits_0(
    serving: FakeServing, cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(serving.calls)
    code = cli(
        [
            *("loadtest", "--grpc", "--endpoint", serving.grpc_target, "--csv", str(TAXI_CSV)),
            *("--limit", "50", "--concurrency", "4", "--requests", "20", "--warmup", "0.3"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "loadtest gRPC" in out
    assert "requests 20, errors 0" in out
    assert len(serving.calls) - before > 20  # the warm-up's requests came first
    latencies = re.search(r"p50 ([\d.]+)\s+p95 ([\d.]+)\s+p99 ([\d.]+)\s+max ([\d.]+)", out)
    assert latencies is not None, out
    values = [float(v) for v in latencies.groups()]
    assert values == sorted(values)


def test_rest_requests_of_a_thread_share_one_kept_alive_connection(serving: FakeServing) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=40)
    before = serving.rest_connections
    with make_client(serving.rest_url, MODEL, COLUMNS) as client:
        result = run_load_test(
            client, rows, concurrency=3, batch_size=4, duration=None, requests=30
        )
    assert (result.requests, result.errors) == (30, 0)
    # One connection per worker thread, not one per request.
    assert serving.rest_connections - before == 3


def test_a_connection_the_server_closed_is_opened_again(serving: FakeServing) -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=4)
    with make_client(serving.rest_url, MODEL, COLUMNS) as client:
        first = predict_in_batches(client, rows, 4)
        # What an idle timeout on the server does: the socket goes away.
        client._local.connection.sock.shutdown(socket.SHUT_RDWR)
        assert predict_in_batches(client, rows, 4) == first


def test_cli_loadtest_as_json(
    serving: FakeServing, cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(
        [
            *("loadtest", "--endpoint", serving.rest_url, "--csv", str(TAXI_CSV), "-o", "json"),
            *("--limit", "20", "--concurrency", "2", "--requests", "10", "--batch-size", "4"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    answer = json.loads(captured.out)
    assert answer["format"] == 1 and answer["protocol"] == "REST"
    assert (answer["requests"], answer["errors"], answer["first_error"]) == (10, 0, None)
    assert (answer["concurrency"], answer["batch_size"]) == (2, 4)
    latency = answer["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert answer["rows_per_second"] == pytest.approx(answer["qps"] * 4)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cli_loadtest_reports_failures_and_exits_1(
    serving: FakeServing,
    protocol: str,
    cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    flag = ["--grpc"] if protocol == "gRPC" else []
    code = cli(
        [
            *("loadtest", *flag, "--endpoint", endpoint(serving, protocol), "--model", "nope"),
            *("--csv", str(TAXI_CSV), "--limit", "10", "--concurrency", "3", "--requests", "9"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "requests 9, errors 9" in captured.out
    assert "latency ms: p50 n/a" in captured.out
    assert re.search(r"first error: .*model 'nope'.*Latest\(nope\)", captured.out)
    assert "FAILED: 9 of 9 requests failed" in captured.err


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 50) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, 0)


def test_batches_go_round_robin_and_stay_full() -> None:
    rows = read_rows(TAXI_CSV, COLUMNS, limit=5)
    numbers = [[r.number for r in batch] for batch in batches(rows, 2)]
    assert numbers == [[1, 2], [3, 4], [5, 1]]


def _write(tmp_path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    path = tmp_path / "rows.csv"
    write_csv(path, rows, columns)
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("drop:company", r"rows\.csv: the header \(line 1\) lacks the model's column\(s\) company"),
        (
            "2:fare=abc",
            r"rows\.csv, row 2, column 'fare' \(float\): expected a number, found 'abc'",
        ),
        (
            "1:trip_seconds=1.5",
            r"row 1, column 'trip_seconds' \(int\): expected an integer, found '1.5'",
        ),
        ("2:pickup_latitude=nan", r"row 2, column 'pickup_latitude' .*finite number"),
        ("no-rows", r"rows\.csv: no data rows under the header"),
    ],
)
def test_bad_csv_errors_name_file_row_and_column(
    tmp_path: Path, change: str, expected: str
) -> None:
    rows = read_csv_rows(limit=3)
    columns = csv_columns()
    if change.startswith("drop:"):
        columns.remove(change.removeprefix("drop:"))
    elif change == "no-rows":
        rows = []
    else:
        number, assignment = change.split(":")
        column, value = assignment.split("=")
        rows[int(number) - 1] = {**rows[int(number) - 1], column: value}
    with pytest.raises(RowError, match=expected) as error:
        read_rows(_write(tmp_path, rows, columns), COLUMNS)
    assert str(tmp_path / "rows.csv") in str(error.value)


def test_a_short_row_and_a_missing_file_are_named(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    columns = csv_columns()
    path.write_text(",".join(columns) + "\n" + ",".join(["1"] * 3) + "\n")
    with pytest.raises(RowError, match=r"short\.csv, row 1: no cell for column '\w+'"):
        read_rows(path, COLUMNS)
    with pytest.raises(RowError, match=r"cannot read the CSV file .*absent\.csv"):
        read_rows(tmp_path / "absent.csv", COLUMNS)


def test_cli_bad_csv_exits_2_naming_the_problem(
    tmp_path: Path, cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = read_csv_rows(limit=2)
    rows[1] = {**rows[1], "trip_start_hour": "noon"}
    path = _write(tmp_path, rows, csv_columns())
    # No server is needed: the rows are checked before any request.
    code = cli(["predict", "--endpoint", "http://127.0.0.1:9", "--csv", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {path}, row 2, column 'trip_start_hour' (int)")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("check", "given", "expected"),
    [
        (rest_endpoint, "http://serving:8501/", "http://serving:8501"),
        (rest_endpoint, "https://gw.example/serving", "https://gw.example/serving"),
        (rest_endpoint, "serving:8501", "expected http://host:port, found 'serving:8501' (gRPC"),
        (rest_endpoint, "http://h:8501/v1/models/taxi", "adds /v1/models/<model>:predict itself"),
        (grpc_target, "grpc://serving:8500", "serving:8500"),
        (grpc_target, "serving:8500", "serving:8500"),
        (grpc_target, "http://serving:8500", "expected host:port, found the URL"),
        (grpc_target, "serving", "expected host:port such as localhost:8500, found 'serving'"),
    ],
)
def test_endpoints_are_checked(check: Callable[[str], str], given: str, expected: str) -> None:
    if expected.startswith(("http", "serving")):
        assert check(given) == expected
    else:
        with pytest.raises(TargetError, match=re.escape(expected)):
            check(given)


def test_a_version_and_a_label_together_are_refused() -> None:
    with pytest.raises(TargetError, match=r"by version \(3\) or by label \('stable'\), not both"):
        make_client("http://h:8501", MODEL, COLUMNS, version=3, label="stable")


def test_bad_requests_are_user_errors_and_a_failing_server_is_not() -> None:
    # The CLI prints a UserError as `error: ...` (exit 2), a ServingError as `FAILED: ...` (1).
    assert issubclass(TargetError, UserError) and issubclass(RowError, UserError)
    assert not issubclass(ServingError, UserError)


def test_cli_bad_endpoint_exits_2(
    cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["predict", "--endpoint", "serving:8501", "--csv", str(TAXI_CSV), "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: REST endpoint: expected http://host:port, found 'serving:8501'")


def test_multiclass_predictions_print_the_top_class_and_the_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    classes = ("Adelie", "Chinstrap", "Gentoo")
    predictions = [
        Prediction((0.9, 0.05, 0.05), classes),
        Prediction((0.1, 0.2, 0.7), classes),
        Prediction((0.6, 0.3, 0.1), classes),
    ]
    rows = [Row(n, {}) for n in (1, 2, 3)]
    tally = serving_cli._class_table(rows, predictions)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["row", "class", "probability"],
        ["1", "Adelie", "0.900000"],
        ["2", "Gentoo", "0.700000"],
        ["3", "Adelie", "0.600000"],
    ]
    assert tally == "top class Adelie 2, Gentoo 1"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_model_answering_nan_is_an_error_not_a_mean(
    tmp_path: Path, protocol: str, capsys: pytest.CaptureFixture[str], cli
) -> None:
    broken = write_constant_model(str(tmp_path / "nan"), float("nan"), COLUMNS)
    with FakeServing(MODEL, {1: broken}, {}) as fake:
        args = ["predict", "--endpoint", endpoint(fake, protocol), "--model", MODEL]
        args += ["--csv", str(TAXI_CSV), "--limit", "5"] + (
            ["--grpc"] if protocol == "gRPC" else []
        )
        assert cli(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("FAILED: "), err
    assert "non-finite probability (nan) for row 1" in err[0]
