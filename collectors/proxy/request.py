"""Requests from clients, read strictly (the way nginx reads them) and incrementally.

A request the proxy cannot frame exactly as any runtime behind it would is refused, never
forwarded: 400 for a control character (NUL, bare CR or LF, anything below 0x20 but TAB, DEL) in
the request line, a header name or value, for a header name that is not a token, for a target that
is not in origin form (`/path?query`), for duplicate Host, Transfer-Encoding other than chunked or
beside Content-Length, conflicting Content-Length, malformed chunks; 505 for HTTP other than 1.x;
431 for a head over 64 KiB; 413 for a body over the configured limit (at once for a
Content-Length above it). The forwarded head is rebuilt from the parsed names and values.

Bodies are taken in as they arrive: a chunked body is decoded incrementally (each byte is looked
at once, whatever the chunk sizes) and its framing dropped as it goes, so memory is the payload.

`Request.path` is the path admission and recording key on: percent-decoded, dot segments removed,
repeated slashes merged (and matched without regard to case, collectors.proxy.runtime_hooks), so
`/api/gener%61te`, `//api/./generate` or `/API/generate` cannot slip past a throttle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from collectors.proxy.http1 import MAX_HEAD, ChunkedBody, Head, HttpError, content_length

# RFC 9110 5.6.2 token
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# control characters other than TAB, CR and LF (those two are checked to come only as CRLF)
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_METHODS = frozenset((b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"))
# header names seen before, as sent -> lower-cased: a token check once per distinct name (bounded)
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 1024
# origin-form (RFC 9112 3.2.1): an absolute path and an optional query, visible ASCII only
_ORIGIN_FORM = re.compile(rb"/[\x21-\x7e]*")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")


@dataclass
class Request:
    method: bytes
    target: bytes  # as the client sent it (validated origin-form)
    version: bytes  # HTTP/1.0 or HTTP/1.1
    head: Head
    body: bytes
    path: str  # normalised, case kept (see the module docstring): what admission and records key on


def normalise_path(target: bytes) -> str:
    """The path of an origin-form target as a router would see it, for classification."""
    raw = target.split(b"?", 1)[0]
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    if b"/." in raw or b"//" in raw:
        segments: list[bytes] = []
        for seg in raw.split(b"/"):
            if seg == b"..":
                if segments:
                    segments.pop()
            elif seg and seg != b".":
                segments.append(seg)
        trailing = raw.endswith((b"/", b"/.", b"/..")) and bool(segments)
        raw = b"/" + b"/".join(segments) + (b"/" if trailing else b"")
    return raw.decode("latin-1")


def parse_request_head(raw: bytes) -> tuple[bytes, bytes, bytes, Head]:
    """(method, target, version, head) of a request head without its final CRLFCRLF."""
    bad = _CTL.search(raw)
    if bad is not None:
        raise HttpError(f"control character {bad.group()!r} in the request head")
    crlf = raw.count(b"\r\n")
    if raw.count(b"\r") != crlf or raw.count(b"\n") != crlf:
        raise HttpError("bare CR or LF in the request head")
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HttpError("malformed request line")
    method, target, version = parts
    if method not in _METHODS and _TOKEN.fullmatch(method) is None:
        raise HttpError("malformed method")
    if version == b"HTTP/1.1":
        version = b"HTTP/1.1"
    else:
        m = _VERSION.fullmatch(version)
        if m is None:
            raise HttpError("malformed HTTP version")
        if m.group(1) != b"1":
            raise HttpError("only HTTP/1.x is supported", 505)
        version = b"HTTP/1.0" if m.group(2) == b"0" else b"HTTP/1.1"
    if _ORIGIN_FORM.fullmatch(target) is None:
        raise HttpError("request target must be an absolute path (origin-form)")
    parsed: list[tuple[bytes, bytes, bytes]] = []
    index: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        lname = _NAMES.get(name)
        if lname is None:
            if not sep or _TOKEN.fullmatch(name) is None:
                raise HttpError(f"malformed header line {line[:60]!r}")
            lname = name.lower()
            if len(_NAMES) < _NAMES_MAX:
                _NAMES[name] = lname
        elif not sep:
            raise HttpError(f"malformed header line {line[:60]!r}")
        value = value.strip(b" \t")
        parsed.append((lname, name, value))
        values = index.get(lname)
        if values is None:
            index[lname] = [value]
        else:
            values.append(value)
    if len(index.get(b"host", ())) > 1:
        raise HttpError("duplicate Host header")
    return method, target, version, Head(lines[0], parsed, index)


class RequestReader:
    """A client connection's requests, one at a time, from its bytes as they arrive.

    `next(buf)` takes a complete request off the front of `buf` or returns None (more bytes
    needed); it raises HttpError (status 400, 413, 431 or 505) for a request it refuses."""

    def __init__(self, max_body: int):
        self.max_body = max_body
        self._reset()

    def _reset(self) -> None:
        self._first: tuple[bytes, bytes, bytes, Head] | None = None
        self._length = 0
        self._chunked: ChunkedBody | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._continue = False

    @property
    def held(self) -> int:
        """Payload bytes of a chunked body decoded so far (held here until the request is whole)."""
        return self._size

    def continue_due(self) -> bool:
        """True once, when the head asked for `100 Continue` and the body has not arrived."""
        due, self._continue = self._continue, False
        return due

    def next(self, buf: bytearray) -> Request | None:
        if self._first is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise HttpError("request head too large", 431)
                if _BARE_LF.search(buf) is not None:
                    raise HttpError("bare LF in the request head")
                return None
            if end > MAX_HEAD:
                raise HttpError("request head too large", 431)
            self._begin(parse_request_head(bytes(buf[:end])))
            del buf[: end + 4]
        if self._chunked is not None:
            if not buf:
                return None
            try:
                payload, used, done = self._chunked.feed(bytes(buf))
            except HttpError as exc:
                raise HttpError(str(exc)) from None  # the client's framing: 400
            del buf[:used]
            if payload:
                self._parts.append(payload)
                self._size += len(payload)
            if self._size + self._chunked.remaining > self.max_body:
                raise HttpError(f"request body over {self.max_body} bytes", 413)
            if not done:
                return None
            body = b"".join(self._parts)
        else:
            if len(buf) < self._length:
                return None
            body = bytes(buf[: self._length])
            del buf[: self._length]
        assert self._first is not None
        method, target, version, head = self._first
        self._reset()
        return Request(method, target, version, head, body, normalise_path(target))

    def _begin(self, first: tuple[bytes, bytes, bytes, Head]) -> None:
        head = first[3]
        encodings = head.tokens(b"transfer-encoding")
        if encodings:
            if encodings != {b"chunked"} or len(head.values(b"transfer-encoding")) != 1:
                raise HttpError("unsupported Transfer-Encoding")
            if head.get(b"content-length") is not None:
                raise HttpError("Transfer-Encoding with Content-Length")
            self._chunked = ChunkedBody()
        else:
            length = content_length(head) or 0
            if length > self.max_body:
                raise HttpError(f"request body of {length} bytes is over {self.max_body}", 413)
            self._length = length
        self._first = first
        self._continue = (head.get(b"expect") or b"").lower() == b"100-continue"
