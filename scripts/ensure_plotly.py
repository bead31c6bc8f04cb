"""Vendor a Plotly partial bundle (only the trace types the pages draw) for the dashboard.

The full plotly.min.js in the plotly Python package is ~4.8 MB (1.47 MB gzipped) and costs a cold
browser about a second to parse and run on a small CPU. The pages draw only scatter lines and one
heatmap, so `make setup` fetches the pinned `plotly.js-cartesian-dist-min` tarball (MIT) from the
npm registry once, checks its sha512 `integrity`, and extracts the bundle and its LICENSE into
static/plotly/ (ignored by git). Django's FileSystemFinder searches static/ before the plotly
package's data, so /static/plotly/plotly.min.js is then the partial bundle; without it (offline,
a failed download) the full bundle from the Python package is served and every page still works.

Idempotent, never fails the setup: prints one line and exits 0 whatever happens.

    python scripts/ensure_plotly.py [--force] [--dest DIR] [--tarball FILE]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "static" / "plotly"

PACKAGE = "plotly.js-cartesian-dist-min"
VERSION = "4.1.1"  # the plotly.js version bundled by the pinned plotly Python package (7.1.0)
INTEGRITY = "sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z6w4P5O0Jus/Qr5EefHVeg=="
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
MEMBERS = {"package/plotly-cartesian.min.js": "plotly.min.js", "package/LICENSE": "LICENSE"}
MANIFEST = "bundle.json"
LAYOUT = 2  # bump when what install() writes changes: an older install is then redone
# V8's explicit compile hint (Chrome 136+): compile every function of the bundle eagerly on the
# background thread that streams the script in, instead of lazily on the main thread while Plotly
# initialises. Measured here: the bundle's main-thread evaluation 427 -> ~200 ms, cold time to
# first chart ~60-100 ms shorter. Other browsers read it as a comment.
COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"
FAILED = ".last-failed"  # an offline box does not wait on the network at every `make run`
RETRY_AFTER_S = 6 * 3600
MAX_BYTES = 20 * 1024 * 1024


def integrity_ok(data: bytes, integrity: str | None = None) -> bool:
    algo, _, digest = (integrity or INTEGRITY).partition("-")
    return algo == "sha512" and base64.b64encode(hashlib.sha512(data).digest()).decode() == digest


def installed(dest: Path = DEST) -> dict | None:
    """The manifest of the vendored bundle when it is complete and the pinned one, else None."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("integrity") != INTEGRITY or manifest.get("layout") != LAYOUT:
        return None
    if not all((dest / name).is_file() for name in MEMBERS.values()):
        return None
    return manifest


def recently_failed(dest: Path = DEST) -> bool:
    try:
        return time.time() - (dest / FAILED).stat().st_mtime < RETRY_AFTER_S
    except OSError:
        return False


def download(url: str = TARBALL, timeout: float = 15.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "thoxdash-setup (urllib)"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (pinned https URL)
        data = resp.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError("tarball larger than expected")
    return data


def extract(tarball: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name in MEMBERS and member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    out[MEMBERS[member.name]] = fh.read()
    missing = set(MEMBERS.values()) - set(out)
    if missing:
        raise ValueError(f"tarball lacks {sorted(missing)}")
    if b"plotly.js (cartesian - minified) v" + VERSION.encode() not in out["plotly.min.js"][:400]:
        raise ValueError("bundle header does not name plotly.js v" + VERSION)
    return out


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(tarball: bytes, dest: Path = DEST) -> dict:
    if not integrity_ok(tarball):
        raise ValueError(f"{PACKAGE}-{VERSION}.tgz does not match the pinned integrity")
    files = extract(tarball)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)  # incomplete until the manifest is back
    files["plotly.min.js"] = COMPILE_HINT + files["plotly.min.js"]
    for name, data in files.items():
        write_atomic(dest / name, data)
    # precompressed once here, so the server never gzips the bundle on a request
    write_atomic(
        dest / "plotly.min.js.gz", gzip.compress(files["plotly.min.js"], compresslevel=9, mtime=0)
    )
    manifest = {
        "package": PACKAGE,
        "version": VERSION,
        "integrity": INTEGRITY,
        "source": TARBALL,
        "license": "MIT (see LICENSE)",
        "layout": LAYOUT,
        "compile_hint": COMPILE_HINT.decode().strip(),
        "bytes": len(files["plotly.min.js"]),
    }
    write_atomic(dest / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="download again even if installed")
    ap.add_argument("--dest", type=Path, default=DEST)
    ap.add_argument(
        "--tarball", type=Path, help="install from this local .tgz instead of downloading"
    )
    args = ap.parse_args(argv)
    if not args.force and not args.tarball and (installed(args.dest) or recently_failed(args.dest)):
        return 0
    try:
        data = args.tarball.read_bytes() if args.tarball else download()
        manifest = install(data, args.dest)
    except Exception as exc:  # offline, proxy, bad tarball: the full bundle is served instead
        print(
            f"plotly partial bundle not installed ({exc}); serving the full plotly.min.js "
            f"from the plotly package (retried after {RETRY_AFTER_S // 3600} h, or with --force)",
            file=sys.stderr,
        )
        try:
            if not args.tarball:
                args.dest.mkdir(parents=True, exist_ok=True)
                (args.dest / FAILED).touch()
        except OSError:
            pass
        return 0
    (args.dest / FAILED).unlink(missing_ok=True)
    print(
        f"plotly: vendored {manifest['package']} {manifest['version']} into {args.dest}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
