"""What every benchmark of Lorry over HTTP does: start a real ``lorry serve``
on a fresh data folder, make item types, wait for jobs, read peak memory."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

TOKEN = "bench-admin-token"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("lorry serve exited early")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("lorry serve did not start")


@contextmanager
def serve(
    workdir: Path, port: int
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """A running ``lorry serve`` on ``workdir/lorry-data`` and a client of it."""
    env = {**os.environ, "LORRY_ADMIN_TOKEN": TOKEN}
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "lorry", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(workdir / "lorry-data"), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_ready(url, proc)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=3600) as api:
            yield proc, api
    finally:
        proc.terminate()
        proc.wait(60)


def create_type(api: httpx.Client, key: str, fields: list[dict[str, Any]]) -> None:
    attributes = {"api_key": key, "name": key.title(), "fields": fields}
    body = {"data": {"type": "item_type", "attributes": attributes}}
    api.post("/item-types", json=body).raise_for_status()


def wait_job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's attributes once it has ended."""
    while True:
        attrs: dict[str, Any] = api.get(f"/jobs/{job_id}").json()["data"]["attributes"]
        if attrs["status"] not in ("queued", "in_progress"):
            return attrs
        time.sleep(0.05)


def processes_rss(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """Peak RSS of the server and of each of its child processes, in MB."""
    rss = {"server": peak_rss_mb(proc.pid)}
    for number, child in enumerate(psutil.Process(proc.pid).children()):
        tracker = "resource_tracker" in " ".join(child.cmdline())
        name = "resource tracker" if tracker else f"worker process {number}"
        rss[name] = peak_rss_mb(child.pid)
    return rss


def compare_rss(runs: list[tuple[int, dict[str, float]]]) -> None:
    """Print peak memory of each run against the one before (a larger N)."""
    for (n_small, small), (n_big, big) in itertools.pairwise(runs):
        print(
            f"peak RSS at N = {n_big:,} / at N = {n_small:,}: "
            f"{sum(big.values()) / sum(small.values()):.2f} (all processes), "
            f"{big['server'] / small['server']:.2f} (server)"
        )
