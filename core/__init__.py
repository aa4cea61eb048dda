"""latentbrain core: data, models, training and evaluation for synthetic brain MRI.

Never imports streamlit; usable from a notebook, the CLI (``python -m core``) or the app.
"""

from core.errors import UserError

__all__ = ["UserError"]
