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
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from lorry.config import Settings
from lorry.engine.pool import work_loop, worker_prefix
from lorry.engine.preparer import Preparer, preparer_main
from lorry.store.db import Database

__all__ = ["ProcessPool"]

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("spawn")


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
    index: int,
    sock: socket.socket,
    parent: int,
    log_level: int,
    preparer: Connection | None,
) -> None:
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    db = Database(settings.url, lock_file=settings.write_lock_file)
    owner = f"{worker_prefix()}:p{index}"
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


class ProcessPool:
    def __init__(self, settings: Settings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._procs: list[SpawnProcess] = []
        self._socks: list[socket.socket] = []

    def start(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        for n in range(self.size):
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            worker_end: Connection | None = None
            if self.settings.prepare_ahead:
                worker_end, preparer_end = _ctx.Pipe()
                helper = _ctx.Process(
                    target=preparer_main,
                    args=(self.settings, preparer_end, os.getpid(), level),
                    name=f"lorry-preparer-{n}",
                    daemon=True,
                )
                helper.start()
                preparer_end.close()
                self._procs.append(helper)
            proc = _ctx.Process(
                target=_worker_main,
                args=(self.settings, n, theirs, os.getpid(), level, worker_end),
                name=f"lorry-worker-{n}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            if worker_end is not None:
                worker_end.close()
            self._procs.append(proc)
            self._socks.append(ours)
        log.info(
            "started %d worker processes",
            self.size,
            extra={"action": "workers_started"},
        )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def wake(self) -> None:
        for sock in self._socks:
            try:
                sock.send(b"w")
            except (BlockingIOError, OSError):
                pass  # a wake-up is pending already, or the worker is gone

    def stop(self, timeout: float = 30.0) -> None:
        for sock in self._socks:
            sock.close()  # the worker reads EOF and stops after its batch
        self._socks.clear()
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self._procs.clear()
