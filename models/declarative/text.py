"""The text tokenizer, in core TensorFlow string ops only, so it runs inside the served graph.

The stock `tensorflow/serving` image registers core TensorFlow's ops and no
custom ones (no tensorflow-text), and the same graph tokenizes training data
in Transform and raw strings in every serving request: one tokenizer.
"""

from __future__ import annotations

import tensorflow as tf

# Markup such as the <br /> line breaks of scraped reviews.
_TAGS = r"<[^>]*>"
# RE2's ASCII punctuation class: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
_PUNCTUATION = r"[[:punct:]]"


def tokenize(text: tf.Tensor, max_tokens: int) -> tf.RaggedTensor:
    """Lowercases, drops markup and punctuation, splits on whitespace, keeps `max_tokens`.

    Args:
        text: [batch] strings (UTF-8).
        max_tokens: Tokens kept per row; the rest is cut.

    Returns:
        [batch, (tokens)] string tokens, at most `max_tokens` per row, none empty.
    """
    lowered = tf.strings.lower(text, encoding="utf-8")
    cleaned = tf.strings.regex_replace(lowered, _TAGS, " ")
    cleaned = tf.strings.regex_replace(cleaned, _PUNCTUATION, " ")
    tokens = tf.strings.split(cleaned)
    return tokens[:, :max_tokens]


def pad_ids(ids: tf.RaggedTensor, max_tokens: int) -> tf.Tensor:
    """Token ids shifted by one and padded with 0 to a fixed [batch, max_tokens].

    0 is then padding only (the model masks it), and the fixed width makes
    the transformed feature a FixedLenFeature the Trainer reads as a vector.
    """
    dense = (ids + 1).to_tensor(default_value=0, shape=[None, max_tokens])
    return tf.reshape(dense, [-1, max_tokens])
