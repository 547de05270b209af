"""What TensorFlow reads from the environment at import, set by each entry point.

TFX 1.16's Keras code paths are written for Keras 2, which TensorFlow 2.16
only provides (as tf-keras) when TF_USE_LEGACY_KERAS is set *before*
TensorFlow is first imported. Every process that runs pipeline code needs
it: the CLI, the Kubeflow container entrypoint, the training workers. They
call `prepare()` first thing in `main`, not at import time, so importing a
module never changes a caller's environment. An explicit value wins.
"""

from __future__ import annotations

import os
import sys

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


class KerasVersionError(RuntimeError):
    """TensorFlow was imported with Keras 3, which TFX 1.16 cannot use."""


def prepare(quiet: bool = False) -> None:
    """Asks for Keras 2 before TensorFlow loads; with `quiet`, silences its C++ logs.

    Raises:
        KerasVersionError: TensorFlow was already imported without Keras 2.
    """
    os.environ.setdefault(LEGACY_KERAS, "1")
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        require_keras2()


def require_keras2() -> None:
    """Fails clearly when this process's tf.keras is Keras 3.

    Raises:
        KerasVersionError: naming the variable to set.
    """
    import tensorflow as tf

    version = getattr(tf.keras, "__version__", "")
    if version and not version.startswith("2."):
        raise KerasVersionError(
            f"TensorFlow was imported with Keras {version}; TFX 1.16 needs Keras 2: set "
            f"{LEGACY_KERAS}=1 before anything imports TensorFlow"
        )
