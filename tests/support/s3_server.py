"""A moto S3 server on 127.0.0.1 that tests can stop and restart without losing data.

    with moto_s3() as s3:                      # or: yield from a pytest fixture
        fs = s3.filesystem()                   # s3fs.S3FileSystem, no listing cache
        fs.pipe(f"{s3.bucket}/a", b"x")
        s3.stop()                              # port closed, live connections cut
        s3.start()                             # same port, same objects
        subprocess.run(..., env={**os.environ, **s3.env})

Why not moto's ``ThreadedMotoServer``: started with port 0 it comes back on a *new*
random port after ``stop()``/``start()``, so clients holding the endpoint URL never see
the server return. ``MotoS3Server`` rebinds the port it first got, and ``stop()`` also
cuts requests still in flight (werkzeug answers ``Connection: close``, so no keep-alive
connection outlives the server, but a slow upload would otherwise complete after the
"outage" began).

Data survives ``stop()``/``start()`` because moto keeps its backends in module globals
of *this* process; the server is only a WSGI front door. Two consequences: every
``moto_s3()`` in one process shares one backend (hence a unique bucket per use), and
a test in the same process that enters ``moto.mock_aws()`` resets that shared state.
A ``moto_server`` subprocess would lose everything on restart.

Fast failure (measured in a private netns, 2 cores): against the stopped server
botocore's default legacy retries make ``cat``/``pipe`` fail only after 6-10 s. With
``config_kwargs={"connect_timeout": 1, "read_timeout": 5,
"retries": {"total_max_attempts": 1, "mode": "standard"}}`` (``FAST_FAIL_CONFIG``) every
call raises ``EndpointConnectionError`` in 1-5 ms on an existing filesystem and
0.1-0.3 s on a fresh one (client setup). Note ``"max_attempts": 1`` still means one
retry. ``fast_fail_storage_options`` carries these settings; ``storage_options`` keeps
botocore's defaults, as a production writer would.

Not bounded by any of these settings: a server that *accepts* and then stays silent.
s3fs retries ``ReadTimeoutError`` five times itself (``S3FileSystem.retries``, not a
constructor option), and a PUT waits for ``100 Continue`` with no timeout at all
(aiohttp arms ``sock_read`` only once the body is sent; marin-community/marin#6719).
Code that must not hang on S3 needs its own outer deadline.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support import services

REGION = "us-east-1"
ACCESS_KEY = "runyard-test-key"
SECRET_KEY = "runyard-test-secret"

# total_max_attempts=1 turns off botocore's retry-with-backoff, the part that makes a
# refused connection take 6-10 s ("max_attempts": 1 still means one *retry*).
# connect_timeout bounds an endpoint that drops SYNs.
FAST_FAIL_CONFIG: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 5,
    "retries": {"total_max_attempts": 1, "mode": "standard"},
}


class MotoS3Server:
    """moto's S3 WSGI app behind a werkzeug server that can really stop and restart."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, bind_timeout: float = 10.0) -> None:
        if self._server is not None:
            return
        deadline = time.monotonic() + bind_timeout
        while True:
            try:
                self._server = _make_server(self.host, self.port)
                break
            except OSError as exc:
                # A restart wants the old port back; wait out a brief holder.
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"moto-s3-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_live_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _make_server(host: str, port: int) -> Any:
    """Build the tracking server lazily so importing this module needs no moto."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import ThreadedWSGIServer

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class TrackingServer(ThreadedWSGIServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._live: set[socket.socket] = set()
            self._live_lock = threading.Lock()
            super().__init__(*args, **kwargs)

        def process_request(self, request: Any, client_address: Any) -> None:
            with self._live_lock:
                self._live.add(request)
            super().process_request(request, client_address)

        def shutdown_request(self, request: Any) -> None:
            with self._live_lock:
                self._live.discard(request)
            super().shutdown_request(request)

        def close_live_connections(self) -> None:
            # A request in flight (a slow upload) would otherwise complete after stop().
            with self._live_lock:
                live, self._live = list(self._live), set()
            for sock in live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    app = DomainDispatcherApplication(create_backend_app)
    return TrackingServer(host, port, app, handler=QuietHandler)


@dataclass
class MotoS3:
    """What a test needs to talk to the server: URLs, fsspec options, subprocess env."""

    server: MotoS3Server
    bucket: str
    prefix: str
    endpoint_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.endpoint_url = f"http://{self.server.host}:{self.server.port}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for ``fsspec.filesystem("s3", ...)`` / ``url_to_fs(url, ...)``.

        ``skip_instance_cache`` gives every caller its own S3FileSystem (fsspec would
        otherwise hand back one cached instance per option set), and
        ``use_listings_cache=False`` makes ``ls``/``exists`` see other writers' objects.
        """
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }

    @property
    def fast_fail_storage_options(self) -> dict[str, Any]:
        """``storage_options`` plus settings that fail in < 2 s when S3 is down.

        Down means refusing or not answering connections (``stop()``); see the module
        docstring for the accepting-but-silent case no setting bounds.
        """
        return {**self.storage_options, "config_kwargs": dict(FAST_FAIL_CONFIG)}

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (a job, the launcher) to reach this bucket.

        ``AWS_ENDPOINT_URL`` is honoured by botocore >= 1.31 (so by s3fs and boto3)
        when no ``endpoint_url`` is passed in code.
        """
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def filesystem(self, fast_fail: bool = False) -> Any:
        """A fresh ``s3fs.S3FileSystem`` for this server."""
        import s3fs

        opts = self.fast_fail_storage_options if fast_fail else self.storage_options
        return s3fs.S3FileSystem(**opts)

    def stop(self) -> None:
        """Take S3 down: refuse new connections and cut open ones. Data is kept."""
        self.server.stop()

    def start(self) -> None:
        """Bring S3 back on the same port with the same objects."""
        self.server.start()


def _boto_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def _empty_and_delete(endpoint_url: str, bucket: str) -> None:
    client = _boto_client(endpoint_url)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


def require_s3() -> None:
    """Skip (or fail under CI=true) when moto's server or s3fs is not installed."""
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        services.unavailable("s3", f"moto[server] and s3fs not importable: {exc}")


@contextlib.contextmanager
def moto_s3(prefix: str = "runyard") -> Iterator[MotoS3]:
    """Start a moto S3 server on 127.0.0.1 (free port) with a fresh bucket.

    Use from a fixture: ``with moto_s3() as s3: yield s3``. On exit the bucket is
    emptied and deleted (moto's state is process-global) and the server stopped.
    """
    require_s3()
    server = MotoS3Server()
    server.start()
    bucket = f"runyard-test-{uuid.uuid4().hex[:12]}"
    handle = MotoS3(server=server, bucket=bucket, prefix=prefix)
    try:
        _boto_client(handle.endpoint_url).create_bucket(Bucket=bucket)
        yield handle
    finally:
        try:
            server.start()  # a test may leave it stopped
            _empty_and_delete(handle.endpoint_url, bucket)
        finally:
            server.stop()
