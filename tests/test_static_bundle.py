"""The Plotly bundle the pages get (the vendored partial one, or the plotly package's full one when
the setup step could not fetch it), its vendoring (integrity-checked), and the caching and
encoding headers of static responses."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import AsyncRequestFactory, override_settings

from scripts import ensure_plotly
from thoxdash import static

ROOT = Path(__file__).resolve().parent.parent
# the plotly package's data folder, as settings.py lists it
PACKAGE_DIR = dict(d for d in settings.STATICFILES_DIRS if isinstance(d, tuple))["plotly"]
PARTIAL_HEAD = (
    b"/**\n* plotly.js (cartesian - minified) v4.1.1\n* Licensed under the MIT license\n*/\n"
)


@pytest.fixture
def static_dirs(tmp_path):
    """STATICFILES_DIRS as settings.py sets them, with a temporary project static/ folder."""
    own = tmp_path / "static"
    (own / "thoxdash").mkdir(parents=True)
    (own / "thoxdash" / "app.js").write_text("var x = 1;\n" * 200)
    finders.get_finder.cache_clear()
    with override_settings(STATICFILES_DIRS=[str(own), ("plotly", PACKAGE_DIR)]):
        yield own
    finders.get_finder.cache_clear()


def test_full_bundle_from_the_package_when_nothing_is_vendored(static_dirs):
    path, kind = static.plotly_bundle()
    assert kind == "full"
    assert Path(path) == Path(PACKAGE_DIR) / "plotly.min.js"


def test_vendored_partial_bundle_wins_over_the_package(static_dirs):
    (static_dirs / "plotly").mkdir()
    (static_dirs / "plotly" / "plotly.min.js").write_bytes(PARTIAL_HEAD + b"var Plotly = {};\n")
    path, kind = static.plotly_bundle()
    assert kind == "partial"
    assert Path(path) == static_dirs / "plotly" / "plotly.min.js"
    (static_dirs / "plotly" / "plotly.min.js").unlink()  # removed again: the fallback is back
    assert static.plotly_bundle()[1] == "full"


def test_this_checkout_serves_the_vendored_bundle_when_setup_fetched_it():
    finders.get_finder.cache_clear()
    path, kind = static.plotly_bundle()
    if ensure_plotly.installed(ROOT / "static" / "plotly") is None:
        assert kind == "full"  # offline setup: the full bundle still serves every page
        pytest.skip("no vendored partial bundle in this checkout (setup ran offline)")
    assert kind == "partial" and Path(path) == ROOT / "static" / "plotly" / "plotly.min.js"
    body = Path(path).read_bytes()
    # the API and trace types the pages use are in the partial bundle
    for name in (b"extendTraces", b"addTraces", b"relayout", b"restyle", b"react", b"heatmap"):
        assert name in body, name
    assert "MIT" in (ROOT / "static" / "plotly" / "LICENSE").read_text()


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_vendoring_checks_the_pinned_integrity(tmp_path, monkeypatch):
    good = _tarball(
        {
            "package/plotly-cartesian.min.js": PARTIAL_HEAD + b"var Plotly = {};\n",
            "package/LICENSE": b"The MIT License\n",
        }
    )
    tampered = _tarball({"package/plotly-cartesian.min.js": b"alert(1)", "package/LICENSE": b"MIT"})
    monkeypatch.setattr(
        ensure_plotly,
        "INTEGRITY",
        "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode(),
    )
    with pytest.raises(ValueError, match="integrity"):
        ensure_plotly.install(tampered, tmp_path)
    assert not (tmp_path / "plotly.min.js").exists()
    # main() never fails the setup: a bad or missing download leaves the fallback in place
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(tampered)
    assert ensure_plotly.main(["--dest", str(tmp_path), "--tarball", str(bad)]) == 0
    assert ensure_plotly.installed(tmp_path) is None
    ok = tmp_path / "ok.tgz"
    ok.write_bytes(good)
    assert ensure_plotly.main(["--dest", str(tmp_path), "--tarball", str(ok)]) == 0
    manifest = ensure_plotly.installed(tmp_path)
    assert manifest and manifest["package"] == "plotly.js-cartesian-dist-min"
    assert (
        gzip.decompress((tmp_path / "plotly.min.js.gz").read_bytes())
        == (tmp_path / "plotly.min.js").read_bytes()
    )
    assert json.loads((tmp_path / "bundle.json").read_text())["version"] == ensure_plotly.VERSION
    assert static.bundle_kind(tmp_path / "plotly.min.js") == "partial"


def _get(path: str, **headers):
    async def app(scope, receive, send):  # pragma: no cover - static paths never reach it
        raise AssertionError("not a static path")

    handler = static.CachedStaticFiles(app)
    request = AsyncRequestFactory().get(path, headers=headers)
    return async_to_sync(handler.get_response_async)(request)


def _body(response) -> bytes:
    if not getattr(response, "streaming", False):
        return response.content
    if response.is_async:

        async def collect() -> bytes:
            return b"".join([chunk async for chunk in response.streaming_content])

        data = async_to_sync(collect)()
    else:
        data = b"".join(response.streaming_content)
    response.close()
    return data


@pytest.mark.django_db  # response.close() fires request_finished -> close_old_connections
def test_gzip_and_cache_headers(static_dirs):
    r = _get("/static/thoxdash/app.js", accept_encoding="gzip, deflate")
    assert r.status_code == 200
    assert r["Content-Encoding"] == "gzip" and r["Vary"] == "Accept-Encoding"
    assert r["Cache-Control"] == f"public, max-age={static.OWN_MAX_AGE}"
    assert r["Content-Type"].startswith("text/javascript")
    assert gzip.decompress(_body(r)) == (static_dirs / "thoxdash" / "app.js").read_bytes()
    assert int(r["Content-Length"]) == len(r.content)
    # revalidation: 304 with the same caching headers, no body
    again = _get(
        "/static/thoxdash/app.js", accept_encoding="gzip", if_modified_since=r["Last-Modified"]
    )
    assert again.status_code == 304 and again["Cache-Control"] == r["Cache-Control"]
    assert again["Vary"] == "Accept-Encoding"
    # a client that refuses gzip gets the identity body
    plain = _get("/static/thoxdash/app.js", accept_encoding="gzip;q=0, identity")
    assert plain.status_code == 200 and not plain.has_header("Content-Encoding")
    assert _body(plain) == (static_dirs / "thoxdash" / "app.js").read_bytes()
    assert plain["Vary"] == "Accept-Encoding"


@pytest.mark.django_db  # response.close() fires request_finished -> close_old_connections
def test_plotly_bundle_is_cached_for_a_week_and_precompressed(static_dirs):
    (static_dirs / "plotly").mkdir()
    js = PARTIAL_HEAD + b"var Plotly = {};\n" * 100
    (static_dirs / "plotly" / "plotly.min.js").write_bytes(js)
    (static_dirs / "plotly" / "plotly.min.js.gz").write_bytes(gzip.compress(js, mtime=0))
    r = _get("/static/plotly/plotly.min.js", accept_encoding="gzip")
    assert r.status_code == 200 and r["Content-Encoding"] == "gzip"
    assert r["Cache-Control"] == f"public, max-age={static.PLOTLY_MAX_AGE}"
    assert r.content == (static_dirs / "plotly" / "plotly.min.js.gz").read_bytes()
    assert gzip.decompress(r.content) == js


@pytest.mark.django_db  # response.close() fires request_finished -> close_old_connections
def test_missing_and_traversal_paths_are_not_served(static_dirs):
    assert _get("/static/thoxdash/nope.js", accept_encoding="gzip").status_code == 404
    assert _get("/static/../thoxdash/settings.py", accept_encoding="gzip").status_code in (400, 404)
    assert _get("/static/../../etc/passwd.js", accept_encoding="gzip").status_code in (400, 404)


def test_accept_encoding_parsing():
    assert static.accepts_gzip("gzip, deflate, br")
    assert static.accepts_gzip("deflate, GZIP;q=0.5")
    assert not static.accepts_gzip("gzip;q=0")
    assert not static.accepts_gzip("")
    assert not static.accepts_gzip("br, identity")
    assert not static.accepts_gzip("gzip; q=0.000")
    assert static.accepts_gzip("*;q=0, gzip")


def test_offline_setup_falls_back_and_does_not_retry_at_every_run(tmp_path, monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        calls.append(1)
        raise OSError("network is unreachable")

    monkeypatch.setattr(ensure_plotly, "download", offline)
    assert ensure_plotly.main(["--dest", str(tmp_path)]) == 0
    assert ensure_plotly.installed(tmp_path) is None and not (tmp_path / "plotly.min.js").exists()
    assert ensure_plotly.main(["--dest", str(tmp_path)]) == 0
    assert len(calls) == 1  # backed off
    assert ensure_plotly.main(["--dest", str(tmp_path), "--force"]) == 0
    assert len(calls) == 2


def test_served_by_the_running_app_with_encoding_and_cache_headers(stack):
    import httpx

    url = stack.url + "/static/plotly/plotly.min.js"
    r = httpx.get(url, headers={"Accept-Encoding": "gzip"})  # httpx decodes the body
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.headers["cache-control"] == f"public, max-age={static.PLOTLY_MAX_AGE}"
    assert r.headers["content-type"].startswith("text/javascript")
    vendored = ensure_plotly.installed(ROOT / "static" / "plotly") is not None
    assert (b"plotly.js (cartesian - minified) v" in r.content[:200]) == vendored
    assert len(r.content) > 1_000_000
    again = httpx.get(
        url, headers={"Accept-Encoding": "gzip", "If-Modified-Since": r.headers["last-modified"]}
    )
    assert again.status_code == 304 and again.headers["cache-control"] == r.headers["cache-control"]
    own = httpx.get(stack.url + "/static/thoxdash/device.js", headers={"Accept-Encoding": "gzip"})
    assert own.headers["content-encoding"] == "gzip"
    assert own.headers["cache-control"] == f"public, max-age={static.OWN_MAX_AGE}"
    if vendored:
        licence = httpx.get(stack.url + "/static/plotly/LICENSE")
        assert licence.status_code == 200 and "MIT" in licence.text
