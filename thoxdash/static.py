"""Static files served by the app itself (no nginx, no CDN on a device), with caching headers and
gzip.

The Plotly bundle is the one file that matters: /static/plotly/plotly.min.js is the partial
`plotly.js-cartesian-dist-min` bundle (1.5 MB raw, ~0.5 MB gzipped) that `make setup` vendors into
static/plotly/ (scripts/ensure_plotly.py), and falls back to the full bundle from the plotly Python
package (4.8 MB raw, ~1.4 MB gzipped) when that step could not run (offline): Django's
FileSystemFinder searches static/ before the package's data, so the choice needs no setting and
collectstatic (nginx deployments) makes the same one. It is fetched once per browser, not per page.

Compressed bodies: a `<file>.gz` next to the file (written by the setup step) when it is at least as
new as the file, else gzip once in memory and keep it.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
import posixpath
from functools import lru_cache
from pathlib import Path

from asgiref.sync import sync_to_async
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.core.handlers.exception import response_for_exception
from django.http import HttpResponse, HttpResponseNotModified
from django.http.response import HttpResponseBase
from django.utils.http import http_date
from django.views.static import was_modified_since

COMPRESSIBLE = (".js", ".css", ".json", ".svg", ".map")
PLOTLY_JS = "plotly/plotly.min.js"
PLOTLY_MAX_AGE = 7 * 86_400  # the bundle only changes with the plotly package or the vendored pin
OWN_MAX_AGE = 300  # our JS/CSS: short, so an upgrade shows within minutes


def bundle_kind(path: str | os.PathLike[str]) -> str:
    """'partial' for a plotly.js partial bundle (its banner names the flavour, e.g.
    `plotly.js (cartesian - minified) v4.1.1`), 'full' for the full one (`plotly.js v4.1.1`)."""
    with open(path, "rb") as fh:
        head = fh.read(200)
    return "partial" if b"plotly.js (" in head else "full"


def plotly_bundle() -> tuple[str, str] | None:
    """(path, 'partial' | 'full') of the file served as /static/plotly/plotly.min.js: the vendored
    partial bundle in static/plotly/ when present, else the plotly package's full bundle."""
    found = finders.find(PLOTLY_JS)
    if not found:
        return None
    return str(found), bundle_kind(found)


@lru_cache(maxsize=32)
def _gzipped(path: str, mtime: float, size: int) -> bytes:
    pre = Path(path + ".gz")
    try:
        if pre.stat().st_mtime >= mtime:
            return pre.read_bytes()
    except OSError:
        pass
    with open(path, "rb") as fh:
        return gzip.compress(fh.read(), compresslevel=9, mtime=0)


def accepts_gzip(header: str) -> bool:
    """True if an Accept-Encoding value allows gzip: listed (or `*`) with a q above zero."""
    q_of: dict[str, bool] = {}
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        q = params.strip().replace(" ", "")
        refused = q.startswith("q=") and q[2:].rstrip("0").rstrip(".") in ("", "0")
        q_of.setdefault(coding.strip().lower(), not refused)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in q_of:
            return q_of[coding]
    return False


def cache_headers(response, path: str, base: str) -> None:
    max_age = PLOTLY_MAX_AGE if path.startswith(base + "plotly/") else OWN_MAX_AGE
    response["Cache-Control"] = f"public, max-age={max_age}"
    if path.endswith(COMPRESSIBLE):
        response["Vary"] = "Accept-Encoding"


def find_static(url_path: str) -> str | None:
    """The file a static path names, as django.contrib.staticfiles.views.serve finds it."""
    normalized = posixpath.normpath(url_path).lstrip("/")
    try:
        found = finders.find(normalized)
    except SuspiciousFileOperation:
        return None
    return str(found) if found and os.path.isfile(found) else None


class CachedStaticFiles(ASGIStaticFilesHandler):
    async def get_response_async(self, request):
        if (
            request.method in ("GET", "HEAD")
            and request.path.endswith(COMPRESSIBLE)
            and accepts_gzip(request.headers.get("Accept-Encoding", ""))
        ):
            # fast path: the compressed body straight from memory (or the .gz next to the file),
            # without opening the file for Django's serve first
            found = await sync_to_async(find_static, thread_sensitive=False)(
                self.file_path(request.path)
            )
            if found:
                stat = os.stat(found)
                if not was_modified_since(
                    request.META.get("HTTP_IF_MODIFIED_SINCE"), stat.st_mtime
                ):
                    response: HttpResponseBase = HttpResponseNotModified()
                else:
                    body = await sync_to_async(_gzipped, thread_sensitive=False)(
                        found, stat.st_mtime, stat.st_size
                    )
                    content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
                    response = HttpResponse(
                        b"" if request.method == "HEAD" else body, content_type=content_type
                    )
                    response["Content-Encoding"] = "gzip"
                    response["Content-Length"] = str(len(body))
                response["Last-Modified"] = http_date(stat.st_mtime)
                cache_headers(response, request.path, self.base_url.path)
                return response
        try:
            response = await super().get_response_async(request)
        except SuspiciousFileOperation as exc:  # /static/../… : 400, not a server error
            return await sync_to_async(response_for_exception)(request, exc)
        if response.status_code in (200, 304):
            cache_headers(response, request.path, self.base_url.path)
        return response
