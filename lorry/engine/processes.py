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
import select
import socket
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from lorry.config import Settings
from lorry.engine.pool import work_loop, worker_prefix
from lorry.engine.preparer import Preparer, preparer_main
from lorry.jobs import runner
from lorry.store.db import Database

__all__ = ["ProcessPool"]

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("spawn")
#: How often the server checks that its worker processes live.
_WATCH_SECONDS = 0.5


class _Signal:
    """The worker's end of a socket pair: wake-ups come in, EOF means stop.

    A socket rather than multiprocessing's Event: it needs no named
    semaphores (which outlive a killed server), and a full buffer just means
    a wake-up is already pending.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stopped = False

    def _drain(self) -> None:
        try:
            while data := self.sock.recv(4096):
                if len(data) < 4096:
                    return
        except BlockingIOError:
            return
        self.stopped = True  # EOF: the server closed its end

    def wait(self, timeout: float | None = None) -> bool:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if readable:
            self._drain()
        return bool(readable)

    def is_set(self) -> bool:
        return self.stopped

    def set(self) -> None:
        """Workers cannot wake their siblings; the server does."""

    def clear(self) -> None:
        """Waking drains the socket already."""


class _Stop:
    def __init__(self, signal: _Signal) -> None:
        self.signal = signal

    def is_set(self) -> bool:
        return self.signal.stopped

    def wait(self, timeout: float | None = None) -> bool:
        self.signal.wait(timeout)
        return self.signal.stopped

    def set(self) -> None:
        self.signal.stopped = True

    def clear(self) -> None:
        self.signal.stopped = False


def _worker_main(
    settings: Settings,
    owner: str,
    sock: socket.socket,
    parent: int,
    log_level: int,
    preparer: Connection | None,
) -> None:
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    db = Database(
        settings.url,
        lock_file=settings.write_lock_file,
        write_cache_mb=settings.worker_cache_mb,
    )
    sock.setblocking(False)
    signal = _Signal(sock)
    log.info("worker %s started", owner, extra={"action": "worker_started"})
    try:
        work_loop(
            db,
            settings,
            owner,
            signal,
            _Stop(signal),
            alive=lambda: os.getppid() == parent,
            preparer=Preparer(preparer) if preparer is not None else None,
        )
    finally:
        db.dispose()
        log.info("worker %s stopped", owner, extra={"action": "worker_stopped"})


@dataclass
class _Slot:
    """One worker process, its preparer, and the socket that wakes it."""

    owner: str
    worker: SpawnProcess
    preparer: SpawnProcess | None
    sock: socket.socket

    @property
    def processes(self) -> list[SpawnProcess]:
        return [p for p in (self.worker, self.preparer) if p is not None]

    def healthy(self) -> bool:
        return all(p.is_alive() for p in self.processes)


class ProcessPool:
    """Worker processes, watched: one that dies is replaced, its chunks freed."""

    def __init__(self, settings: Settings, size: int, db: Database) -> None:
        self.settings = settings
        self.size = size
        self.db = db
        self._slots: list[_Slot] = []
        self._generation = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._level = logging.INFO

    def start(self) -> None:
        self._level = logging.getLogger().getEffectiveLevel()
        with self._lock:
            for n in range(self.size):
                self._slots.append(self._spawn(n))
        self._watcher = threading.Thread(
            target=self._watch, name="lorry-worker-watch", daemon=True
        )
        self._watcher.start()
        log.info(
            "started %d worker processes",
            self.size,
            extra={"action": "workers_started"},
        )

    def _spawn(self, n: int) -> _Slot:
        self._generation += 1
        owner = f"{worker_prefix()}:p{n}.{self._generation}"
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        worker_end: Connection | None = None
        helper: SpawnProcess | None = None
        if self.settings.prepare_ahead:
            worker_end, preparer_end = _ctx.Pipe()
            helper = _ctx.Process(
                target=preparer_main,
                args=(self.settings, preparer_end, os.getpid(), self._level),
                name=f"lorry-preparer-{n}",
                daemon=True,
            )
            helper.start()
            preparer_end.close()
        proc = _ctx.Process(
            target=_worker_main,
            args=(self.settings, owner, theirs, os.getpid(), self._level, worker_end),
            name=f"lorry-worker-{n}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        if worker_end is not None:
            worker_end.close()
        return _Slot(owner, proc, helper, ours)

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_SECONDS):
            with self._lock:
                for n, slot in enumerate(self._slots):
                    if not self._stopping.is_set() and not slot.healthy():
                        self._slots[n] = self._replace(n, slot)

    def _replace(self, n: int, slot: _Slot) -> _Slot:
        codes = [p.exitcode for p in slot.processes]
        log.error(
            "worker %s died (exit codes %s); starting another",
            slot.owner,
            codes,
            extra={"action": "worker_died", "worker": slot.owner},
        )
        # Its partner may be mid-write: stopping it rolls that back, which the
        # lease makes safe, and it would wait for a partner that is gone.
        _end(slot, timeout=0.5)
        # The dead worker can commit nothing more: its chunks can run again
        # now, not when their lease runs out.
        try:
            freed = runner.release_owner(self.db, slot.owner)
        except Exception:
            log.exception(
                "could not free the chunks of %s; their lease will",
                slot.owner,
                extra={"action": "release_error"},
            )
            freed = 0
        if freed:
            log.info(
                "%d chunks of %s will run again",
                freed,
                slot.owner,
                extra={"action": "chunks_released", "worker": slot.owner},
            )
        fresh = self._spawn(n)
        self.wake()
        return fresh

    @property
    def alive(self) -> int:
        return sum(slot.healthy() for slot in self._slots)

    def wake(self) -> None:
        for slot in self._slots:
            try:
                slot.sock.send(b"w")
            except (BlockingIOError, OSError):
                pass  # a wake-up is pending already, or the worker is gone

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
        with self._lock:
            for slot in self._slots:
                slot.sock.close()  # the worker reads EOF, stops after its batch
            for slot in self._slots:
                _end(slot, timeout)
            self._slots.clear()


def _end(slot: _Slot, timeout: float = 5.0) -> None:
    for proc in slot.processes:
        if proc.is_alive():
            proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    slot.sock.close()
