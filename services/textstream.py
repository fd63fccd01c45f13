"""Text lines from bytes that arrive in chunks: Amazon's report downloads and uploaded files.

Everything here is linear in the input and bounded in memory, whatever the bytes are: a line
longer than MAX_LINE_CHARS and gzip data that unpacks to more than its ceiling are refused.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterable, Iterator

from services.errors import ErrorKind, ServiceError

# Amazon's longest real rows are a few KB; a line of a megabyte is not a report. Nor are
# thousands of empty lines in a row, the cheapest bomb (each line costs time, not bytes).
MAX_LINE_CHARS = 1 << 20
MAX_EMPTY_RUN = 10_000
# The ceiling for any report once unpacked, and the most a gzip may grow by (deflate can
# reach about 1,000:1 on repeated bytes; Amazon's tab-separated reports pack 4 to 15:1).
MAX_UNPACKED_BYTES = 4 << 30
MAX_GZIP_RATIO = 100
_RATIO_FLOOR = 64 << 20  # a small file may unpack to this much, whatever its ratio
_UNPACK_CHUNK = 256 * 1024  # the most one compressed chunk becomes in memory at once
SNIFF_BYTES = 64 * 1024  # the prefix that decides the encoding of a file without a charset

# Labels that mean another codec in practice (WHATWG Encoding Standard): files labelled
# ISO-8859-1 hold Windows-1252 characters such as € and ’ (the two agree on every printable
# Latin-1 character), and Japanese "Shift_JIS" is Microsoft's superset, Windows-31J.
_CODEC_FOR_LABEL = {"iso8859-1": "cp1252", "latin-1": "cp1252", "shift_jis": "cp932"}
_KANA = re.compile(r"[\u3041-\u30ff]")  # hiragana and full-width katakana


def unpack_limit(packed_size: int | None) -> int:
    """The most a gzip of packed_size bytes may unpack to (unknown size: the ceiling)."""
    if packed_size is None:
        return MAX_UNPACKED_BYTES
    return min(MAX_UNPACKED_BYTES, max(_RATIO_FLOOR, packed_size * MAX_GZIP_RATIO))


def gunzip(chunks: Iterable[bytes], *, source: str, limit: int) -> Iterator[bytes]:
    """Incremental gunzip, including files made of several concatenated gzip members.

    Damaged or truncated data, or more than `limit` bytes unpacked, raise BAD_DATA; no single
    output chunk is larger than _UNPACK_CHUNK, so a bomb never sits in memory whole.
    """
    decompressor = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    pending = False  # bytes of an unfinished member have been read
    total = 0
    try:
        for chunk in chunks:
            data = chunk
            while data or pending:
                pending = True
                out = decompressor.decompress(data, _UNPACK_CHUNK)
                total += len(out)
                if total > limit:
                    raise ServiceError(
                        ErrorKind.BAD_DATA,
                        f"{source} unpacks to more than {limit:,} bytes: "
                        "not a report this app reads.",
                        retryable=False,
                    )
                if out:
                    yield out
                if decompressor.eof:
                    data, pending = decompressor.unused_data, False
                    decompressor = zlib.decompressobj(wbits=47)
                    continue
                data = decompressor.unconsumed_tail
                if not data and len(out) < _UNPACK_CHUNK:
                    break  # this chunk is used up: the member goes on in the next one
        if pending:
            raise zlib.error("gzip stream ended early")
    except zlib.error:
        raise ServiceError(
            ErrorKind.BAD_DATA, f"{source} is damaged or truncated gzip data.", retryable=False
        ) from None


def sniff_encoding(prefix: bytes, *, complete: bool = False) -> str:
    """The codec of a text whose first bytes are `prefix` (`complete`: the whole text).

    A BOM decides; else valid UTF-8 is UTF-8; else text that decodes cleanly as Windows-31J
    and holds kana is Japanese; else Windows-1252, which decodes any byte.
    """
    if prefix.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if prefix.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the BOM and drops it
    for name in ("utf-8", "cp932"):
        decoder = codecs.getincrementaldecoder(name)()
        try:
            text = decoder.decode(prefix, final=complete)
        except UnicodeDecodeError:
            continue
        if name == "utf-8" or _KANA.search(text):
            return name
    return "cp1252"


def _prefix(chunks: Iterator[bytes]) -> bytes:
    """The first SNIFF_BYTES or more of a stream (all of it if shorter), taken from it."""
    prefix = b""
    for chunk in chunks:
        prefix += chunk
        if len(prefix) >= SNIFF_BYTES:
            break
    return prefix


def sniff_stream(chunks: Iterable[bytes]) -> str:
    """The encoding of a whole text read as a stream (a file on disk can be read twice): as
    `sniff_encoding`, except that UTF-8 must hold to the end, since a Windows-1252 report
    can be plain ASCII for its first rows."""
    iterator = iter(chunks)
    prefix = _prefix(iterator)
    name = sniff_encoding(prefix, complete=len(prefix) < SNIFF_BYTES)
    if name != "utf-8":
        return name
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(prefix)
        for chunk in iterator:
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return name


def decode_lines(
    chunks: Iterable[bytes],
    charset: str | None = None,
    *,
    source: str = "The file",
    encoding: str | None = None,
) -> Iterator[str]:
    """Lines (without terminators), decoded as a stream, never holding the whole text.

    The encoding is decided once: a declared charset is trusted, else the caller's `encoding`
    (`sniff_stream` over a whole file), else `sniff_encoding` reads the first SNIFF_BYTES. A
    byte that does not fit it becomes U+FFFD, for the parser to fail its row with the line;
    so does a NUL, though one in the first bytes means binary data.
    Lines end at "\\n", "\\r\\n" or a lone "\\r" (old Mac files). A line longer than
    MAX_LINE_CHARS raises BAD_DATA naming `source` and the line.
    """
    iterator = iter(chunks)
    prefix = _prefix(iterator)
    if not prefix:
        return
    if charset:
        name = codecs.lookup(charset).name
        name = "utf-8-sig" if name == "utf-8" else _CODEC_FOR_LABEL.get(name, name)
    else:
        name = encoding or sniff_encoding(prefix, complete=len(prefix) < SNIFF_BYTES)
        if b"\x00" in prefix and name != "utf-16":
            raise ServiceError(
                ErrorKind.BAD_DATA,
                f"{source} holds binary data, not a text report.",
                retryable=False,
            )
    decoder = codecs.getincrementaldecoder(name)(errors="replace")

    def texts() -> Iterator[str]:
        yield decoder.decode(prefix)
        for chunk in iterator:
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)

    yield from _split(texts(), source)


def _split(texts: Iterable[str], source: str) -> Iterator[str]:
    """Lines from text in pieces: each piece is scanned once, so the time is linear."""
    held: list[str] = []  # the start of a line that goes on in a later piece
    held_size = number = empty_run = 0
    carry = ""  # a "\r" at the end of a piece: its "\n" may start the next one
    for piece in texts:
        text = carry + piece.replace("\x00", "\ufffd")
        carry = ""
        if text.endswith("\r"):
            text, carry = text[:-1], "\r"
        if "\r" in text:  # one break each, as "\r\n|\r|\n" splits; str methods are 10x faster
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        parts = text.split("\n")
        if held:
            held.append(parts[0])
            held_size += len(parts[0])
            if len(parts) == 1:
                _check_length(held_size, number + 1, source)
                continue
            parts[0], held, held_size = "".join(held), [], 0
        tail = parts.pop()  # the start of a line that goes on in the next piece, if any
        # The lines of a piece are checked together, in C; lines one at a time only when a
        # piece holds an empty or an overlong line, so that those raise where they are.
        if parts and "" not in parts and max(map(len, parts)) <= MAX_LINE_CHARS:
            number += len(parts)
            empty_run = 0
            yield from parts
        else:
            for part in parts:
                number += 1
                _check_length(len(part), number, source)
                empty_run = 0 if part else empty_run + 1
                if empty_run > MAX_EMPTY_RUN:
                    raise ServiceError(
                        ErrorKind.BAD_DATA,
                        f"{source}: lines {number - MAX_EMPTY_RUN:,} to {number:,} are empty: "
                        "not a report this app reads.",
                        retryable=False,
                    )
                yield part
        if tail:
            held, held_size = [tail], len(tail)
            _check_length(held_size, number + 1, source)
    if held or carry:
        number += 1
        yield "".join(held)


def _check_length(size: int, number: int, source: str) -> None:
    if size > MAX_LINE_CHARS:
        raise ServiceError(
            ErrorKind.BAD_DATA,
            f"{source}: line {number} is longer than {MAX_LINE_CHARS:,} characters: "
            "not a report this app reads.",
            retryable=False,
        )
