"""Training engine: run dirs (``runs``), the foreground trainer (``trainer``), background jobs
(``jobs``), Keras callbacks (``callbacks``), device setup (``device``), curves (``plots``) and
the ``train``/``sample``/``evaluate`` CLI commands (``cli``).  Never imports Streamlit."""
