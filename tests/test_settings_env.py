from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from thoxdash import env


@pytest.mark.parametrize("name,value,fn", [
    ("THOXDASH_X_BOOL", "maybe", lambda: env.env_bool("THOXDASH_X_BOOL")),
    ("THOXDASH_X_INT", "eighty", lambda: env.env_int("THOXDASH_X_INT", 1)),
    ("THOXDASH_X_INT", "70000", lambda: env.env_int("THOXDASH_X_INT", 1, minimum=1, maximum=65535)),
    ("THOXDASH_X_FLOAT", "fast", lambda: env.env_float("THOXDASH_X_FLOAT", 1.0)),
    ("THOXDASH_X_URL", "localhost:6379", lambda: env.env_url("THOXDASH_X_URL", "", ("redis",))),
])
def test_bad_env_values_name_the_variable(monkeypatch, name, value, fn):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        fn()


def test_good_env_values(monkeypatch):
    monkeypatch.setenv("THOXDASH_X_BOOL", "yes")
    monkeypatch.setenv("THOXDASH_X_INT", "8090")
    assert env.env_bool("THOXDASH_X_BOOL") is True
    assert env.env_int("THOXDASH_X_INT", 1) == 8090


def test_settings_refuse_a_bad_port():
    proc = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "THOXDASH_PORT": "http"})
    assert proc.returncode != 0 and "THOXDASH_PORT must be an integer" in proc.stderr
