"""The command line speaks as clearly as the pages: every flag of `python -m collectors` has help,
and `agent --once` and `record` need no --device (they default to the host name)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from collectors.__main__ import _host_device, build_parser
from tests.stack import ROOT


def test_every_flag_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}"
               for name, command in sub.choices.items() for action in command._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing, missing


def test_device_defaults_to_the_host_name():
    parser = build_parser()
    assert parser.parse_args(["agent", "--once"]).device == _host_device()
    assert parser.parse_args(["record", "--out", "-"]).device == _host_device()


def test_agent_once_runs_without_a_device(tmp_path):
    out = subprocess.run([sys.executable, "-m", "collectors", "agent", "--once", "--root", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        assert "ts" in json.loads(line)
