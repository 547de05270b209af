"""Times TFX's StatisticsGen executor against ours on the taxi examples repeated `--scale` times.

The examples are the taxi CSV repeated, written by our ExampleGen executor
with the default 2:1 split (not timed), and the statistics are computed with
the curated taxi schema, as the default run computes them. Each executor
runs alone in its own subprocess (in-memory Beam, as the default run); the
table gives its wall time and the subprocess's peak RSS (Linux's exact
maximum, from wait4). Then both outputs are read back and compared: the
same features with the same statistics, means and standard deviations to
nine significant digits (Beam sums floats in an order of its own).

Usage:
    python bench/bench_statistics_gen.py [--workdir DIR] [--scale 1,100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from bench.bench_example_gen import BEAM_ARGS, timed_child  # noqa: E402
from bench.bench_example_gen import run_executor as write_examples  # noqa: E402
from bench.bench_local_run import scaled_data  # noqa: E402

EXECUTORS = {
    "StatisticsGen (TFX)": "tfx.components.statistics_gen.executor.Executor",
    "ours": "components.statistics_gen.executor.Executor",
}
SCHEMA = REPO / "models" / "taxi" / "schema.pbtxt"
SPLITS = ("train", "eval")


def _run_child(executor_path: str, examples_uri: str, out: str) -> None:
    from tfx.types import standard_artifacts
    from tfx.utils import import_utils

    from components import private_apis

    private_apis.skip_in_process_beam_package()
    executor_class = import_utils.import_class_by_path(executor_path)
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = json.dumps(list(SPLITS))
    schema = standard_artifacts.Schema()
    schema.uri = str(Path(examples_uri).parent / "schema")
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = out
    context = executor_class.Context(beam_pipeline_args=BEAM_ARGS)
    executor_class(context).Do(
        {"examples": [examples], "schema": [schema]},
        {"statistics": [statistics]},
        {"exclude_splits": "[]"},
    )


def _normalised(out: Path, split: str) -> dict[str, Any]:
    """The split's statistics as a dict, features in path order, float sums to 9 digits."""
    from google.protobuf import json_format
    from tensorflow_metadata.proto.v0 import statistics_pb2

    proto = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (out / f"Split-{split}" / "FeatureStats.pb").read_bytes()
    )
    for dataset in proto.datasets:
        for feature in dataset.features:
            if feature.HasField("num_stats"):
                feature.num_stats.mean = float(f"{feature.num_stats.mean:.9g}")
                feature.num_stats.std_dev = float(f"{feature.num_stats.std_dev:.9g}")
        dataset.features.sort(key=lambda feature: tuple(feature.path.step))
    return json_format.MessageToDict(proto)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--scale", default="1,100")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_child(*args.child)
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-statistics-gen-"))
    results = {}
    for scale in [int(s) for s in args.scale.split(",")]:
        examples = workdir / f"{scale}x" / "examples"
        # A Schema artifact's folder holds the schema file alone.
        (examples.parent / "schema").mkdir(parents=True, exist_ok=True)
        (examples.parent / "schema" / "schema.pbtxt").write_text(SCHEMA.read_text())
        if not (examples / "Split-train").exists():
            write_examples(
                "components.example_gen.executor.Executor",
                scaled_data(workdir, scale),
                str(examples),
            )
        rows = {}
        outputs = {}
        for name, executor_path in EXECUTORS.items():
            out = workdir / f"{scale}x" / name.split()[0]
            rows[name] = timed_child(__file__, executor_path, str(examples), str(out))
            outputs[name] = {split: _normalised(out, split) for split in SPLITS}
        same = len({json.dumps(o, sort_keys=True) for o in outputs.values()}) == 1
        results[scale] = {"executors": rows, "same_statistics": same}
        print(f"\n### {scale}x ({15000 * scale:,} rows)\n")
        print("| executor | wall time | peak RSS |")
        print("|---|---:|---:|")
        for name, row in rows.items():
            print(f"| {name} | {row['wall_s']:.1f} s | {row['peak_rss_mib']:,.0f} MiB |")
        print(f"\nThe same statistics in both splits: {'yes' if same else 'no'}")
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
