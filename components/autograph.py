"""Keeps AutoGraph from converting tf-keras' own code.

AutoGraph leaves the `keras` package alone (it is on TensorFlow's
DoNotConvert list), but TF 2.16 ships Keras 2 as `tf_keras`, which is not on
the list. Every tf.function that calls into it, such as Keras' train step and
our serving signatures, then re-converts large parts of tf_keras from source:
here that cost about 20 s before the first training step of every run, and
more again at export. Adding `tf_keras` to the list restores how Keras 2 ran
inside TensorFlow up to 2.15.
"""

from __future__ import annotations

from tensorflow.python.autograph.core import config as autograph_config


def skip_tf_keras() -> None:
    """Adds tf_keras to AutoGraph's do-not-convert rules (idempotent)."""
    rules = autograph_config.CONVERSION_RULES
    if any(
        isinstance(rule, autograph_config.DoNotConvert) and rule.matches("tf_keras")
        for rule in rules
    ):
        return
    autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"), *rules)
