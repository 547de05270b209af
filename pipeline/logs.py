"""Console and file logging for the CLI.

TFX, Beam and TensorFlow log thousands of lines per run. The console gets the
CLI's own output (and warnings with --verbose); everything goes to a log file.
"""

from __future__ import annotations

import logging
import os
import warnings


def quiet_warnings() -> None:
    """Keeps the libraries' deprecation and future warnings off the console.

    TFX, TFMA and Beam warn about their own dependencies on every import;
    none of it is the user's to act on. TensorFlow's C++ logs are silenced
    separately, through the environment (`components.environment.prepare`).
    """
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    # TensorFlow's Python deprecation notices (TFMA's readers print several)
    # go through its own logger to stderr; commands that keep a log file
    # (`configure`) route that logger there instead, at INFO.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def configure(log_file: str, verbose: bool) -> None:
    """Routes all log records to `log_file`, and to stderr when verbose."""
    os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    root.addHandler(file_handler)
    if verbose:
        console = logging.StreamHandler()
        console.setLevel(logging.INFO)
        root.addHandler(console)
    root.setLevel(logging.INFO)
    # absl installs its own stderr handler on first use; keep it off the console.
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().setLevel(logging.INFO if verbose else logging.CRITICAL)
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("absl").propagate = True
    # TensorFlow's Python logger prints to stderr through its own handler.
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.setLevel(logging.INFO)
    tf_logger.propagate = True
