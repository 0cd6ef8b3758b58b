"""The runyard web UI: a Starlette app over one store, served by uvicorn.

``runyard ui`` calls :func:`serve`; tests and embedders call :func:`create_app`.

Example::

    from tracking.store import Store
    from tracking.ui.server import serve
    serve(Store("file:///data/runyard"), host="127.0.0.1", port=8765)

Pages: ``/`` experiments, ``/experiments/<name>`` runs table, ``/runs/<id>`` run,
``/sweeps/<id>`` sweep, ``/compare?run=<id>&run=<id>``. JSON under ``/api/`` (same paths).
plotly.js is served from the installed ``plotly`` package: no CDN, works air-gapped.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from importlib import resources
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import (InvalidNameError, PathEscapeError, RecordNotFoundError, StoreError,
                      StoreUnavailableError, UserInputError)
from ..store import Store
from .files import NotFound
from .handlers import JSON, UiHandlers
from .pages import error_page
from .security import TokenGate, check_bind

STATIC_DIR = str(resources.files("tracking.ui") / "static")


def _plotly_js_path() -> str:
    return str(resources.files("plotly") / "package_data" / "plotly.min.js")


def _error_response(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSON({"error": message, "status": status}, status_code=status)
    return HTMLResponse(error_page(status, message), status_code=status)


def _handlers() -> dict[Any, Any]:
    def not_found(request: Request, exc: Exception) -> Response:
        return _error_response(request, 404, str(exc) or "not found")

    def bad_request(request: Request, exc: Exception) -> Response:
        return _error_response(request, 400, str(exc))

    def unavailable(request: Request, exc: Exception) -> Response:
        return _error_response(request, 503, f"store unavailable: {exc}")

    def store_error(request: Request, exc: Exception) -> Response:
        return _error_response(request, 500, f"store error: {exc}")

    # the most specific class wins (Starlette walks the exception's MRO)
    return {NotFound: not_found, RecordNotFoundError: not_found, InvalidNameError: not_found,
            PathEscapeError: not_found,
            UserInputError: bad_request, StoreUnavailableError: unavailable, StoreError: store_error,
            404: lambda request, exc: _error_response(request, 404, "no such page")}


def create_app(store: Store | str, token: str | None = None, *, warm: bool = True) -> Any:
    """The ASGI app for ``store`` (a :class:`Store` or a store URL).

    Args:
        token: when given, every request must present it (see :mod:`tracking.ui.security`).
        warm: index every experiment in a background thread at startup, so the first runs
            table of a large experiment is already in memory.
    """
    store = Store(store) if isinstance(store, str) else store
    ui = UiHandlers(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm:
            threading.Thread(target=ui.index.warm, name="runyard-ui-warm", daemon=True).start()
        yield
        ui.index.close()

    plotly_js = _plotly_js_path()
    routes = [
        Route("/", ui.home),
        Route("/experiments/{name}", ui.experiment),
        Route("/runs/{run_id}", ui.run),
        Route("/runs/{run_id}/files/{name:path}", ui.run_file),
        Route("/runs/{run_id}/snapshot.zip", ui.snapshot),
        Route("/sweeps/{run_id}", ui.sweep),
        Route("/compare", ui.compare),
        Route("/api/experiments", ui.api_experiments),
        Route("/api/experiments/{name}/runs", ui.api_runs),
        Route("/api/runs/{run_id}", ui.api_run),
        Route("/api/runs/{run_id}/charts", ui.api_charts),
        Route("/api/runs/{run_id}/log", ui.api_log),
        Route("/api/sweeps/{run_id}", ui.api_sweep),
        Route("/api/compare", ui.api_compare),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/static/plotly.min.js", lambda request: FileResponse(
            plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers=_handlers(), lifespan=lifespan)
    app.state.ui = ui
    return TokenGate(app, token)


def serve(store: Store | str, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None) -> None:
    """Serve the UI until interrupted (blocking).

    Raises:
        ConfigurationError: ``host`` is not a loopback address and no ``token`` was given.
    """
    import uvicorn

    check_bind(host, token)
    app = create_app(store, token=token)
    shown = f"[{host}]" if ":" in host else host
    suffix = f"/?token={token}" if token else "/"
    print(f"runyard ui: serving {getattr(store, 'url', store)} at http://{shown}:{port}{suffix}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
