"""Bytes of an uploaded file turned into text as they arrive, with positions.

Shared by every reader of import files: decoding errors name the byte offset
of the first bad byte in the file and the line it is on, so that a Latin-1
file sent as UTF-8 is refused with a place to look, not half-imported.
"""

from __future__ import annotations

import codecs

__all__ = ["MAX_DEPTH", "FileError", "TextDecoder", "count_breaks"]

_BOM = codecs.BOM_UTF8
#: Records nested deeper than this are refused: the record object itself and,
#: in it, a json value as deep as an item may hold (64 levels), so that any
#: item Lorry exports imports back.
MAX_DEPTH = 65


class FileError(Exception):
    """The file as a whole cannot be read: nothing of it is imported."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        line: int | None = None,
        byte: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.byte = byte


def count_breaks(text: str) -> int:
    """Line breaks in ``text``: CRLF, LF and a lone CR each count once."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


#: Bytes needed to tell the byte-order marks apart (UTF-32's is four).
_SNIFF_BYTES = 4
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _marked_encoding(start: bytes) -> str | None:
    """The encoding a UTF-16 or UTF-32 byte-order mark names (the codec
    then reads and drops the mark itself)."""
    for mark, name in _MARKS:
        if start.startswith(mark):
            return name
    return None


class TextDecoder:
    """Incremental decoding that knows how many bytes it has consumed."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = codecs.lookup(encoding or "utf-8").name
        self._decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        self._bytes_in = 0
        #: No encoding said: a UTF-16 or UTF-32 byte-order mark says it.
        self._sniff = encoding is None
        # A UTF-8 byte-order mark is dropped; other codecs (utf-16, say)
        # handle their own.
        self._first: bytes | None = b"" if self.encoding == "utf-8" else None

    def decode(self, data: bytes, final: bool, line_at: int, before: str) -> str:
        """Decode the next bytes; ``line_at`` is the line where ``before``,
        the text not yet consumed by the reader, starts."""
        if self._first is not None:
            self._first += data
            if len(self._first) < _SNIFF_BYTES and not final:
                return ""
            data, self._first = self._first, None
            if self._sniff and (marked := _marked_encoding(data)) is not None:
                self.encoding = marked
                self._decoder = codecs.getincrementaldecoder(marked)("strict")
            elif data.startswith(_BOM):
                data = data[len(_BOM) :]
                self._bytes_in += len(_BOM)
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise self._undecodable(exc, data, line_at, before) from None
        self._bytes_in += len(data)
        return text

    def _undecodable(
        self, exc: UnicodeDecodeError, data: bytes, line_at: int, before: str
    ) -> FileError:
        # The decoder may have held back the start of a character from the
        # bytes before: exc.object is those bytes and then ``data``.
        held = len(exc.object) - len(data)
        offset = self._bytes_in - held + exc.start
        good = exc.object[: exc.start].decode(self.encoding, errors="replace")
        line = line_at + count_breaks(before + good)
        bad = exc.object[exc.start : exc.end].hex(" ")
        return FileError(
            "undecodable",
            f"line {line}, byte {offset}: the bytes {bad} are not valid "
            f"{self.encoding}; say the file's encoding (encoding=latin-1, say) "
            "or convert it to UTF-8",
            line=line,
            byte=offset,
        )
