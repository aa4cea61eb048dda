"""Keep Streamlit's automatic ``pages/`` navigation from replacing the app's own navigation.

Why this exists (Streamlit 1.67, ``runtime/pages_manager.py``, ``scriptrunner/script_runner.py``):
``PagesManager.uses_pages_directory`` is a process-wide flag, set to True when the first session
starts because ``pages/`` lies next to ``app.py``, and set to False only by a call to
``st.navigation``.  While it is True, every run goes through Streamlit's legacy multipage mode
(``_mpa_v1``): a sidebar of file names (app / browse / dataset / train) and, when the browser
asks for a page (``/dataset``, or a tab reconnecting to a restarted server), that page file is
executed directly, *without* ``app.py``.  ``app.py`` then never calls ``st.navigation``, so the
flag stays True and the titled navigation and the data-source sidebar are gone for every
session until someone opens the root URL.

Every page imports :mod:`ui`, so the package runs :func:`ensure_app_navigation` on import: in a
legacy-mode run it switches the flag off and, when a page file runs without ``app.py``, asks
for a rerun, which goes through ``app.py`` and its ``st.navigation`` to the same page.
"""

from __future__ import annotations

import os

__all__ = ["ensure_app_navigation"]


def ensure_app_navigation() -> None:
    """Turn Streamlit's ``pages/`` auto-navigation off for this server; rerun via ``app.py`` if needed.

    Does nothing outside a Streamlit script run (CLI, notebooks, unit tests) and once
    ``st.navigation`` has run in this server process.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    page = ctx.pages_manager.get_pages().get(ctx.page_script_hash) or {}
    script = page.get("script_path") or ctx.main_script_path
    if os.path.realpath(script) != os.path.realpath(ctx.main_script_path):
        import streamlit as st

        st.rerun()  # the page ran without app.py: run app.py (and so this page) instead
