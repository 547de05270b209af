"""`pipeline init`: column kinds and label tasks from TFDV statistics, the YAML and the schema.

Every case runs TFDV on real CSV files: frames the tests write (40 rows,
one column per rule), the palmerpenguins CSV (multiclass, numbers with NA),
the IMDB sample of the tfx wheel (text, binary) and the Chicago Taxi sample
(kinds only). Statistics are shared through module-scoped fixtures.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
import statistics
import urllib.parse
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.errors import UserError
from components.typed import build
from components.workload import (
    BINARY,
    CATEGORICAL,
    MULTICLASS,
    NUMERIC,
    TEXT,
    Workload,
    check_against_schema,
)
from pipeline import config_schema
from pipeline.config import load_config
from pipeline.init import data, infer, write
from pipeline.init.command import SCHEMA_FILE, InitResult, run_init
from pipeline.init.errors import (
    CsvFileError,
    DataFolderError,
    HeaderMismatchError,
    LabelError,
    OutputExistsError,
    PipelineNameError,
)

ROWS = 40
TFX = importlib.resources.files("tfx") / "examples"
PENGUINS_CSV = importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"
IMDB_TXT = TFX / "imdb" / "data" / "imdb_small_with_labels.txt"
TAXI_DIR = TFX / "chicago_taxi_pipeline" / "data" / "simple"
WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy",
    "dog", "while", "rain", "falls", "softly", "on", "old", "roofs",
]  # fmt: skip


def _unit_rows() -> tuple[list[str], list[list[str]]]:
    """One column per inference rule, deterministic, ROWS rows."""
    columns = [
        "rowid", "uid", "empty", "na_only", "const", "num_na", "mixed_few", "mixed_many",
        "cab", "review", "flt", "flt_gaps", "count", "small_int", "bin_int", "bin_str",
        "flag", "multi",
    ]  # fmt: skip
    rows = []
    for i in range(ROWS):
        review = " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 5, 7, 11, 13, 2, 4))
        rows.append(
            [
                str(i),
                str(uuid.UUID(int=i * 7919 + 1)),
                "",
                "NA",
                "k",
                "NA" if i % 7 == 0 else f"{10 + (i * 13) % 37}.5",
                "oops" if i % 9 == 0 else str(i % 3),
                "unknown" if i % 8 == 0 else str(100 + i),
                ["Flash Cab", "Yellow Cab", "Blue Ribbon Taxi"][i % 3],
                f"{review} {i}",
                f"{(i * 37) % 101 / 10:.1f}",
                "" if i % 10 == 0 else f"{i / 4:.2f}",
                str((i * 37) % 31),
                str(i % 5),
                "1" if i % 3 == 0 else "0",
                "spam" if i % 4 == 0 else "ham",
                "True" if i % 5 == 0 else "False",
                "rare" if i == 3 else "abc"[i % 3],
            ]
        )
    return columns, rows


def _write_csv(path: Path, columns: list[str], rows: list[list[str]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(columns)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig" if bom else "utf-8")


def _anomalies(folder: data.CsvFolder, schema_path: str) -> dict[str, set[str]]:
    """Anomaly types per feature of `folder`'s data against the written schema.

    The statistics are computed with the schema, as the pipeline's StatisticsGen
    does; validated in the TRAINING environment and with none given.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    schema = tfdv.load_schema_text(schema_path)
    stats = tfdv.generate_statistics_from_csv(
        data_location=folder.pattern, stats_options=tfdv.StatsOptions(schema=schema)
    )
    found: dict[str, set[str]] = {}
    for environment in (None, "TRAINING"):
        anomalies = tfdv.validate_statistics(stats, schema, environment=environment)
        for name, info in anomalies.anomaly_info.items():
            found.setdefault(name, set()).update(
                anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason
            )
    return found


def _model(result: InitResult) -> Workload:
    """The written config's model section, built and validated as the pipeline loads it."""
    tree = yaml.safe_load(Path(result.config_path).read_text())
    workload = build(Workload, tree["model"], "model.")
    workload.validate()
    return workload


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unit") / "unit data"
    columns, rows = _unit_rows()
    # A README the scan skips.
    _write_csv(root / "frame.csv", columns, rows)
    (root / "README.md").write_text("not data\n")
    return root


@pytest.fixture(scope="module")
def unit(unit_dir: Path) -> dict[str, infer.ColumnSummary]:
    folder = data.scan(str(unit_dir))
    return infer.summarize(data.compute_statistics(folder), folder.columns)


@pytest.fixture(scope="module")
def unit_init(unit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    output = tmp_path_factory.mktemp("unit_out") / "pipeline.yaml"
    return run_init(str(unit_dir), "bin_str", output=str(output))


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    root = tmp_path_factory.mktemp("penguins")
    with importlib.resources.as_file(PENGUINS_CSV) as csv_path:
        shutil.copy(csv_path, root / "penguins.csv")
    output = tmp_path_factory.mktemp("penguins_out") / "penguins.yaml"
    return run_init(str(root), "species", output=str(output))


@pytest.fixture(scope="module")
def imdb(tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    root = tmp_path_factory.mktemp("imdb")
    with importlib.resources.as_file(IMDB_TXT) as txt:
        shutil.copy(txt, root / "reviews.csv")
    output = tmp_path_factory.mktemp("imdb_out") / "imdb.yaml"
    return run_init(str(root), "label", output=str(output), name="reviews")


@pytest.fixture(scope="module")
def taxi() -> dict[str, infer.ColumnSummary]:
    with importlib.resources.as_file(TAXI_DIR) as root:
        folder = data.scan(str(root))
        return infer.summarize(data.compute_statistics(folder), folder.columns)


def _two_files(root: Path, labels: list[str]) -> Path:
    """Two CSV files of 250 rows each: x (numbers) and the label y cycling through `labels`."""
    for part in (0, 1):
        rows = [[f"{(i * 7) % 50 / 3:.2f}", labels[i % len(labels)]] for i in range(250)]
        _write_csv(root / f"part-{part}.csv", ["x", "y"], rows)
    return root


@pytest.fixture(scope="module")
def binary_init(tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    root = _two_files(tmp_path_factory.mktemp("binary"), ["0", "1", "1"])
    return run_init(str(root), "y", output=str(root.parent / "binary_out" / "pipeline.yaml"))


# ----------------------------------------------------------------------------- the data folder


def test_scan_reads_only_csv(unit_dir: Path) -> None:
    folder = data.scan(str(unit_dir))
    assert folder.files == (str(unit_dir / "frame.csv"),)
    assert folder.other_files == ("README.md",)
    assert not folder.byte_order_mark
    assert folder.columns[0] == "rowid"


def test_scan_sees_a_byte_order_mark_and_strips_it_from_the_names(tmp_path: Path) -> None:
    _write_csv(tmp_path / "data.csv", ["rowid", "y"], [["1", "0"]], bom=True)
    folder = data.scan(str(tmp_path))
    assert folder.byte_order_mark and folder.columns[0] == "rowid"


def test_statistics_name_the_first_column(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    assert next(iter(unit)) == "rowid"
    assert unit["rowid"].rows == ROWS


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match=r"data folder .*nowhere does not exist"):
        data.scan(str(tmp_path / "nowhere"))


def test_data_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(DataFolderError, match="is a file; give the folder"):
        data.scan(str(tmp_path / "a.csv"))


def test_no_csv_names_what_the_folder_holds(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# data\n")
    (tmp_path / "data.txt").write_text("x,y\n1,2\n")
    with pytest.raises(DataFolderError) as error:
        data.scan(str(tmp_path))
    assert str(error.value) == f"no CSV file in {tmp_path}: found README.md, data.txt but no *.csv"


def test_no_csv_in_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match="it is empty"):
        data.scan(str(tmp_path))


def test_file_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.csv").write_bytes("name,city\na,Paris\nb,Montréal\n".encode("latin-1"))
    with pytest.raises(CsvFileError) as error:
        data.scan(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path / 'latin1.csv'} is not UTF-8 text: line 3 has byte 0xe9 at column 8; "
        "save the file as UTF-8"
    )


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CsvFileError, match=r"empty\.csv is empty: a CSV file starts with a header"):
        data.scan(str(tmp_path))


def test_folder_named_like_a_csv(tmp_path: Path) -> None:
    (tmp_path / "nested.csv").mkdir()
    with pytest.raises(CsvFileError, match=r"nested\.csv is a folder, not a CSV file"):
        data.scan(str(tmp_path))


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.csv"
    path.write_text("x\n1\n")
    # chmod 0 does not stop root: deny the open itself, so that the test holds for any user.
    real_open = open

    def deny(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(CsvFileError) as error:
        data.scan(str(tmp_path))
    assert str(error.value) == f"cannot read {path}: permission denied"


def test_header_with_an_unnamed_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,,z\n1,2,3\n")
    with pytest.raises(CsvFileError, match="column 2 of the header has no name"):
        data.scan(str(tmp_path))


def test_different_headers_name_both_files_and_the_columns(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", ["x", "y", "z"], [["1", "2", "3"]])
    _write_csv(tmp_path / "b.csv", ["x", "y", "w"], [["1", "2", "3"]])
    with pytest.raises(HeaderMismatchError) as error:
        data.scan(str(tmp_path))
    assert str(error.value) == (
        f"the CSV files in {tmp_path} have different headers: b.csv has w that a.csv lacks; "
        "a.csv has z that b.csv lacks (every file needs the same header)"
    )


def test_same_columns_in_another_order(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", ["x", "y"], [["1", "2"]])
    _write_csv(tmp_path / "b.csv", ["y", "x"], [["1", "2"]])
    with pytest.raises(HeaderMismatchError, match="order the same columns differently"):
        data.scan(str(tmp_path))


def test_header_without_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n")
    with pytest.raises(DataFolderError, match=r"have a header but no data rows: a\.csv"):
        data.compute_statistics(data.scan(str(tmp_path)))


# ----------------------------------------------------------------------------- column kinds


def _decide(summaries: dict[str, infer.ColumnSummary], name: str) -> infer.ColumnDecision:
    return infer.infer_column(summaries[name])


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("empty", "empty: no value in 40 rows"),
        ("na_only", "empty: only NA in 40 rows"),
        ("const", "constant: 'k' in every row"),
        ("rowid", "id-like, every value distinct (40 integers)"),
        ("uid", "id-like, every value distinct (40 strings without spaces)"),
    ],
)
def test_ignored_columns_carry_their_reason(
    unit: dict[str, infer.ColumnSummary], column: str, reason: str
) -> None:
    decision = _decide(unit, column)
    assert decision.ignored
    assert decision.note == reason


def test_numeric_looking_strings_are_numeric_filled_with_their_median(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    _, rows = _unit_rows()
    numbers = [float(r[5]) for r in rows if r[5] != "NA"]
    decision = _decide(unit, "num_na")
    assert unit["num_na"].dtype == "string"
    assert decision.kind == NUMERIC
    assert decision.params == {"fill": statistics.median(numbers)}
    assert decision.note.startswith("numbers, NA for missing (6 of 40), parsed in the graph")


def test_numbers_with_junk_and_few_values_are_a_category(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    decision = _decide(unit, "mixed_few")
    assert decision.kind == CATEGORICAL
    assert decision.params == {"vocab_size": 4, "oov_buckets": 1}
    assert "'oops' (5 of 40 rows)" in decision.note


def test_numbers_with_junk_and_many_values_are_ignored_naming_the_junk(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    decision = _decide(unit, "mixed_many")
    assert decision.ignored
    assert decision.note == (
        "mostly numbers, but 'unknown' in 5 of 40 rows: fix those cells to use it as numeric"
    )


def test_short_labels_with_spaces_are_categorical_not_text(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    decision = _decide(unit, "cab")
    assert decision.kind == CATEGORICAL
    assert decision.params == {"vocab_size": 3, "oov_buckets": 1}


def test_long_distinct_strings_with_spaces_are_text(unit: dict[str, infer.ColumnSummary]) -> None:
    decision = _decide(unit, "review")
    assert decision.kind == TEXT
    # 2 x 41 characters / 6 = 14 tokens, raised to the minimum 32; small data: 1000
    # words, and a bag of words rather than averaged embeddings.
    assert decision.params == {
        "max_tokens": 32,
        "vocab_size": 1000,
        "oov_buckets": 1,
        "encoding": "bag_of_words",
    }


def test_floats_are_numeric_filled_with_the_median_only_when_missing(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    assert _decide(unit, "flt").params == {"fill": 0.0}
    _, rows = _unit_rows()
    present = [float(r[11]) for r in rows if r[11]]
    gaps = _decide(unit, "flt_gaps")
    assert gaps.kind == NUMERIC
    assert gaps.params["fill"] == pytest.approx(statistics.median(present), abs=0.5)
    assert gaps.note == "decimal numbers; 4 of 40 empty: the median fills them"


def test_integers_with_many_values_are_numeric_with_few_categorical(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    assert unit["count"].distinct == 31
    assert _decide(unit, "count").kind == NUMERIC
    small = _decide(unit, "small_int")
    assert small.kind == CATEGORICAL
    assert small.params == {"vocab_size": 5, "oov_buckets": 1}


def test_slice_by_takes_the_categorical_feature_with_fewest_values(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    decisions = {n: infer.infer_column(s) for n, s in unit.items() if n != "multi"}
    # bin_int, bin_str and flag have 2 values; bin_int comes first in the header.
    assert infer.slice_column(decisions) == "bin_int"


def test_taxi_kinds(taxi: dict[str, infer.ColumnSummary]) -> None:
    kinds = {name: infer.infer_column(s).kind for name, s in taxi.items()}
    assert kinds["trip_start_hour"] == CATEGORICAL
    assert kinds["payment_type"] == CATEGORICAL
    assert kinds["company"] == CATEGORICAL
    assert kinds["fare"] == NUMERIC
    assert kinds["trip_start_timestamp"] in (NUMERIC, infer.IGNORED)
    assert kinds["pickup_census_tract"] == infer.IGNORED
    dropoff = infer.infer_column(taxi["dropoff_latitude"])
    assert dropoff.params == {"fill": pytest.approx(41.89, abs=0.01)}


def test_taxi_tips_is_a_quantity_not_a_label(taxi: dict[str, infer.ColumnSummary]) -> None:
    with pytest.raises(LabelError, match=r"label 'tips' holds decimal numbers with \d+ distinct"):
        infer.infer_label(taxi["tips"], files=1)


# ----------------------------------------------------------------------------- labels


def test_binary_integer_label_is_positive_1(unit: dict[str, infer.ColumnSummary]) -> None:
    label = infer.infer_label(unit["bin_int"], files=1)
    assert (label.task, label.positive) == (BINARY, "1")
    assert label.classes == (("0", 26), ("1", 14))
    assert infer.thresholds(label) == infer.Thresholds("auc", 0.7, 0.01)


def test_binary_string_label_is_positive_for_the_minority(
    unit: dict[str, infer.ColumnSummary],
) -> None:
    label = infer.infer_label(unit["bin_str"], files=1)
    assert (label.task, label.positive, label.positive_reason) == (
        BINARY,
        "spam",
        "the rarer class",
    )


def test_binary_true_false_label_is_positive_true(unit: dict[str, infer.ColumnSummary]) -> None:
    assert infer.infer_label(unit["flag"], files=1).positive == "True"


def test_multiclass_counts_a_rare_class(unit: dict[str, infer.ColumnSummary]) -> None:
    label = infer.infer_label(unit["multi"], files=1)
    assert label.task == MULTICLASS
    assert dict(label.classes) == {"a": 13, "b": 13, "c": 13, "rare": 1}
    # Majority 13/40: halfway to 1.0 is 0.6625, rounded down.
    assert infer.thresholds(label) == infer.Thresholds("accuracy", 0.66, 0.02)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("empty", "label 'empty' is empty in 1 file, 40 rows: a model needs labelled rows"),
        (
            "const",
            "label 'const' has a single value 'k' in 1 file, 40 rows: "
            "a model needs at least two classes",
        ),
        ("count", "label 'count' holds integers with 31 distinct values in 1 file, 40 rows"),
        ("uid", "label 'uid' has 40 distinct values in 1 file, 40 rows, fewer than two rows"),
    ],
)
def test_unusable_labels(unit: dict[str, infer.ColumnSummary], column: str, message: str) -> None:
    with pytest.raises(LabelError) as error:
        infer.infer_label(unit[column], files=1)
    assert str(error.value).startswith(message)


# ----------------------------------------------------------------------------- run_init


def test_penguins_config(penguins: InitResult) -> None:
    workload = _model(penguins)
    assert workload.label.column == "species"
    assert workload.task == MULTICLASS
    assert penguins.label.classes == (("Adelie", 152), ("Gentoo", 124), ("Chinstrap", 68))
    assert list(workload.features) == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    assert workload.features["bill_length_mm"].kind == NUMERIC
    assert workload.features["bill_length_mm"].fill == 44.45
    assert workload.features["island"].vocab_size == 3
    assert workload.slice_by == ("island",)
    tree = yaml.safe_load(Path(penguins.config_path).read_text())
    assert tree["evaluator"] == {"metric": "accuracy", "min_value": 0.72, "max_drop": 0.02}
    assert tree["data"] == {
        "root": penguins.data_root,
        "schema_file": str(Path(penguins.config_path).parent / SCHEMA_FILE),
    }
    assert tree["run"] == {
        "pipeline_name": penguins.pipeline_name,
        "pipeline_root": f"build/{penguins.pipeline_name}/pipeline_root",
    }
    assert tree["registry"]["model_name"] == penguins.pipeline_name
    assert penguins.rows == 344


def test_penguins_comments_explain_the_choices(penguins: InitResult) -> None:
    header, text = Path(penguins.config_path).read_text().split("\n", 1)
    assert header.startswith(config_schema.HEADER_PREFIX)
    assert text.startswith(
        f"# Written by `python -m pipeline init` on {penguins.date} from 344 rows of "
        f"1 CSV file in {penguins.data_root}.\n"
    )
    assert "# 3 classes: Adelie 152, Gentoo 124, Chinstrap 68" in text
    assert "numbers, NA for missing (2 of 344), parsed in the graph" in text
    assert "halfway between always answering Adelie (0.44) and 1.0" in text


@pytest.mark.parametrize("fixture", ["penguins", "imdb", "unit_init"])
def test_written_config_loads_as_a_pipeline_config(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    result: InitResult = request.getfixturevalue(fixture)
    config = load_config(result.config_path)
    assert config.data.root == result.data_root
    assert config.data.schema_file == result.schema_path
    assert config.model.task == result.label.task
    assert config.evaluator.metric == result.thresholds.metric
    assert config.registry.model_name == result.pipeline_name
    # The first line points editors at the packaged schema, and the file passes it.
    first = Path(result.config_path).read_text().splitlines()[0]
    assert first.startswith(config_schema.HEADER_PREFIX)
    uri = first[len(config_schema.HEADER_PREFIX) :]
    assert uri.startswith("file:///")
    target = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    assert target == config_schema.SCHEMA_FILE.resolve()
    tree = yaml.safe_load(Path(result.config_path).read_text())
    jsonschema.validate(tree, json.loads(target.read_text()))


def test_imdb_config(imdb: InitResult) -> None:
    workload = _model(imdb)
    assert (workload.task, workload.label.positive) == (BINARY, "1")
    assert list(workload.features) == ["text"]
    text = workload.features["text"]
    assert (text.kind, text.max_tokens, text.encoding) == (TEXT, 512, "bag_of_words")
    assert workload.slice_by == ()
    tree = yaml.safe_load(Path(imdb.config_path).read_text())
    assert tree["evaluator"] == {"metric": "auc", "min_value": 0.7, "max_drop": 0.01}
    assert tree["run"]["pipeline_name"] == "reviews"


def test_unit_config_lists_ignored_columns_and_warnings(unit_init: InitResult) -> None:
    workload = _model(unit_init)
    text = Path(unit_init.config_path).read_text()
    assert "  #   rowid: id-like, every value distinct (40 integers)" in text
    assert "  #   empty: empty: no value in 40 rows" in text
    ignored = {c.name for c in unit_init.ignored}
    assert ignored == {"rowid", "uid", "empty", "na_only", "const", "mixed_many"}
    assert not ignored & set(workload.features)
    assert "bin_str" not in workload.features
    assert workload.label.positive == "spam"
    assert "# Warning: " in text and "README.md" in text and "reads only its *.csv" in text


@pytest.mark.parametrize("fixture", ["penguins", "imdb", "unit_init", "binary_init"])
def test_features_agree_with_the_written_schema(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    import tensorflow_data_validation as tfdv

    result: InitResult = request.getfixturevalue(fixture)
    schema = tfdv.load_schema_text(result.schema_path)
    # Every column of the data, ignored ones too.
    assert {f.name for f in schema.feature} == {c.name for c in result.columns} | {
        result.label.column
    }
    check_against_schema(_model(result), schema)


@pytest.mark.parametrize("fixture", ["penguins", "imdb", "binary_init"])
def test_written_schema_passes_validation_of_the_same_data(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    result: InitResult = request.getfixturevalue(fixture)
    assert _anomalies(data.scan(result.data_root), result.schema_path) == {}


def test_schema_curation(binary_init: InitResult, imdb: InitResult) -> None:
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(binary_init.schema_path)
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    label = tfdv.get_feature(schema, "y")
    assert list(label.not_in_environment) == ["SERVING"]
    assert label.int_domain.is_categorical
    assert (label.unique_constraints.min, label.unique_constraints.max) == (2, 2)
    assert not tfdv.get_feature(schema, "x").not_in_environment
    text = tfdv.get_feature(tfdv.load_schema_text(imdb.schema_path), "text")
    assert text.WhichOneof("domain_info") is None
    assert (
        Path(binary_init.schema_path)
        .read_text()
        .startswith(
            f"# Curated schema of the CSV files in {binary_init.data_root} (raw columns).\n"
        )
    )


def test_multiclass_schema_sets_both_unique_bounds(penguins: InitResult) -> None:
    import tensorflow_data_validation as tfdv

    label = tfdv.get_feature(tfdv.load_schema_text(penguins.schema_path), "species")
    assert (label.unique_constraints.min, label.unique_constraints.max) == (2, data.TOP_VALUES)
    assert label.WhichOneof("domain_info") == "domain"


def test_one_class_label_refused_and_flagged_by_the_schema(
    binary_init: InitResult, tmp_path: Path
) -> None:
    root = _two_files(tmp_path / "one class", ["1"])
    with pytest.raises(LabelError) as error:
        run_init(str(root), "y", output=str(tmp_path / "out.yaml"))
    assert str(error.value) == (
        "label 'y' has a single value '1' in 2 files, 500 rows: a model needs at least two classes"
    )
    assert not (tmp_path / "out.yaml").exists()
    # The binary schema's unique_constraints catch such data at validation time.
    found = _anomalies(data.scan(str(root)), binary_init.schema_path)
    assert found == {"y": {"FEATURE_TYPE_LOW_UNIQUE"}}


def test_missing_label_lists_the_columns(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d" / "a.csv", ["x", "z"], [["1", "2"]])
    with pytest.raises(LabelError) as error:
        run_init(str(tmp_path / "d"), "y", output=str(tmp_path / "p.yaml"))
    assert str(error.value) == (
        f"label 'y' is not a column of the CSV files in {tmp_path / 'd'}; columns: x, z"
    )


def test_existing_output_needs_force(binary_init: InitResult) -> None:
    before = Path(binary_init.config_path).read_text()
    with pytest.raises(OutputExistsError) as error:
        run_init(binary_init.data_root, "y", output=binary_init.config_path)
    assert str(error.value) == f"{binary_init.config_path} exists; pass --force to overwrite it"
    assert Path(binary_init.config_path).read_text() == before


def test_existing_schema_needs_force(tmp_path: Path) -> None:
    (tmp_path / SCHEMA_FILE).write_text("")
    with pytest.raises(OutputExistsError, match=rf"{SCHEMA_FILE} exists; pass --force"):
        run_init(str(tmp_path), "y", output=str(tmp_path / "new.yaml"))


def test_force_overwrites(binary_init: InitResult) -> None:
    Path(binary_init.schema_path).write_text("stale")
    result = run_init(binary_init.data_root, "y", output=binary_init.config_path, force=True)
    assert Path(result.schema_path).read_text().startswith("# Curated schema")
    assert result.label.positive == "1"


def test_bad_name(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d" / "a.csv", ["x", "y"], [["1", "2"]])
    # The CLI prints any UserError as one line and exits 2.
    with pytest.raises(UserError) as error:
        run_init(str(tmp_path / "d"), "y", output=str(tmp_path / "p.yaml"), name="my model")
    assert isinstance(error.value, PipelineNameError)
    assert str(error.value) == (
        "--name 'my model': a pipeline name is letters, digits, '-' and '_' only"
    )


def test_default_name_from_the_folder(unit_init: InitResult) -> None:
    assert unit_init.pipeline_name == "unit_data"


@pytest.mark.parametrize("value", ["island", "yes", "on", "null", "1", "Flash Cab", "a: b", "é"])
def test_yaml_scalars_read_back(value: str) -> None:
    assert yaml.safe_load(f"key: {write.scalar(value)}") == {"key": value}


def test_a_byte_order_mark_is_refused_as_run_would(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "data.csv", ["x", "y"], [[str(i), str(i % 2)] for i in range(40)], bom=True
    )
    with pytest.raises(CsvFileError, match="starts with a UTF-8 byte order mark"):
        run_init(str(tmp_path), "y", output=str(tmp_path / "out" / "pipeline.yaml"))


def test_rows_without_a_label_are_refused(tmp_path: Path) -> None:
    rows = [[f"{i % 7}.5", "" if i in (3, 7) else str(i % 2)] for i in range(40)]
    _write_csv(tmp_path / "data.csv", ["x", "y"], rows)
    with pytest.raises(LabelError, match="2 of 40 rows have no label 'y'"):
        run_init(str(tmp_path), "y", output=str(tmp_path / "out" / "pipeline.yaml"))
