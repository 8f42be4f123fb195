"""Reading `.kumeo` files: bytes → text, with read and encoding problems reported where they are."""

from __future__ import annotations

import os
from pathlib import Path

from kumeo_iac.errors import KumeoSyntaxError, SourceSpan


def read_source(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The file's text and its path as a string; a file that cannot be read is a syntax error at PATH:1:1."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise KumeoSyntaxError(f"cannot read file: {reason}", SourceSpan(name, 1, 1)) from None
    return decode_source(data, name), name


def decode_source(data: bytes, path: str) -> str:
    """Decode UTF-8 (a leading BOM is dropped); an invalid byte is reported at its own line and column."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise KumeoSyntaxError(
            f"invalid UTF-8 byte 0x{data[exc.start]:02x}",
            SourceSpan(path, line, column),
            "save the file as UTF-8",
        ) from None


def normalise_newlines(text: str) -> str:
    """CRLF → LF (columns are unchanged) and no BOM, so every later stage sees one kind of line ending."""
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n") if "\r" in text else text
