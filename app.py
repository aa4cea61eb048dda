"""latentbrain: browse brain MRI, build slice datasets, train and judge generative models.

Run with ``streamlit run app.py``.  This file only routes; pages live in ``pages/``.
"""

import streamlit as st

from ui.sidebar import data_source_sidebar

st.set_page_config(page_title="latentbrain", page_icon=":material/neurology:", layout="wide")

navigation = st.navigation(
    {
        "Data": [
            st.Page("pages/browse.py", title="Browse", icon=":material/search:", default=True),
            st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
        ],
        "Models": [
            st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
            st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
            st.Page("pages/latent.py", title="Latent explorer", icon=":material/scatter_plot:"),
        ],
    }
)
data_source_sidebar()
navigation.run()
