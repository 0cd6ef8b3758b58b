"""The runyard web UI (``runyard ui``): runs, charts, logs, files and sweeps, served from the store.

Needs the ``ui`` extra (starlette, uvicorn, plotly). Entry points: :func:`tracking.ui.server.serve`
and :func:`tracking.ui.server.create_app`. The query, series and sweep modules use no web
framework, so the notebook widget shares them.
"""
