"""Times the CLI's start and its read commands, each in a fresh process.

The read commands run against a real local run: the pipeline runs once in a
throwaway folder (`--train-steps` steps, enough for a registry version and a
full ML Metadata record), unless `--workdir` already holds one. Every
command then runs `--repeat` times as `python -m pipeline ...`, the way a
user starts it, and the table gives the median and the slowest wall time,
with whether the process imported TensorFlow.

Goals (issue 16): `--help` <= 1 s, every registry and lineage read <= 1.5 s.

Usage:
    python bench/bench_cli.py [--workdir DIR] [--repeat N]

Prints a Markdown table and writes bench/results/cli-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

HELP_GOAL_S = 1.0
READ_GOAL_S = 1.5


def _overrides(workdir: Path) -> list[str]:
    return [
        f"run.pipeline_root={workdir / 'pipeline_root'}",
        f"metadata.sqlite_path={workdir / 'metadata.sqlite'}",
        f"registry.uri={workdir / 'registry'}",
    ]


def _ensure_run(workdir: Path, train_steps: int) -> None:
    if (workdir / "metadata.sqlite").exists() and any((workdir / "registry").glob("*/1")):
        return
    print(f"running the pipeline once in {workdir} ({train_steps} steps)...", flush=True)
    command = [sys.executable, "-m", "pipeline", "run"]
    for override in [*_overrides(workdir), f"trainer.train_steps={train_steps}"]:
        command += ["--set", override]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def _examples_id(workdir: Path) -> str:
    command = [sys.executable, "-m", "pipeline", "lineage", "model", "latest", "-o", "json"]
    for override in _overrides(workdir):
        command += ["--set", override]
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    return str(json.loads(done.stdout)["examples"]["id"])


# Imports the module of a command and reports whether TensorFlow came with it.
_PROBE = """
import sys
from pipeline.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print("TENSORFLOW", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def _time(argv: list[str], repeat: int) -> dict[str, object]:
    times = []
    loaded = False
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
        if done.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        loaded = "TENSORFLOW True" in done.stderr
    return {"median_s": statistics.median(times), "max_s": max(times), "tensorflow": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="a folder with a run (default: a new one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=100)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _ensure_run(workdir, args.train_steps)
    sets = [a for o in _overrides(workdir) for a in ("--set", o)]
    commands = {
        "--help": (["--help"], HELP_GOAL_S),
        "config": (["config", *sets], HELP_GOAL_S),
        "registry list": (["registry", "list", *sets], READ_GOAL_S),
        "registry show latest": (["registry", "show", "latest", *sets], READ_GOAL_S),
        "registry verify latest": (["registry", "verify", *sets], READ_GOAL_S),
        "lineage runs": (["lineage", "runs", *sets], READ_GOAL_S),
        "lineage model latest": (["lineage", "model", "latest", *sets], READ_GOAL_S),
        "lineage examples ID": (["lineage", "examples", _examples_id(workdir), *sets], READ_GOAL_S),
    }
    results = {}
    print("| command | median s | slowest s | goal s | TensorFlow imported |")
    print("|---|---|---|---|---|")
    for name, (argv, goal) in commands.items():
        result = _time(argv, args.repeat)
        results[name] = {**result, "goal_s": goal}
        print(
            f"| `{name}` | {result['median_s']:.2f} | {result['max_s']:.2f} | {goal:g} | "
            f"{'yes' if result['tensorflow'] else 'no'} |",
            flush=True,
        )
    out = REPO / "bench" / "results" / f"cli-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeat": args.repeat, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
