"""Text lines from bytes that arrive in chunks: Amazon's report downloads and uploaded files."""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator


def decode_lines(chunks: Iterable[bytes], charset: str | None = None) -> Iterator[str]:
    """Lines (without terminators), decoded as a stream, never holding the whole text.

    A declared charset is trusted (a stray undecodable byte becomes U+FFFD, not a crash).
    Without one the text is read as UTF-8 (a BOM is dropped) and, from the first byte that is
    not UTF-8, as Windows-1252: Seller Central files come in either, and the two agree on
    ASCII, so the lines already read stay right. Lines end at "\\n" only ("\\r\\n" accepted):
    a field may hold other separators.
    """
    rest = ""
    texts = _declared(chunks, charset) if charset else _utf8_then_cp1252(chunks)
    for text in texts:
        if not text:
            continue
        parts = (rest + text).split("\n")
        rest = parts.pop()
        for line in parts:
            yield line.removesuffix("\r")
    if rest:
        yield rest.removesuffix("\r")


def _declared(chunks: Iterable[bytes], charset: str) -> Iterator[str]:
    name = "utf-8-sig" if codecs.lookup(charset).name == "utf-8" else charset
    decoder = codecs.getincrementaldecoder(name)(errors="replace")
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _utf8_then_cp1252(chunks: Iterable[bytes]) -> Iterator[str]:
    held = b""  # the start of a character split across chunks
    fallback: codecs.IncrementalDecoder | None = None
    started = False
    for chunk in chunks:
        if fallback is not None:
            yield fallback.decode(chunk)
            continue
        data = held + chunk
        try:
            text, used = codecs.utf_8_decode(data, "strict", False)
        except UnicodeDecodeError as error:
            fallback = codecs.getincrementaldecoder("cp1252")(errors="replace")
            text, used = data[: error.start].decode("utf-8"), len(data)
            text += fallback.decode(data[error.start :])
        held = data[used:]
        if not started and text:
            text, started = text.removeprefix("\ufeff"), True
        yield text
    if held:
        try:
            yield held.decode("utf-8")
        except UnicodeDecodeError:
            yield held.decode("cp1252", errors="replace")
