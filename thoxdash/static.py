"""Static files served by the app itself (no nginx, no CDN on a device), with caching headers and
gzip: plotly.min.js is ~4.7 MB raw and ~1.4 MB gzipped, and should be fetched once, not per page."""

from __future__ import annotations

import gzip
import os
from functools import lru_cache

from asgiref.sync import sync_to_async
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.http import HttpResponse
from django.utils.http import http_date

COMPRESSIBLE = (".js", ".css", ".json", ".svg", ".map")
PLOTLY_MAX_AGE = 7 * 86_400  # the bundle only changes with the plotly package
OWN_MAX_AGE = 300            # our JS/CSS: short, so an upgrade shows within minutes


@lru_cache(maxsize=32)
def _gzipped(path: str, mtime: float, size: int) -> bytes:
    with open(path, "rb") as fh:
        return gzip.compress(fh.read(), compresslevel=6, mtime=0)


class CachedStaticFiles(ASGIStaticFilesHandler):
    async def get_response_async(self, request):
        response = await super().get_response_async(request)
        if response.status_code != 200:
            return response
        max_age = PLOTLY_MAX_AGE if request.path.startswith(self.base_url.path + "plotly/") else OWN_MAX_AGE
        if request.path.endswith(COMPRESSIBLE) and "gzip" in request.headers.get("Accept-Encoding", ""):
            found = finders.find(self.file_path(request.path))
            if found:
                stat = os.stat(found)
                body = await sync_to_async(_gzipped, thread_sensitive=False)(found, stat.st_mtime, stat.st_size)
                gz = HttpResponse(body, content_type=response.get("Content-Type"))
                gz["Content-Encoding"] = "gzip"
                gz["Content-Length"] = str(len(body))
                gz["Last-Modified"] = http_date(stat.st_mtime)
                response.close()
                response = gz
        response["Cache-Control"] = f"public, max-age={max_age}"
        response["Vary"] = "Accept-Encoding"
        return response
