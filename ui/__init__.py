"""Streamlit-side helpers shared by pages: session-state keys, cached loaders, sidebar."""
