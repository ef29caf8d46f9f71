"""The database handle: engine set-up and the two kinds of transaction."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from lorry.schema import patterns
from lorry.store.dialect import Dialect, dialect_for

__all__ = ["Checkpointer", "Database"]

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 60_000


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would BEGIN lazily and DEFERRED;
    # we take over so that writers can say BEGIN IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only a power cut may lose
    # the last commits. FULL would fsync on every chunk.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-8192")
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Checkpoints run in a thread of their own (Checkpointer) rather than in
    # whichever commit crosses the threshold: a checkpoint syncs the database
    # file, and a worker waiting on that holds up every other writer.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
    dbapi_connection.create_function(
        "lorry_matches", 2, patterns.search, deterministic=True
    )


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock up front: a deferred one that
    # upgrades later can fail with SQLITE_BUSY instead of waiting.
    if conn.get_execution_options().get("lorry_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


class WriteLock:
    """One writer at a time, across the threads and processes of one server.

    SQLite itself allows one writer, but a writer that finds the database busy
    polls with sleeps of up to 100 ms. Waiting on a lock instead hands over
    the moment the last writer commits: a thread lock within the process and,
    when worker processes share the database, a file lock between them.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


class Database:
    """Owns the SQLAlchemy engine; hands out read and write transactions."""

    def __init__(
        self, url: str, *, lock_file: Path | None = None, write_cache_mb: int = 8
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        is_sqlite = url.startswith("sqlite")
        if is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 30
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        self.write_engine = self.engine
        if is_sqlite:
            # All writes of the process share one connection (the write lock
            # makes them take turns): a connection's page cache is dropped
            # whenever another connection commits, and a warm cache of the
            # unique indexes is worth more than anything else on this path.
            self.write_engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 60},
                poolclass=StaticPool,
            )
            for engine in (self.engine, self.write_engine):
                event.listen(engine, "connect", _sqlite_on_connect)
                event.listen(engine, "begin", _sqlite_on_begin)
            # A worker's one writing connection keeps the hot pages of the
            # indexes that bulk inserts touch; elsewhere a small cache will do.
            cache_pragma = f"PRAGMA cache_size=-{int(write_cache_mb) * 1024}"

            def writer_cache(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute(cache_pragma)

            event.listen(self.write_engine, "connect", writer_cache)
        self.dialect: Dialect = dialect_for(self.engine.dialect.name)
        self.write_lock: AbstractContextManager[Any] = nullcontext()
        if is_sqlite:
            self.write_lock = WriteLock(lock_file)

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        # SQLite has one writer at a time. Queueing writers of this process on
        # a lock wakes the next one the moment the last commits; left to
        # SQLite's busy handler, they would poll with sleeps of up to 100 ms.
        with self.write_lock, self.write_engine.connect() as conn:
            conn = conn.execution_options(lorry_write=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()


class Checkpointer:
    """Copies SQLite's write-ahead log back into the database, in the background.

    PASSIVE checkpoints never block readers or writers. The log is truncated
    whenever a checkpoint finds nothing left to copy, so it does not grow
    without bound between busy periods.
    """

    def __init__(self, db: Database, interval: float = 0.5) -> None:
        self.db = db
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.db.dialect.name != "sqlite":
            return
        self._thread = threading.Thread(
            target=self._loop, name="lorry-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self.db.dialect.name == "sqlite":
            try:
                self._checkpoint("TRUNCATE")
            except Exception:
                # Shrinking the log at exit is a nicety; the next start (or
                # the next checkpoint) does it as well.
                log.info("the write-ahead log was left for the next start")

    def _checkpoint(self, mode: str, *, wait: bool = True) -> tuple[int, int, int]:
        # TRUNCATE waits for writers; it takes its turn like one.
        lock = self.db.write_lock if mode == "TRUNCATE" else nullcontext()
        with lock, self.db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            if not wait:
                raw.execute("PRAGMA busy_timeout=0")
            try:
                row = raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                if not wait:
                    raw.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return (int(row[0]), int(row[1]), int(row[2]))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                busy, frames, copied = self._checkpoint("PASSIVE")
                if not busy and frames > 0 and frames == copied:
                    # A reader still in the log (a long export, say) makes
                    # TRUNCATE wait for it, holding the write lock all the
                    # while; better to give up and truncate another time.
                    self._checkpoint("TRUNCATE", wait=False)
            except Exception:
                log.exception("checkpoint failed", extra={"action": "checkpoint_error"})
