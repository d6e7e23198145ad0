"""Bytes and text of a user file: size limit, decompression by magic bytes, text decoding.

Every reader of user files (tables, structures, CHGCARs) gets its text from here, so one set of
rules holds everywhere:

- gzip (``1f 8b``), bzip2 (``BZh``) and xz (``fd 37 7a 58 5a 00``) are decompressed whatever
  the file is called (the suffix is never trusted; nested compression is refused);
- text is UTF-8 (a byte-order mark is dropped), else Windows-1252, else Latin-1 (the legacy
  single-byte encodings crystallographic databases export); CRLF and CR become LF;
- a file with NUL bytes after decompression is binary and refused.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

from ecdflow.errors import InputError

MAX_BYTES = 512 * 1024 * 1024
"""Largest decompressed input (a 300^3 CHGCAR is ~400 MB of text)."""

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def compression_of(data: bytes) -> str:
    """``gzip``, ``bzip2``, ``xz`` or "" (none) from the first bytes of ``data``."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return ""


def decompress(data: bytes, where: str) -> tuple[bytes, str]:
    """(plain bytes, compression name or "") of ``data``; InputError for a corrupt stream."""
    kind = compression_of(data)
    if not kind:
        return data, ""
    mod = {"gzip": gzip, "bzip2": bz2, "xz": lzma}[kind]
    try:
        plain = mod.decompress(data)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(where, f"corrupt or truncated {kind} data ({msg})") from None
    if len(plain) > MAX_BYTES:
        raise InputError(where, f"larger than {MAX_BYTES // 2**20} MiB once decompressed")
    if compression_of(plain):
        raise InputError(where, f"{kind} file holding another compressed file "
                                f"({compression_of(plain)}); decompress it once first")
    return plain, kind


def decode_text(data: bytes, where: str) -> str:
    """Text of ``data``: UTF-8 (BOM dropped), else cp1252, else Latin-1; newlines made LF.

    Raises:
        InputError: empty, or binary (NUL bytes).
    """
    if not data.strip():
        raise InputError(where, "empty file")
    if b"\x00" in data[:65536]:
        raise InputError(where, "binary file, not text (and not gzip/bzip2/xz)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for enc in ("utf-8", "cp1252", "latin-1"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_bytes(path: str | Path, where: str | None = None) -> bytes:
    """Plain (decompressed) bytes of a local file; InputError naming ``where`` (default: path)."""
    path = Path(path)
    where = where or str(path)
    if not path.exists():
        raise InputError(where, "no such file")
    if not path.is_file():
        raise InputError(where, "not a file")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(where, f"file larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(where, f"cannot read file ({exc.strerror or type(exc).__name__})"
                         ) from None
    return decompress(data, where)[0]


def read_text(path: str | Path, where: str | None = None) -> str:
    """Decoded text of a local, possibly compressed file (see the module doc)."""
    where = where or str(path)
    return decode_text(read_bytes(path, where), where)
