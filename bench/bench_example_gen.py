"""Times TFX's CsvExampleGen executor against ours on the taxi CSV repeated `--scale` times.

Each executor runs alone in its own subprocess (in-memory Beam, as the
default run) on the same files with the same 2:1 hash split; the table gives
its wall time and the subprocess's peak RSS (Linux's exact maximum, from
wait4). Then both outputs are read back and compared, each record in its
deterministic serialization: as multisets per split, and in order.

Usage:
    python bench/bench_example_gen.py [--workdir DIR] [--scale 1,100] [--no-compare]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from bench.bench_local_run import scaled_data  # noqa: E402

EXECUTORS = {
    "CsvExampleGen (TFX)": "tfx.components.example_gen.csv_example_gen.executor.Executor",
    "ours": "components.example_gen.executor.Executor",
}
BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def run_executor(executor_path: str, data_root: str, out: str) -> None:
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import import_utils, proto_utils

    from components import private_apis

    private_apis.skip_in_process_beam_package()
    executor_class = import_utils.import_class_by_path(executor_path)
    examples = standard_artifacts.Examples()
    examples.uri = out
    split = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    pattern = example_gen_pb2.Input.Split(name="single_split", pattern="*.csv")
    properties = {
        "input_base": data_root,
        "input_config": proto_utils.proto_to_json(example_gen_pb2.Input(splits=[pattern])),
        "output_config": proto_utils.proto_to_json(example_gen_pb2.Output(split_config=split)),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
    }
    context = executor_class.Context(beam_pipeline_args=BEAM_ARGS)
    executor_class(context).Do({}, {"examples": [examples]}, properties)


def timed_child(script: str, executor_path: str, *args: str) -> dict:
    """Runs `script --child executor_path *args` in a subprocess: its wall time and peak RSS."""
    cmd = [sys.executable, script, "--child", executor_path, *args]
    started = time.monotonic()
    process = subprocess.Popen(cmd)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{executor_path} failed (status {status})")
    return {"wall_s": time.monotonic() - started, "peak_rss_mib": usage.ru_maxrss / 1024}


def _digest(out: Path, split: str) -> dict:
    """Records, and sha256s over them (each re-serialized deterministically) in order and sorted."""
    import tensorflow as tf

    files = sorted(glob.glob(str(out / f"Split-{split}" / "*")))
    in_order = hashlib.sha256()
    each = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        serialized = example.SerializeToString(deterministic=True)
        in_order.update(serialized)
        each.append(hashlib.sha256(serialized).digest())
    as_set = hashlib.sha256(b"".join(sorted(each)))
    return {"records": len(each), "in_order": in_order.hexdigest(), "sorted": as_set.hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--scale", default="1,100")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_executor(*args.child)
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-example-gen-"))
    results = {}
    for scale in [int(s) for s in args.scale.split(",")]:
        data_root = scaled_data(workdir, scale)
        rows = {}
        for name, executor_path in EXECUTORS.items():
            out = workdir / f"{scale}x" / name.split()[0]
            rows[name] = timed_child(__file__, executor_path, data_root, str(out))
            if not args.no_compare:
                rows[name]["splits"] = {s: _digest(out, s) for s in ("train", "eval")}
        results[scale] = rows
        print(f"\n### {scale}x ({15000 * scale:,} rows)\n")
        print("| executor | wall time | peak RSS | train / eval records |")
        print("|---|---:|---:|---:|")
        for name, row in rows.items():
            splits = row.get("splits")
            counts = (
                f"{splits['train']['records']:,} / {splits['eval']['records']:,}" if splits else "-"
            )
            print(f"| {name} | {row['wall_s']:.1f} s | {row['peak_rss_mib']:,.0f} MiB | {counts} |")
        if not args.no_compare:
            checks = (("sorted", "the same records"), ("in_order", "them in the same order"))
            for key, what in checks:
                found = {(s, row["splits"][s][key]) for row in rows.values() for s in row["splits"]}
                print(f"\nBoth splits hold {what}: {'yes' if len(found) == 2 else 'no'}")
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
