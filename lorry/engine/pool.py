"""The embedded engine's worker loop, and the pool that runs it in threads.

Workers claim runnable chunks straight from the chunk table. ``lorry serve``
runs the loop in worker processes (lorry.engine.processes), so that
validating one batch truly overlaps writing another; the thread pool here
serves tests and ``--worker-mode thread``, with the same loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Protocol

from lorry.config import Settings
from lorry.engine.preparer import Preparer
from lorry.jobs import runner
from lorry.jobs.model import Claim
from lorry.store.db import Database

__all__ = ["Pool", "ThreadPool", "work_loop", "worker_prefix"]

log = logging.getLogger(__name__)

#: How long an idle worker sleeps before it looks again; a new job wakes the
#: workers at once, so this only bounds how late an expired lease is noticed.
IDLE_SECONDS = 1.0


class _Event(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Pool(Protocol):
    size: int

    @property
    def alive(self) -> int: ...

    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...


def worker_prefix() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(db: Database, settings: Settings, owner: str, stop: _Event) -> Claim | None:
    try:
        return runner.claim(db, settings, owner)
    except Exception:
        log.exception(
            "worker %s could not claim a chunk", owner, extra={"action": "claim_error"}
        )
        stop.wait(IDLE_SECONDS)
        return None


def work_loop(
    db: Database,
    settings: Settings,
    owner: str,
    wake: _Event,
    stop: _Event,
    alive: Callable[[], bool] = lambda: True,
    preparer: Preparer | None = None,
) -> None:
    claim: Claim | None = None
    while not stop.is_set() and alive():
        if claim is None:
            claim = _claim(db, settings, owner, stop)
        if claim is None:
            wake.wait(IDLE_SECONDS)
            wake.clear()
            continue
        # Others may find work too while this one is busy.
        wake.set()
        # An export runs long and alone: leasing the next batch before it
        # would only let that lease run out while the export writes.
        if preparer is None or runner.runs_alone(claim.kind):
            claim = runner.run_claim(db, settings, claim)
            continue
        ready = preparer.take(db, claim)
        # Lease the next batch before writing this one, so that the preparer
        # validates it while this write holds the lock.
        following = _claim(db, settings, owner, stop)
        if following is not None:
            preparer.give(following)
        runner.run_claim(db, settings, claim, ready, claim_next=False)
        claim = following
    if claim is not None:
        runner.release(db, claim)


class ThreadPool:
    def __init__(self, db: Database, settings: Settings, size: int) -> None:
        self.db = db
        self.settings = settings
        self.size = size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        prefix = worker_prefix()
        for n in range(self.size):
            thread = threading.Thread(
                target=work_loop,
                args=(self.db, self.settings, f"{prefix}:t{n}", self._wake, self._stop),
                name=f"lorry-worker-{n}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info(
            "started %d worker threads",
            self.size,
            extra={"action": "workers_started"},
        )

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
