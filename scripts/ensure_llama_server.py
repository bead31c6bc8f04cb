"""Build a real llama.cpp `llama-server` for the real-runtime tests (`make test` calls this).

llama.cpp's sources come from the PyPI sdist of llama-cpp-python (it vendors llama.cpp under
`vendor/llama.cpp`); the pin below decides which llama.cpp is built. The result is cached in
`.run/llama-server/<version>/` and rebuilt only when the pin changes:

    .run/llama-server/<version>/llama_cpp_python-<version>.tar.gz     the sdist (pip download)
    .run/llama-server/<version>/llama_cpp_python-<version>/           unpacked
    .run/llama-server/<version>/build/bin/llama-server                the CPU build (CMake)

The build is offline once the sdist is here: no curl (model downloads), no OpenSSL, no web UI
download. CMake and a C++ compiler are installed from Debian when missing (as root), otherwise
the script says what to install and fails. About 5 minutes on 2 cores, under `nice`.

    python scripts/ensure_llama_server.py            # build if needed; print the binary's path
    python scripts/ensure_llama_server.py --print    # print where it would be, build nothing
    python scripts/ensure_llama_server.py --cuda 90  # a CUDA build for compute capability 9.0
    python scripts/ensure_llama_server.py --pack src.tar.xz        # the sources a build needs, for a
    python scripts/ensure_llama_server.py --sources-tar src.tar.xz # machine that cannot reach PyPI

The tests find the binary through `tests/real_llamacpp.py` (same layout); the tiny model is made
at test time from the sdist's vocab-only GGUF. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

try:
    from scripts import debian
except ImportError:  # run as `python scripts/<name>.py`
    import debian  # type: ignore[no-redef]

# llama-cpp-python 0.3.36 vendors llama.cpp commit 0c1e570 (build_info b1-0c1e570).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".run" / "llama-server"
# executable -> Debian package (make, or ninja where it is installed instead)
BUILD_TOOLS = {"cmake": "cmake", "c++": "g++", "make": "make"}
# what a build of llama-server does not read: left out of --pack
NOT_BUILT = ("models", "docs", "media", "tests", "examples", "pocs", "benches", "gguf-py", "conversion",
             "skills", "ci")
OFFLINE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    # the binary finds its shared libraries next to itself ($ORIGIN): the cache can be copied or moved
    "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON",
]


def cache_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return CACHE / version


def source_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return cache_dir(version) / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"


def binary(version: str = LLAMA_CPP_PYTHON_VERSION, build: str = "build") -> Path:
    return cache_dir(version) / build / "bin" / "llama-server"


def vocab_gguf(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return source_dir(version) / "models" / "ggml-vocab-llama-spm.gguf"


def log(msg: str) -> None:
    print(f"[ensure_llama_server] {msg}", file=sys.stderr, flush=True)


def ensure_build_tools() -> None:
    missing = [pkg for exe, pkg in BUILD_TOOLS.items()
               if not shutil.which(exe) and not (exe == "make" and shutil.which("ninja"))]
    if not missing:
        return
    if not debian.can_install():
        raise SystemExit(f"building llama-server needs: sudo apt-get install {' '.join(missing)}")
    log(f"installing {' '.join(missing)} ...")
    ok, why = debian.install(missing, recommends=False)
    if not ok or any(not shutil.which(exe) for exe in BUILD_TOOLS if exe != "make"):
        raise SystemExit(f"could not install {' '.join(missing)}: {why}")


def ensure_sources(version: str, from_tar: Path | None = None) -> Path:
    cache = cache_dir(version)
    cache.mkdir(parents=True, exist_ok=True)
    src = source_dir(version)
    if (src / "tools" / "server" / "server.cpp").is_file():
        return src
    if from_tar is not None:
        log(f"unpacking {from_tar}")
        src.mkdir(parents=True, exist_ok=True)
        with tarfile.open(from_tar) as tar:
            tar.extractall(src, filter="data")
        if not (src / "tools" / "server" / "server.cpp").is_file():
            raise SystemExit(f"{from_tar} holds no tools/server/server.cpp")
        return src
    sdist = cache / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        log(f"downloading the llama-cpp-python=={version} sdist from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-python",
                        f"llama-cpp-python=={version}", "-d", str(cache)], check=True)
    log(f"unpacking {sdist.name}")
    with tarfile.open(sdist) as tar:
        tar.extractall(cache, filter="data")
    if not (src / "tools" / "server" / "server.cpp").is_file():
        raise SystemExit(f"{sdist} has no vendor/llama.cpp/tools/server sources")
    return src


def pack(version: str, out: Path) -> Path:
    """The llama.cpp sources a llama-server build reads, as a .tar.xz (about 10 MB)."""
    src = ensure_sources(version)
    with tarfile.open(out, "w:xz") as tar:
        for entry in sorted(src.iterdir()):
            if entry.name not in NOT_BUILT and not entry.name.startswith("."):
                tar.add(entry, arcname=entry.name)
    return out


def build(version: str, *, jobs: int, cuda_arch: str | None = None, from_tar: Path | None = None) -> Path:
    name = f"build-cuda{cuda_arch}" if cuda_arch else "build"
    out = binary(version, name)
    if out.is_file() and os.access(out, os.X_OK):
        return out
    ensure_build_tools()
    src = ensure_sources(version, from_tar)
    build_dir = cache_dir(version) / name
    flags = list(OFFLINE_FLAGS)
    if not shutil.which("make") and shutil.which("ninja"):
        flags += ["-G", "Ninja"]
    if cuda_arch:
        flags += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_arch}"]
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    t0 = time.monotonic()
    log(f"configuring + building llama-server ({name}, -j{jobs}); about 5 minutes on 2 cores")
    for cmd, logname in (
        ([*nice, "cmake", "-S", str(src), "-B", str(build_dir), *flags], "configure.log"),
        ([*nice, "cmake", "--build", str(build_dir), "--target", "llama-server", f"-j{jobs}"], "build.log"),
    ):
        logfile = cache_dir(version) / f"{name}-{logname}"
        with logfile.open("w") as fh:
            result = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            tail = logfile.read_text(errors="replace").splitlines()[-25:]
            raise SystemExit("llama-server build failed:\n" + "\n".join(tail))
    if not out.is_file():
        raise SystemExit(f"the build finished without {out}")
    log(f"built {out} in {time.monotonic() - t0:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=os.environ.get("LLAMA_CPP_PYTHON_VERSION", LLAMA_CPP_PYTHON_VERSION))
    ap.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--cuda", metavar="ARCH", help="CUDA architectures (e.g. 90 for H100/H200)")
    ap.add_argument("--print", action="store_true", help="print the binary's path; build nothing")
    ap.add_argument("--sources-only", action="store_true", help="download and unpack only")
    ap.add_argument("--pack", type=Path, metavar="TAR_XZ", help="write the sources a build needs; build nothing")
    ap.add_argument("--sources-tar", type=Path, metavar="TAR_XZ", help="take the sources from --pack's file")
    args = ap.parse_args(argv)
    if args.pack:
        print(pack(args.version, args.pack))
        return 0
    if args.print:
        print(binary(args.version))
        return 0
    if args.sources_only:
        print(ensure_sources(args.version))
        return 0
    print(build(args.version, jobs=args.jobs, cuda_arch=args.cuda, from_tar=args.sources_tar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
