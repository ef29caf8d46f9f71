"""Starting ``lorry serve`` as a real process, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

TOKEN = "e2e-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    def __init__(
        self, data_dir: Path, port: int, log_level: str = "warning", **env: str
    ) -> None:
        self.log_level = log_level
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "LORRY_ADMIN_TOKEN": TOKEN, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"serve-{port}.log"

    def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lorry",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    self.log_level,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lorry serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"lorry serve did not answer: {self.log.read_text()}")

    def kill(self, *, with_workers: bool = False) -> None:
        """SIGKILL the server; with its worker processes too, like a crash of
        the whole machine (they would otherwise finish the batch they are
        writing before noticing that the server is gone)."""
        assert self.proc is not None
        doomed = [psutil.Process(self.proc.pid)]
        if with_workers:
            doomed += doomed[0].children(recursive=True)
        for process in doomed:
            process.kill()
        self.proc.wait(10)
        psutil.wait_procs(doomed[1:], timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
