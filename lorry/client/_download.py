"""Downloading an export's file: streamed to disk, checked against its SHA-256.

Both clients write through :class:`FileSink`; they differ only in how they
read the bytes of the answer. The file appears under its name only once it
is whole and its checksum matches, so a failed download leaves nothing that
looks like a good file.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from lorry.client._errors import ExportChecksumError, LorryError
from lorry.client._models import Job

__all__ = ["CHUNK_BYTES", "DownloadCallback", "FileSink", "export_source"]

#: Bytes read from the answer at a time.
CHUNK_BYTES = 1 << 16

#: Called with the number of bytes received so far.
DownloadCallback = Callable[[int], None]


def export_source(job: Job) -> tuple[str, str | None]:
    """The download URL and SHA-256 of a completed export job."""
    attributes = job.attributes
    if attributes.kind != "export":
        raise LorryError(f"job {job.id} is a {attributes.kind} job, not an export")
    result = attributes.result
    if attributes.status != "completed" or result is None or not result.url:
        raise LorryError(
            f"export job {job.id} is {attributes.status}; only a completed "
            "export has a file (wait for it with jobs.wait)"
        )
    return result.url, result.sha256


class FileSink:
    """Writes a download to a hidden file beside ``path``, hashing as it goes."""

    def __init__(
        self, path: str | os.PathLike[str], on_download: DownloadCallback | None
    ) -> None:
        self.path = Path(path)
        self._part = self.path.with_name(f".{self.path.name}.part")
        self._handle = open(self._part, "wb")
        self._digest = hashlib.sha256()
        self._on_download = on_download
        self.received = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._digest.update(chunk)
        self.received += len(chunk)
        if self._on_download is not None:
            self._on_download(self.received)

    def close(self, expected_sha256: str | None) -> Path:
        """Keep the file if its checksum is the expected one; return its path."""
        self._handle.close()
        actual = self._digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            self._part.unlink(missing_ok=True)
            raise ExportChecksumError(
                f"the download of {self.path.name} has SHA-256 {actual}, but the "
                f"export job recorded {expected_sha256}; download it again"
            )
        os.replace(self._part, self.path)
        return self.path

    def abort(self) -> None:
        """Drop what was received."""
        self._handle.close()
        self._part.unlink(missing_ok=True)
