"""Just enough HTTP/1.1 for a pass-through proxy: head parsing and body framing.

Response bodies are never re-encoded: the framing decoders only find where a message ends (and
hand the payload to the timing parser) while the proxy forwards the raw bytes as they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.text import is_uint

MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096


class HttpError(ValueError):
    """A message that cannot be framed safely."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Head:
    first: bytes                                          # request line or status line
    lines: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # (lower name, value, raw line)

    def get(self, name: bytes) -> bytes | None:
        for lname, value, _ in self.lines:
            if lname == name:
                return value
        return None

    def values(self, name: bytes) -> list[bytes]:
        return [value for lname, value, _ in self.lines if lname == name]

    def tokens(self, name: bytes) -> set[bytes]:
        out: set[bytes] = set()
        for value in self.values(name):
            out.update(t.strip().lower() for t in value.split(b","))
        return out


def parse_head(raw: bytes) -> Head:
    lines = raw.split(b"\r\n")
    head = Head(lines[0])
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise HttpError(f"malformed header line {line[:60]!r}")
        head.lines.append((name.lower(), value.strip(), line))
    return head


def content_length(head: Head) -> int | None:
    values = head.values(b"content-length")
    if not values:
        return None
    if len(set(values)) != 1 or not is_uint(values[0]):
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


class ChunkedBody:
    """Transfer-Encoding: chunked, decoded incrementally (the raw bytes are forwarded as is)."""

    SIZE, DATA, CRLF, TRAILER = range(4)

    def __init__(self) -> None:
        self.state = self.SIZE
        self.remaining = 0
        self.pending = b""

    def feed(self, data: bytes) -> tuple[bytes, int, bool]:
        held = len(self.pending)
        buf = self.pending + data if held else data
        pos = 0
        out: list[bytes] = []
        n = len(buf)
        while pos < n:
            if self.state == self.DATA:
                take = min(self.remaining, n - pos)
                out.append(buf[pos:pos + take])
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
                line = buf[pos:nl]
                try:
                    size = int(line.split(b";", 1)[0] if b";" in line else line, 16)
                except ValueError:
                    raise HttpError("bad chunk size", 502) from None
                if size < 0:
                    raise HttpError("bad chunk size", 502)
                pos = nl + 2
                if size == 0:
                    self.state = self.TRAILER
                elif pos + size + 2 <= n:  # the whole chunk is here: take it in one step
                    if buf[pos + size:pos + size + 2] != b"\r\n":
                        raise HttpError("chunk not followed by CRLF", 502)
                    out.append(buf[pos:pos + size])
                    pos += size + 2
                else:
                    self.remaining = size
                    self.state = self.DATA
            elif self.state == self.CRLF:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
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
