"""One training worker: `python -m components.training.worker --fn-args URI --run-fn PATH`.

The Trainer's launchers start this in every worker process or pod. It reads
the Trainer's FnArgs (written by the Trainer step to a file every worker can
read), sets TF_CONFIG when the launcher passed the worker addresses, and
calls `run_fn` exactly as TFX would in-process.

With `--hosts`, TF_CONFIG is derived from the worker's index, read from the
variable named by `--index-env`: a Kubernetes Indexed Job gives each pod its
completion index there (JOB_COMPLETION_INDEX), and every pod gets the same
command. Without it, TF_CONFIG comes from the environment as set by the
launcher (local processes, the Training Operator's TFJob).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from components import environment, process
from components.training.cluster import TF_CONFIG, worker_cluster
from components.training.manifests import EXPECTED_GPUS_ENV

# FnArgs fields that travel to the workers; `data_accessor` holds functions
# bound to the Trainer's process, and our run_fn reads files directly.
FN_ARGS_FIELDS = (
    "working_dir",
    "train_files",
    "eval_files",
    "train_steps",
    "eval_steps",
    "schema_path",
    "schema_file",
    "transform_graph_path",
    "transform_output",
    "serving_model_dir",
    "eval_model_dir",
    "model_run_dir",
    "base_model",
    "hyperparameters",
    "custom_config",
)


def dump_fn_args(fn_args: Any) -> str:
    """FnArgs as JSON, for the workers."""
    return json.dumps({name: getattr(fn_args, name) for name in FN_ARGS_FIELDS}, sort_keys=True)


def load_fn_args(text: str) -> Any:
    """Rebuilds TFX FnArgs from `dump_fn_args` JSON.

    Raises:
        ValueError: The text is not such JSON.
    """
    from tfx import v1 as tfx

    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"trainer worker: FnArgs file is not JSON: {e}") from None
    unknown = sorted(set(values) - set(FN_ARGS_FIELDS)) if isinstance(values, dict) else None
    if unknown is None or unknown:
        raise ValueError(f"trainer worker: FnArgs file has unknown fields {unknown}")
    return tfx.components.FnArgs(**values)


def import_run_fn(path: str) -> Callable[[Any], None]:
    """Imports `package.module.function`.

    Raises:
        ModelPackageError: The path does not name an importable callable
            (also a ValueError).
    """
    from components.model_package import import_function

    return import_function(path, "run_fn")


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m components.training.worker")
    parser.add_argument("--fn-args", required=True, help="FnArgs JSON file (local, gs://, s3://)")
    parser.add_argument("--run-fn", required=True, help="dotted path of run_fn")
    parser.add_argument(
        "--hosts", default="", help="comma-separated host:port of all workers, in index order"
    )
    parser.add_argument(
        "--index-env",
        default="JOB_COMPLETION_INDEX",
        help="variable holding this worker's index (with --hosts)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    environment.prepare()
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    if args.hosts:
        raw_index = os.environ.get(args.index_env, "")
        if not raw_index.isdigit():
            raise SystemExit(
                f"trainer worker: --hosts needs this worker's index in ${args.index_env}, "
                f"got {raw_index!r}"
            )
        hosts = [h for h in args.hosts.split(",") if h]
        os.environ[TF_CONFIG] = worker_cluster(hosts, int(raw_index)).to_json()
    import tensorflow as tf  # after TF_CONFIG is set; importing does not start the runtime

    with tf.io.gfile.GFile(args.fn_args) as f:
        fn_args = load_fn_args(f.read())
    run_fn = import_run_fn(args.run_fn)
    expected = int(os.environ.get(EXPECTED_GPUS_ENV) or 0)
    visible = len(tf.config.list_physical_devices("GPU"))
    if visible < expected:
        raise SystemExit(
            f"trainer worker: the pod requests {expected} GPU(s) but TensorFlow sees {visible}: "
            "the image has no GPU build of TensorFlow; build one (tensorflow[and-cuda]) and "
            "set trainer.kubernetes.image"
        )
    logging.info("trainer worker: TF_CONFIG=%s", os.environ.get(TF_CONFIG, ""))
    run_fn(fn_args)
    logging.info("trainer worker: done")
    return 0


if __name__ == "__main__":
    process.run_and_exit(main)
