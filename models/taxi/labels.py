"""The taxi label, computed in the transform graph from the raw tip and fare."""

from __future__ import annotations

import tensorflow as tf

TIP_SHARE = 0.2


def big_tipper(columns: dict[str, tf.Tensor]) -> tf.Tensor:
    """1 where the tip is more than 20% of a positive fare, else 0.

    Args:
        columns: The label's input columns, dense [batch]: `tips` and `fare`
            (missing cells already filled with 0).

    Returns:
        [batch] int64 0/1.
    """
    tips = tf.cast(columns["tips"], tf.float32)
    fare = tf.cast(columns["fare"], tf.float32)
    return tf.cast(tf.logical_and(fare > 0.0, tips > TIP_SHARE * fare), tf.int64)
