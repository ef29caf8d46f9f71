"""Assembling the embedded server: data directory, database, workers."""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lorry.config import Settings
from lorry.engine.pool import Pool, ThreadPool
from lorry.engine.processes import ProcessPool
from lorry.jobs import retention, runner, signing, staging
from lorry.store import tokens
from lorry.store.db import Checkpointer, Database
from lorry.store.migrate import upgrade

__all__ = ["DataDirLocked", "Periodic", "Runtime", "open_runtime"]

log = logging.getLogger(__name__)


class DataDirLocked(RuntimeError):
    """Another Lorry server is using this SQLite database."""


class Periodic:
    """A task the server runs every ``interval`` seconds, in a thread of its
    own; a run that fails is logged, and the next one runs as planned."""

    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.task = task
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(
            target=self._loop, name=f"lorry-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        # A first run at start: a server that was down past some jobs'
        # expiry removes them now, not one interval later.
        while not self._stop.is_set():
            try:
                self.task()
            except Exception:
                log.exception(
                    "periodic %s failed; it runs again in %s s",
                    self.name,
                    self.interval,
                    extra={"action": "periodic_error", "task": self.name},
                )
            self._stop.wait(self.interval)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pool: Pool
    checkpointer: Checkpointer
    #: The admin token made at first start, to be shown once; else None.
    new_admin_token: str | None = None
    _lock: IO[bytes] | None = field(default=None, repr=False)
    periodic: list[Periodic] = field(default_factory=list)

    def start_workers(self) -> None:
        self.checkpointer.start()
        for task in self.periodic:
            task.start()
        if self.pool.size:
            self.pool.start()

    def close(self) -> None:
        self.pool.stop()
        for task in self.periodic:
            task.stop()
        self.checkpointer.stop()
        self.db.dispose()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _lock_database(settings: Settings, path: Path) -> IO[bytes]:
    # The lock is taken on the database file itself (flock, which SQLite's
    # own POSIX locks do not touch), so that another path to the same file,
    # a hard link say, finds it taken too. Opened for reading only, and kept
    # open until SQLite is done with the file: closing a descriptor of a
    # file drops the POSIX locks the process holds on it.
    path.touch(exist_ok=True)
    handle = open(path, "rb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(
            f"{settings.sqlite_file} is in use by another Lorry server "
            "(one embedded server per SQLite database)"
        ) from None
    return handle


def open_runtime(settings: Settings) -> Runtime:
    """Prepare everything a server needs, before it takes requests."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db_file = settings.sqlite_file
    lock = _lock_database(settings, db_file) if db_file else None
    # With worker processes, this process only stages input: a small cache.
    threads = settings.worker_mode == "thread"
    db = Database(
        settings.url,
        lock_file=settings.write_lock_file,
        write_cache_mb=settings.worker_cache_mb if threads else 8,
    )
    upgrade(db)
    with db.write() as conn:
        new_token = tokens.bootstrap(conn, settings.admin_token)
    staging.remove_unfinished(db)
    # Made now, before any worker process may need it to sign a URL.
    signing.server_secret(settings)
    runner.recover(db)
    pool: Pool
    if settings.worker_mode == "process":
        pool = ProcessPool(settings, settings.workers, db)
    else:
        pool = ThreadPool(db, settings, settings.workers)
    # Expired jobs are removed by the server, not by its workers: one
    # process per database is enough.
    purger = Periodic(
        "purge",
        settings.purge_interval_seconds,
        lambda: retention.purge(db, settings),
    )
    return Runtime(settings, db, pool, Checkpointer(db), new_token, lock, [purger])
