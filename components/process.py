"""How our processes end: with their status, even after tensorflow-io's S3 filesystem was used.

tensorflow-io 0.37.1, the last release for TF 2.16, aborts every process
that touched s3:// while C++ static objects are torn down after Python has
finished ("pure virtual method called", exit code 134; tensorflow/io#2039,
fixed upstream in tensorflow/io#2120 but never released for TF 2.16). A
CLI command that succeeded would exit 134, and a Kubeflow task that pushed
to S3 would fail. Each of our entry points (the CLI, the Kubeflow container
entrypoint, a training worker) therefore ends through `run_and_exit`: when
tensorflow_io is loaded, it runs the atexit handlers, flushes the logs and
the standard streams, then leaves with `os._exit`, which skips that
teardown. Without tensorflow_io, nothing changes: `sys.exit` as before,
and uncaught exceptions propagate as they would.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from components import private_apis

TENSORFLOW_IO = "tensorflow_io"


def _status(code: object) -> int:
    """The exit status `sys.exit(code)` would give (a message is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_and_exit(main: Callable[[], object]) -> NoReturn:
    """Runs a process's `main` and exits with its status.

    Args:
        main: Returns the exit status (or None for 0), or raises SystemExit.
    """
    try:
        code = main()
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        if TENSORFLOW_IO not in sys.modules:
            raise
        traceback.print_exc()
        code = 1
    if TENSORFLOW_IO not in sys.modules:
        sys.exit(code)  # type: ignore[arg-type]
    status = _status(code)
    private_apis.run_atexit_handlers()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
