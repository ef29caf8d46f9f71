"""Server settings, read from the environment with command-line overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["Settings"]


def _env_seconds(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be more than 0 seconds, got {raw!r}")
    return value


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("lorry-data")
    database_url: str | None = None
    admin_token: str | None = None
    #: Workers of the embedded engine.
    workers: int = 1
    #: "process" (the default of lorry serve) or "thread".
    worker_mode: str = "process"
    #: Process mode: each worker gets a process that validates its next batch
    #: while the worker writes the current one.
    prepare_ahead: bool = True
    #: Items per chunk when a job does not say.
    chunk_size: int = 1000
    #: Most items one chunk transaction applies: consecutive chunks of one job
    #: are applied together up to this many, because on SQLite the size of a
    #: transaction is the main lever on write speed.
    txn_items: int = 50_000
    #: Jobs of one API token that run at once; the token's later jobs stay
    #: queued until one of them ends. 0: no limit.
    max_running_jobs_per_token: int = 4
    #: SQLite page cache of a worker's writing connection: the unique indexes
    #: that every insert probes should fit.
    worker_cache_mb: int = 48
    #: A claimed chunk whose worker has not finished it by then is run again.
    lease_seconds: int = 300
    #: Largest NDJSON (streamed) body of a bulk job.
    max_body_bytes: int = 1 << 30
    #: Largest JSON body of a bulk job: it is parsed whole, unlike NDJSON.
    max_json_bytes: int = 256 << 20
    max_item_bytes: int = 1 << 20
    max_items_per_job: int = 10_000_000
    #: Days a finished job and its results (and an export's file) are kept,
    #: unless the job says otherwise (its retain_for option).
    job_retention_days: int = 7
    #: Seconds a job may run (from its start) before it fails with error
    #: ``timeout``, unless the job says; None: no limit.
    job_timeout_seconds: float | None = None
    #: Seconds between two purges of expired jobs by the server; 0: never
    #: (``lorry jobs purge`` and ``POST /jobs/purge`` still purge).
    purge_interval_seconds: int = 300
    #: Seconds an export's download URL stays valid, unless the job says.
    export_url_ttl: int = 3600
    #: Signs export download URLs; when unset, one is made and kept in the
    #: data directory (lorry.jobs.signing).
    export_secret: str | None = None

    @property
    def exports_dir(self) -> Path:
        """Where export jobs write their files."""
        return self.data_dir / "exports"

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file, or None for another database."""
        url = make_url(self.url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return None
        return Path(url.database).resolve()

    @property
    def write_lock_file(self) -> Path | None:
        """The lock that queues the writers of all the server's processes."""
        db_file = self.sqlite_file
        return db_file.with_name(db_file.name + "-write.lock") if db_file else None

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lorry.db').resolve()}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "host": os.environ.get("LORRY_HOST", "127.0.0.1"),
            "port": _env_int("LORRY_PORT", 8000),
            "data_dir": Path(os.environ.get("LORRY_DATA_DIR", "lorry-data")),
            "database_url": os.environ.get("LORRY_DATABASE_URL") or None,
            "admin_token": os.environ.get("LORRY_ADMIN_TOKEN") or None,
            "workers": _env_int("LORRY_WORKERS", 1),
            "worker_mode": os.environ.get("LORRY_WORKER_MODE", "process"),
            "prepare_ahead": os.environ.get("LORRY_PREPARE_AHEAD", "1") != "0",
            "chunk_size": _env_int("LORRY_CHUNK_SIZE", 1000),
            "txn_items": _env_int("LORRY_TXN_ITEMS", 50_000),
            "worker_cache_mb": _env_int("LORRY_WORKER_CACHE_MB", 48),
            "max_running_jobs_per_token": _env_int(
                "LORRY_MAX_RUNNING_JOBS_PER_TOKEN", 4
            ),
            "lease_seconds": _env_int("LORRY_LEASE_SECONDS", 300),
            "export_url_ttl": _env_int("LORRY_EXPORT_URL_TTL", 3600),
            "job_retention_days": _env_int("LORRY_JOB_RETENTION_DAYS", 7),
            "purge_interval_seconds": _env_int("LORRY_PURGE_INTERVAL", 300),
            "export_secret": os.environ.get("LORRY_EXPORT_SECRET") or None,
            "job_timeout_seconds": _env_seconds("LORRY_JOB_TIMEOUT_SECONDS"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["data_dir"], str):
            values["data_dir"] = Path(values["data_dir"])
        if values["worker_mode"] not in ("process", "thread"):
            mode = values["worker_mode"]
            raise ValueError(f"worker mode must be 'process' or 'thread', not {mode!r}")
        for name in (
            "job_retention_days",
            "purge_interval_seconds",
            "max_running_jobs_per_token",
        ):
            if int(values[name]) < 0:  # type: ignore[call-overload]
                raise ValueError(f"{name} must not be negative, not {values[name]!r}")
        return cls(**values)  # type: ignore[arg-type]
