"""The database handle: engine set-up and the two kinds of transaction."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from lorry.store.dialect import Dialect, dialect_for

__all__ = ["Checkpointer", "Database"]

log = logging.getLogger(__name__)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would BEGIN lazily and DEFERRED;
    # we take over so that writers can say BEGIN IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only a power cut may lose
    # the last commits. FULL would fsync on every chunk.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Checkpoints run in a thread of their own (Checkpointer) rather than in
    # whichever commit crosses the threshold: a checkpoint syncs the database
    # file, and a worker waiting on that holds up every other writer.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock up front: a deferred one that
    # upgrades later can fail with SQLITE_BUSY instead of waiting.
    if conn.get_execution_options().get("lorry_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


class Database:
    """Owns the SQLAlchemy engine; hands out read and write transactions."""

    def __init__(self, url: str) -> None:
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
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        self.dialect: Dialect = dialect_for(self.engine.dialect.name)
        self.write_lock: threading.Lock | nullcontext[None] = (
            threading.Lock() if is_sqlite else nullcontext()
        )

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        # SQLite has one writer at a time. Queueing writers of this process on
        # a lock wakes the next one the moment the last commits; left to
        # SQLite's busy handler, they would poll with sleeps of up to 100 ms.
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(lorry_write=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


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
            self._checkpoint("TRUNCATE")

    def _checkpoint(self, mode: str) -> tuple[int, int, int]:
        # TRUNCATE waits for writers; it takes its turn like one.
        lock = self.db.write_lock if mode == "TRUNCATE" else nullcontext()
        with lock, self.db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            row = raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return (int(row[0]), int(row[1]), int(row[2]))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                busy, frames, copied = self._checkpoint("PASSIVE")
                if not busy and frames > 0 and frames == copied:
                    self._checkpoint("TRUNCATE")
            except Exception:
                log.exception("checkpoint failed", extra={"action": "checkpoint_error"})
