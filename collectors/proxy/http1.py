"""Just enough HTTP/1.1 for a pass-through proxy: head parsing and body framing.

Response bodies are never re-encoded: the framing decoders only find where a message ends (and
hand the payload to the timing parser) while the proxy forwards the raw bytes as they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096


class HttpError(ValueError):
    """A message that cannot be framed safely."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


_NO_TOKENS: frozenset[bytes] = frozenset()


@dataclass
class Head:
    first: bytes  # request line or status line
    lines: list[tuple[bytes, bytes, bytes]] = field(
        default_factory=list
    )  # (lower name, name as sent, value without surrounding whitespace)
    index: dict[bytes, list[bytes]] = field(default_factory=dict)  # lower name -> values

    def __post_init__(self) -> None:
        if self.lines and not self.index:
            for lname, _, value in self.lines:
                self.index.setdefault(lname, []).append(value)

    def get(self, name: bytes) -> bytes | None:
        values = self.index.get(name)
        return values[0] if values else None

    def values(self, name: bytes) -> list[bytes]:
        return self.index.get(name) or []

    def tokens(self, name: bytes) -> frozenset[bytes]:
        values = self.index.get(name)
        if not values:
            return _NO_TOKENS
        return frozenset(t.strip().lower() for value in values for t in value.split(b","))


def parse_head(raw: bytes) -> Head:
    """A response head (from the runtime): lenient on values, strict on names and framing."""
    lines = raw.split(b"\r\n")
    parsed: list[tuple[bytes, bytes, bytes]] = []
    index: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise HttpError(f"malformed header line {line[:60]!r}")
        lname = name.lower()
        value = value.strip()
        parsed.append((lname, name, value))
        values = index.get(lname)
        if values is None:
            index[lname] = [value]
        else:
            values.append(value)
    return Head(lines[0], parsed, index)


def content_length(head: Head) -> int | None:
    values = head.values(b"content-length")
    if not values:
        return None
    # bytes.isdigit() is ASCII-only (str.isdigit would take "¹" or "٣")
    if len(set(values)) != 1 or not values[0].isdigit():
        raise HttpError("bad Content-Length")
    return int(values[0])


class LengthBody:
    """A body of known length."""

    def __init__(self, length: int):
        self.remaining = length

    def feed(self, data: bytes) -> tuple[bytes, int, bool]:
        """(payload, bytes of `data` that belong to this message, finished)."""
        take = min(self.remaining, len(data))
        self.remaining -= take
        payload = data if take == len(data) else data[:take]
        return payload, take, self.remaining == 0


class CloseBody:
    """A body that ends when the connection closes."""

    def feed(self, data: bytes) -> tuple[bytes, int, bool]:
        return data, len(data), False


_HEX = frozenset(b"0123456789abcdefABCDEF")
MAX_CHUNK_DIGITS = 16


def chunk_size(line: bytes) -> int:
    """The size in a chunk-size line (RFC 9112 7.1: 1*HEXDIG, then optional BWS and ;extensions).

    Stricter than int(x, 16), which would also take "0x1f", "+1f", "1_f" or surrounding spaces: a
    proxy that reads a chunk boundary differently from the runtime behind it is a smuggling bug."""
    digits = line.split(b";", 1)[0].rstrip(b" \t") if b";" in line else line
    if not digits or len(digits) > MAX_CHUNK_DIGITS or not _HEX.issuperset(digits):
        raise HttpError("bad chunk size", 502)
    size = int(digits, 16)
    if digits is line and size and len(_SIZES) < _SIZES_MAX:
        _SIZES[line] = size
    return size


# chunk-size lines of plain hex digits, as streams send them, and their values: looked up rather
# than re-validated for every chunk (the strict parse fills it; bounded)
_SIZES: dict[bytes, int] = {}
_SIZES_MAX = 4096


class ChunkedBody:
    """Transfer-Encoding: chunked, decoded incrementally (the raw bytes are forwarded as is)."""

    SIZE, DATA, CRLF, TRAILER = range(4)

    def __init__(self) -> None:
        self.state = self.SIZE
        self.remaining = 0
        self.pending = b""
        self.trailers = 0  # bytes of trailer lines so far (bounded like a head)

    def one_chunk(self, data: bytes) -> bytes | None:
        """The payload when `data` is exactly one whole chunk at a chunk boundary (the usual read
        of a token stream: one token, one event), else None (then `feed` it)."""
        if self.state != self.SIZE or self.pending:
            return None
        nl = data.find(b"\r\n")
        if 0 < nl <= MAX_CHUNK_DIGITS and data[-2:] == b"\r\n":
            size = _SIZES.get(data[:nl])
            if size is not None and nl + 4 + size == len(data):
                return data[nl + 2 : nl + 2 + size]
        return None

    def feed(self, data: bytes) -> tuple[bytes, int, bool]:
        held = len(self.pending)
        if not held:
            whole = self.one_chunk(data)
            if whole is not None:
                return whole, len(data), False
        buf = self.pending + data if held else data
        pos = 0
        out: list[bytes] = []
        n = len(buf)
        while pos < n:
            if self.state == self.DATA:
                take = min(self.remaining, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining:
                    break
                self.state = self.CRLF
            elif self.state == self.SIZE:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if n - pos > MAX_CHUNK_LINE:
                        raise HttpError("chunk size line too long", 502)
                    break
                size = chunk_size(buf[pos:nl])
                pos = nl + 2
                if size == 0:
                    self.state = self.TRAILER
                elif pos + size + 2 <= n:  # the whole chunk is here: take it in one step
                    if buf[pos + size : pos + size + 2] != b"\r\n":
                        raise HttpError("chunk not followed by CRLF", 502)
                    out.append(buf[pos : pos + size])
                    pos += size + 2
                else:
                    self.remaining = size
                    self.state = self.DATA
            elif self.state == self.CRLF:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise HttpError("chunk not followed by CRLF", 502)
                pos += 2
                self.state = self.SIZE
            else:  # trailers, up to an empty line
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if n - pos > MAX_HEAD:
                        raise HttpError("trailers too long", 502)
                    break
                empty = nl == pos
                self.trailers += nl - pos + 2
                if self.trailers > MAX_HEAD:
                    raise HttpError("trailers too long", 502)
                pos = nl + 2
                if empty:
                    self.pending = b""
                    return b"".join(out), pos - held, True
        self.pending = buf[pos:]
        return b"".join(out), len(data), False


def dechunk(body: bytes) -> tuple[bytes, int] | None:
    """A complete chunked request body at the start of `body`: (payload, bytes used), or None."""
    decoder = ChunkedBody()
    payload, used, done = decoder.feed(body)
    return (payload, used) if done else None
