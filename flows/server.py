"""Prefect's temporary API server, started early so that its start-up overlaps ours.

Without a configured server (PREFECT_API_URL), Prefect 3 starts a temporary
one when the first flow runs, and waits for it: about 7 s here, before any
work begins. `vaxrecon run` starts the very same server (Prefect's own
command line for it) as the first thing it does, loads the pipeline while
the server boots, and waits only for what is left. With a configured
server nothing is started.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("vaxrecon")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporaryServer:
    """A Prefect API server in a child process, stopped when the run ends."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.submodule_search_locations
        self.app_dir = str(Path(next(iter(spec.submodule_search_locations))).parent)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started = time.perf_counter()
        self._launch()
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> None:
        self.port = _free_port()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", self.app_dir, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"], env=env)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the server answers its health check."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:  # lost a race for the port: try another
                self._launch()
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        log.info("Prefect temporary server ready at %s (%.1f s after start)", self.api_url,
                                 time.perf_counter() - self.started)
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the temporary Prefect server did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def server_configured() -> bool:
    """True when Prefect will talk to a server of its own (environment or active profile)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def start_early() -> TemporaryServer | None:
    """Start the temporary server now unless one is configured; the caller enters `api()` later."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    server = TemporaryServer()
    if server_configured():  # a profile names a server after all: use it
        server.stop()
        return None
    os.environ["PREFECT_API_URL"] = server.api_url  # child processes (Dask workers) inherit it
    return server


@contextlib.contextmanager
def api(server: TemporaryServer | None) -> Iterator[None]:
    """Run the enclosed flow against `server` (or the configured server when None)."""
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server.wait()
    # The server stays up until the process exits: Prefect's log and event workers drain at exit
    # (their exit handlers run before ours, registered earlier), and would wait on a stopped server.
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
