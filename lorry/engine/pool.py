"""The embedded engine: a pool of worker threads inside ``lorry serve``.

Workers claim runnable chunks straight from the chunk table. Threads suffice
on SQLite: there is one writer at a time anyway, and while one worker is in
SQLite's C code (which releases the GIL) another parses and validates.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from lorry.config import Settings
from lorry.jobs import runner
from lorry.jobs.model import Claim
from lorry.store.db import Database

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)

#: How long an idle worker sleeps before it looks again; a new job wakes the
#: workers at once, so this only bounds how late an expired lease is noticed.
_IDLE_SECONDS = 1.0


class WorkerPool:
    def __init__(self, db: Database, settings: Settings, size: int) -> None:
        self.db = db
        self.settings = settings
        self.size = size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._prefix = f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        for n in range(self.size):
            thread = threading.Thread(
                target=self._loop,
                args=(f"{self._prefix}:w{n}",),
                name=f"lorry-worker-{n}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info("started %d workers", self.size, extra={"action": "workers_started"})

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        log.info("workers stopped", extra={"action": "workers_stopped"})

    def _loop(self, owner: str) -> None:
        claim: Claim | None = None
        while not self._stop.is_set():
            if claim is None:
                try:
                    claim = runner.claim(self.db, self.settings, owner)
                except Exception:
                    log.exception(
                        "worker %s could not claim a chunk",
                        owner,
                        extra={"action": "claim_error"},
                    )
                    self._stop.wait(_IDLE_SECONDS)
            if claim is None:
                self._wake.wait(_IDLE_SECONDS)
                self._wake.clear()
                continue
            # Others may find work too while this one is busy.
            self._wake.set()
            claim = runner.run_claim(self.db, self.settings, claim)
        if claim is not None:
            runner.release(self.db, claim)
