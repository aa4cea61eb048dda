"""latentbrain core: data, models, training and evaluation for synthetic brain MRI.

Never imports streamlit; usable from a notebook, the CLI (``python -m core``) or the app.
"""

import os as _os

# Keras 3 picks its backend from KERAS_BACKEND when it is first imported; the models and the
# training step are written for TensorFlow (tf.data input, tf device setup), so core pins it
# before anything imports Keras (another backend set by the user would fail late and obscurely).
_os.environ["KERAS_BACKEND"] = "tensorflow"

from core.errors import UserError  # noqa: E402

__all__ = ["UserError"]
