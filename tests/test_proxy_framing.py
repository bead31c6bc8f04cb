"""Property tests of the proxy's HTTP/1 framing: whatever bytes arrive, the parsers either give the
right answer or raise HttpError (the proxy answers 400/502), never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.proxy.http1 import (
    ChunkedBody,
    HttpError,
    chunk_size,
    content_length,
    dechunk,
    parse_head,
)


def encode_chunked(parts: list[bytes], ext: bool) -> bytes:
    out = b"".join(
        f"{len(p):x}".encode() + (b";name=v" if ext else b"") + b"\r\n" + p + b"\r\n" for p in parts if p
    )
    return out + b"0\r\n\r\n"


def feed_in_pieces(decoder: ChunkedBody, data: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    payload, done, start = b"", False, 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        piece = data[start:cut]
        start = cut
        got, _used, done = decoder.feed(piece)
        payload += got
        if done:
            break
    return payload, done


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans(), st.lists(st.integers(0, 5000), max_size=12))
def test_chunked_roundtrip_whatever_the_cuts(parts, ext, cuts):
    data = encode_chunked(parts, ext)
    payload, done = feed_in_pieces(ChunkedBody(), data, cuts)
    assert done and payload == b"".join(parts)
    assert dechunk(data + b"next request") == (b"".join(parts), len(data))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=6))
def test_chunked_garbage_raises_only_http_error(data, cuts):
    try:
        feed_in_pieces(ChunkedBody(), data, cuts)
    except HttpError as exc:
        assert exc.status == 502


@pytest.mark.parametrize("line", [b"0x1f", b"+1f", b"1_f", b" 1f", b"-1", b"", b"\xd9\xa3", b"1" * 17, b"g"])
def test_lenient_chunk_sizes_are_refused(line):
    with pytest.raises(HttpError):
        chunk_size(line)


@pytest.mark.parametrize(("line", "size"), [(b"1f", 31), (b"1F;ext=1", 31), (b"a \t;x", 10), (b"0", 0)])
def test_chunk_sizes(line, size):
    assert chunk_size(line) == size


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_head_garbage_raises_only_http_error(raw):
    try:
        head = parse_head(raw)
        length = content_length(head)
    except HttpError:
        return
    assert length is None or length >= 0


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(0, 2**40).map(lambda n: str(n).encode()),
        st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b),
    )
)
def test_content_length_is_ascii_decimal_or_refused(value):
    head = parse_head(b"POST /api/generate HTTP/1.1\r\ncontent-length: " + value)
    stripped = value.strip()
    if stripped.isdigit():  # bytes.isdigit is ASCII-only
        assert content_length(head) == int(stripped)
    else:
        with pytest.raises(HttpError):
            content_length(head)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.booleans(), st.booleans())
def test_chunked_fed_one_chunk_per_read_as_streams_arrive(parts, upper, again):
    """The one-whole-chunk-per-read shortcut gives what the full decoder gives."""
    decoder = ChunkedBody()
    for _ in range(2 if again else 1):  # twice: the second time the sizes are known lines
        for part in parts:
            size = (f"{len(part):X}" if upper else f"{len(part):x}").encode()
            got, used, done = decoder.feed(size + b"\r\n" + part + b"\r\n")
            assert (got, used, done) == (part, len(size) + 4 + len(part), False)
    assert decoder.feed(b"0\r\n\r\nnext") == (b"", 5, True)


@pytest.mark.parametrize("read", [b"5\r\nhello\r\n", b"5\r\nhel\r\n\r\n"])
def test_a_known_size_line_still_checks_the_chunk_end(read):
    decoder = ChunkedBody()
    assert decoder.feed(read) == (read[3:8], 10, False)
    with pytest.raises(HttpError):
        ChunkedBody().feed(b"5\r\nhelloXX")
