"""Model code (features, preprocessing, model, training, signatures) and the
project's custom TFX components.

TFX 1.16's Keras code paths are written for Keras 2, which TensorFlow 2.16
only provides through tf-keras when TF_USE_LEGACY_KERAS is set *before*
TensorFlow is first imported. Every process that imports this package (the
CLI, Beam workers, the Kubeflow container entrypoint) needs it, so it is set
here, once, ahead of any TensorFlow import. An explicit value from the
environment wins.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
