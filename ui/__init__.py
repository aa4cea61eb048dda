"""Streamlit-side helpers shared by pages: session-state keys, cached loaders, sidebar."""

from ui.routing import ensure_app_navigation

# Every page imports ``ui``; in the one run where Streamlit's legacy ``pages/`` mode would
# execute a page without ``app.py`` (see ui/routing.py), this sends the run through app.py.
ensure_app_navigation()
