"""Start and stop a local Chroma server (``chroma run``) for shared caches, tests and demos.

>>> with ChromaServer("/var/lib/stepcache") as server:  # doctest: +SKIP
...     store = ChromaStore(host=server.host, port=server.port)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from stepcache_core.errors import StoreError

__all__ = ["ChromaServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _chroma_executable() -> str:
    beside = Path(sys.executable).with_name("chroma")
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise StoreError("the `chroma` command was not found (pip install chromadb)")
    return found


class ChromaServer:
    """``chroma run --path DIR --host HOST --port N`` as a context manager.

    `start` returns once the server answers its heartbeat; `stop` terminates it (SIGTERM, then
    SIGKILL after `stop_timeout`). The server's output goes to `log_path` (default
    ``DIR/chroma-server.log``). Listens on 127.0.0.1 unless told otherwise; `port` None picks a
    free one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        log_path: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_path = Path(log_path) if log_path is not None else self.path / "chroma-server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """Whether the server answers its heartbeat now."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start(self) -> ChromaServer:
        """Launch the server and wait until it answers; StoreError when it does not."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        cmd = [_chroma_executable(), "run", "--path", str(self.path)]
        cmd += ["--host", self.host, "--port", str(self.port)]
        self._proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                self._proc = None
                raise StoreError(f"chroma server exited with {code} at start; see {self.log_path}")
            if self.alive():
                return self
            time.sleep(0.1)
        self.stop()
        raise StoreError(f"chroma server did not answer within {self.start_timeout} s")

    def pause(self) -> None:
        """SIGSTOP the server: it still accepts connections but answers nothing (a hung server,
        for outage tests). `resume`, `stop` and `kill` undo it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server (idempotent; a paused one too)."""
        self.resume()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for outage tests)."""
        self.resume()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
