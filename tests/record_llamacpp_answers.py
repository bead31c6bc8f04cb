"""Record what a real llama-server answers (tests/fixtures/llamacpp/answers.json), so the unit tests'
llama.cpp fake (tests/runtime_servers.py `recorded_llamacpp_routes`) serves real answers.

    .venv/bin/python -m tests.record_llamacpp_answers [--out tests/fixtures/llamacpp/answers.json]

Starts the server `scripts/ensure_llama_server.py` built (2 slots, the tiny model, alias
tiny-random), makes one chat request so the slots and counters are not empty, and records status,
content type and body of each GET and POST below, with the server's build_info.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.real_llamacpp import ALIAS, LlamaServer, model_path

OUT = Path(__file__).parent / "fixtures" / "llamacpp" / "answers.json"
CHAT = {"model": ALIAS, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
        "temperature": 0, "seed": 1}
CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/health", None), ("GET", "/props", None), ("GET", "/models", None), ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
    ("POST", "/completion", {"prompt": "Say hello.", "n_predict": 4, "temperature": 0, "stream": True}),
    ("GET", "/slots", None), ("GET", "/metrics", None),
    ("POST", "/models/unload", {"model": ALIAS}),
    ("POST", "/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "word " * 5000}]}),
]


def call(url: str, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, ctype, raw = resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers.get("Content-Type", ""), exc.read()
    return {"method": method, "path": path, "request": body, "status": status, "content_type": ctype,
            "body": raw.decode("utf-8", "replace")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llama-answers-"))
    with LlamaServer(model_path(tmp), log_dir=tmp) as srv:
        answers = [call(srv.url, method, path, body) for method, path, body in CALLS]
    props = json.loads(answers[1]["body"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"build_info": props.get("build_info"), "server": "llama-server, 2 slots, "
                                    "-c 4096, --metrics, tests/tiny_gguf.py model as tiny-random",
                                    "answers": answers}, indent=1) + "\n")
    print(f"recorded {len(answers)} answers of {props.get('build_info')} to {args.out}")


if __name__ == "__main__":
    main()
