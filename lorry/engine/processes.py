"""Worker processes for ``lorry serve``: the engine without the GIL.

Each process runs the same loop as a worker thread, on its own connection to
the same SQLite file; a file lock queues their writes (lorry.store.db). A
worker whose server died (even by SIGKILL) notices that its parent is gone
and stops; whatever it was applying is guarded by its lease, so a restarted
server that runs the chunk again never applies it twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event

from lorry.config import Settings
from lorry.engine.pool import work_loop, worker_prefix
from lorry.store.db import Database

__all__ = ["ProcessPool"]

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("spawn")


def _worker_main(
    settings: Settings,
    index: int,
    wake: Event,
    stop: Event,
    parent: int,
    log_level: int,
) -> None:
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    db = Database(settings.url, lock_file=settings.write_lock_file)
    owner = f"{worker_prefix()}:p{index}"
    log.info("worker %s started", owner, extra={"action": "worker_started"})
    try:
        work_loop(db, settings, owner, wake, stop, alive=lambda: os.getppid() == parent)
    finally:
        db.dispose()
        log.info("worker %s stopped", owner, extra={"action": "worker_stopped"})


class ProcessPool:
    def __init__(self, settings: Settings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._wake = _ctx.Event()
        self._stop = _ctx.Event()
        self._procs: list[SpawnProcess] = []

    def start(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        for n in range(self.size):
            proc = _ctx.Process(
                target=_worker_main,
                args=(self.settings, n, self._wake, self._stop, os.getpid(), level),
                name=f"lorry-worker-{n}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)
        log.info(
            "started %d worker processes",
            self.size,
            extra={"action": "workers_started"},
        )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self._procs.clear()
