"""The command line: `mlops COMMAND ...`, or `python -m pipeline COMMAND ...`.

This module only puts the command groups together and turns errors into
exit codes; each group is one module of this package, with its handlers:

- `run`: run, init, config, schema infer (this machine);
- `kubeflow`: compile, image, submit, schedule (Kubeflow Pipelines);
- `registry`: registry list|show|verify|label|rollback|prune;
- `serving`: predict, loadtest, status (a model behind TF Serving);
- `rollout`: rollout start|promote|abort|status (canary behind the TLS front);
- `skew`: served requests against the served version's training data (TFDV);
- `lineage`: lineage model|examples|runs (ML Metadata);
- `completion`: a static shell completion script.

Building the parser imports no TensorFlow or TFX: each handler imports what
it needs when it runs, so `--help` and typos answer at once.

Exit codes: 0 success; 1 a component, a followed run or a remote system
failed (`FAILED: ...`); 2 a mistake the user can fix (`error: ...`, one
line). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from components import environment
from components.errors import UserError
from pipeline import logs
from pipeline.cli import completion, kubeflow, lineage, registry, rollout, run, serving, skew

DISTRIBUTION = "mlops-pipeline"
GROUPS = (run, kubeflow, registry, serving, rollout, skew, lineage, completion)
EXAMPLES = """\
examples:
  %(prog)s init --data data/penguins --label species --output penguins.yaml
  %(prog)s run --config penguins.yaml --set trainer.train_steps=200
  %(prog)s registry list
  %(prog)s status --endpoint http://localhost:8501 --wait   # loaded what was pushed?
  %(prog)s predict --endpoint http://localhost:8501 --label stable --csv rows.csv
  %(prog)s lineage model latest
  %(prog)s submit --wait        # compile, upload and run on Kubeflow
  %(prog)s registry list -o json
  %(prog)s completion bash > ~/.local/share/bash-completion/completions/mlops

`%(prog)s COMMAND --help` shows a command's options. Commands that take
--config read $PIPELINE_CONFIG when it is set and --config is not given.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps each command's description on its line, `completion`'s too.

    argparse measures the command names at their group's indent, two columns
    short of where it prints them, so the longest name got a line of its own.
    """

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += 2


def _prog() -> str:
    """What the help calls the program: the console script's name, or the module form."""
    return "mlops" if Path(sys.argv[0]).name == "mlops" else "python -m pipeline"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # Run from a source tree that was never pip-installed.
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `handler` (parsed arguments -> exit code).

    Returns:
        The top-level parser, with one subcommand per command of the groups.
    """
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="A TFX pipeline from your CSV files to a model TF Serving serves, "
        "run locally or on Kubeflow Pipelines.",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()} ({DISTRIBUTION})"
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for group in GROUPS:
        group.register(commands)
    return parser


def _remote_failures() -> tuple[type[Exception], ...]:
    """The errors of the systems the CLI talks to: the KFP API, TF Serving, ML Metadata.

    Imported only once a handler has failed, so that a start never loads the
    KFP client for nothing.
    """
    from pipeline.kubeflow.client import KubeflowError
    from pipeline.lineage.store import StoreUnreachableError
    from pipeline.serving.client import ServingError

    return (KubeflowError, ServingError, StoreUnreachableError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command.

    Args:
        argv: The arguments after the program name; None for sys.argv's.

    Returns:
        The exit code: 0 success, 1 a failure (a component, a run, a remote
        system), 2 a user error, 130 interrupted (Ctrl-C); argparse exits 2
        itself on bad usage.

    Raises:
        Exception: Anything that is neither a UserError nor a remote
            system's failure: a bug, with its traceback.
    """
    # Before anything imports TensorFlow: Keras 2 for TFX, no C++ start-up logs.
    environment.prepare(quiet=True)
    logs.quiet_warnings()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C outside a pipeline run (which reports its own node).
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, _remote_failures()):
            raise
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
