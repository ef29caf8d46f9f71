"""JSON array and NDJSON records, cut out of an upload as its bytes arrive.

A JSON array is scanned for the bounds of its elements, not decoded: each
element is staged as its own text and decoded by the job, so that one bad
element (NaN, a trailing comma) fails alone, at its index and line, and a
file of any size is never held whole. Nesting is counted while scanning and
bounded, so a hostile file cannot make anything recurse.
"""

from __future__ import annotations

import re

from lorry.files.csv_records import Record
from lorry.files.text import MAX_DEPTH, FileError, TextDecoder, count_breaks

__all__ = ["JsonArrayReader", "NdjsonReader", "too_deep"]

_STRUCTURE = re.compile(r'[\[\]{},"]')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SPACE = re.compile(r"[ \t\r\n]*")
_OPEN = frozenset("[{")
_TOO_DEEP = ("too_deep", f"the record is nested deeper than {MAX_DEPTH} levels")


def too_deep(text: str) -> bool:
    """Whether JSON text nests deeper than MAX_DEPTH (strings skipped)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth, pos = 0, 0
    while (found := _STRUCTURE.search(text, pos)) is not None:
        char = found.group()
        if char == '"':
            string = _STRING.match(text, found.start())
            if string is None:
                return False  # broken JSON: the decoder will say so
            pos = string.end()
            continue
        pos = found.end()
        if char in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


class NdjsonReader:
    """One record a line; blank lines are skipped but counted."""

    columns: list[str] | None = None

    def __init__(self, *, encoding: str | None, max_record_chars: int) -> None:
        self._text = TextDecoder(encoding)
        self._max = max_record_chars
        self._buf = ""
        self._line = 1

    def feed(self, data: bytes) -> list[Record]:
        return self._parse(data, final=False)

    def end(self) -> list[Record]:
        return self._parse(b"", final=True)

    def _parse(self, data: bytes, final: bool) -> list[Record]:
        self._buf += self._text.decode(data, final, self._line, self._buf)
        lines = self._buf.split("\n")
        self._buf = "" if final else lines.pop()
        records: list[Record] = []
        for number, text in enumerate(lines, start=self._line):
            if len(text) > self._max:
                raise self._too_large(number)
            text = text.strip(" \t\r")
            if not text:
                continue
            error = _TOO_DEEP if too_deep(text) else None
            records.append((number, text.encode(), error))
        self._line += len(lines)
        if len(self._buf) > self._max:
            raise self._too_large(self._line)
        return records

    def _too_large(self, line: int) -> FileError:
        return FileError(
            "record_too_large",
            f"line {line} goes on for more than {self._max} characters",
            line=line,
        )


class JsonArrayReader:
    """The elements of one top-level JSON array."""

    columns: list[str] | None = None

    def __init__(self, *, encoding: str | None, max_record_chars: int) -> None:
        self._text = TextDecoder(encoding)
        self._max = max_record_chars
        self._buf = ""
        self._line = 1
        # "open": before '['; "item": an element or ']' may come;
        # "next": an element must come; "after": ',' or ']'; "done".
        self._state = "open"
        self._index = 0

    def feed(self, data: bytes) -> list[Record]:
        return self._parse(data, final=False)

    def end(self) -> list[Record]:
        records = self._parse(b"", final=True)
        if self._state != "done":
            raise self._error("the file ends before the array's closing ']'")
        return records

    def _error(self, detail: str, line: int | None = None) -> FileError:
        line = self._line if line is None else line
        return FileError("invalid_json", f"line {line}: {detail}", line=line)

    def _skip_space(self, pos: int, final: bool) -> int:
        found = _SPACE.match(self._buf, pos)
        assert found is not None
        end = found.end()
        buf = self._buf
        if not final and end == len(buf) and end > pos and buf[end - 1] == "\r":
            end -= 1  # a CR whose LF may come in the next feed
        self._line += count_breaks(buf[pos:end])
        return end

    def _parse(self, data: bytes, final: bool) -> list[Record]:
        self._buf += self._text.decode(data, final, self._line, self._buf)
        records: list[Record] = []
        pos = 0
        while True:
            pos = self._skip_space(pos, final)
            if pos >= len(self._buf) or self._buf[pos] == "\r":
                break
            char = self._buf[pos]
            if self._state == "open":
                if char != "[":
                    raise self._error("a JSON file to import must be one array [...]")
                self._state, pos = "item", pos + 1
            elif self._state == "after":
                if char not in ",]":
                    raise self._error(
                        f"expected ',' or ']' after element {self._index - 1}"
                    )
                self._state = "next" if char == "," else "done"
                pos += 1
            elif self._state == "done":
                raise self._error("there is more after the array's closing ']'")
            elif char == "]" and self._state == "item":
                self._state, pos = "done", pos + 1
            else:
                element = self._element(pos, final)
                if element is None:
                    break
                pos, record = element
                records.append(record)
        self._buf = self._buf[pos:]
        if len(self._buf) > self._max:
            raise FileError(
                "record_too_large",
                f"line {self._line}: element {self._index} goes on for more than "
                f"{self._max} characters",
                line=self._line,
            )
        return records

    def _element(self, start: int, final: bool) -> tuple[int, Record] | None:
        """Scan the element at ``start``; its end, or None if incomplete."""
        buf = self._buf
        depth, deepest, pos = 0, 0, start
        while True:
            found = _STRUCTURE.search(buf, pos)
            if found is None:
                if not final:
                    return None
                end = len(buf)
                break
            char = found.group()
            if char == '"':
                string = _STRING.match(buf, found.start())
                if string is None:
                    if not final:
                        return None
                    raise self._error("a string never closes")
                pos = string.end()
            elif char in _OPEN:
                depth += 1
                deepest = max(deepest, depth)
                pos = found.end()
            elif depth == 0 and char in ",]":
                end = found.start()
                break
            elif char in "]}":
                depth -= 1
                if depth < 0:
                    raise self._error(f"unbalanced {char!r} in element {self._index}")
                pos = found.end()
            else:
                pos = found.end()
        if end - start > self._max:
            raise FileError(
                "record_too_large",
                f"line {self._line}: element {self._index} goes on for more than "
                f"{self._max} characters",
                line=self._line,
            )
        text = buf[start:end].rstrip(" \t\r\n")
        error = _TOO_DEEP if deepest > MAX_DEPTH else None
        record: Record = (self._line, text.encode(), error)
        self._line += count_breaks(text)
        self._index += 1
        self._state = "after"
        return start + len(text), record
