"""Forms of the settings page: a device's runtimes (match rules, ceilings, priorities) and SLOs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django import forms

from advisors.notify import NOTIFIERS
from collectors.runtimes import kind_names

PRIORITIES = [("critical", "critical"), ("essential", "essential"), ("background", "background")]
KINDS = [(k, k) for k in (*kind_names(), "other")]  # the runtime registry
WEBHOOK_FORMATS = [(n.format, n.label) for n in NOTIFIERS.values()]  # the notifier registry
GB = 1e9


class RuntimeForm(forms.Form):
    name = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)
    # a blank first choice: the empty extra row stays unchanged, so the form saves as served
    kind = forms.ChoiceField(choices=[("", "— kind —"), *KINDS])
    match = forms.CharField(max_length=200, required=False, help_text="process name or command-line regex")
    url = forms.URLField(max_length=300, required=False, assume_scheme="http")
    ceiling_gb = forms.FloatField(min_value=0.01, max_value=4096, required=False, label="Ceiling (GB)")
    priority = forms.ChoiceField(choices=PRIORITIES, initial="background")

    def clean_url(self) -> str:
        from django.conf import settings

        from advisors.canary import base_url_problem

        url = self.cleaned_data.get("url") or ""
        problem = base_url_problem(url, settings.CANARY_ALLOWED_HOSTS) if url else None
        if problem:
            raise forms.ValidationError(f"Runtime URL {problem}.")
        return url

    def clean_match(self) -> str:
        value = self.cleaned_data.get("match") or ""
        try:
            re.compile(value)
        except re.error as exc:
            raise forms.ValidationError(f"not a valid regular expression: {exc}") from None
        return value

    def to_config(self) -> dict[str, Any]:
        d = self.cleaned_data
        out: dict[str, Any] = {"name": d["name"], "kind": d["kind"], "priority": d["priority"]}
        if d.get("match"):
            out["match"] = d["match"]
        if d.get("url"):
            out["url"] = d["url"]
        if d.get("ceiling_gb"):
            out["ceiling_bytes"] = int(round(d["ceiling_gb"] * GB))
        return out

    @staticmethod
    def initial_from(runtime: dict[str, Any]) -> dict[str, Any]:
        ceiling = runtime.get("ceiling_bytes")
        return {"name": runtime.get("name", ""), "kind": runtime.get("kind", "other"),
                "match": runtime.get("match", ""), "url": runtime.get("url", ""),
                "ceiling_gb": round(float(ceiling) / GB, 3) if ceiling else None,
                "priority": runtime.get("priority", "background")}


class SloForm(forms.Form):
    runtime = forms.CharField(max_length=64)
    model = forms.CharField(max_length=200)
    deadline_ms = forms.FloatField(min_value=0.001, max_value=3_600_000, label="Deadline (ms)")
    target_ratio = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.99)
    window_s = forms.IntegerField(min_value=1, max_value=86_400, initial=60)

    def to_config(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {"runtime": d["runtime"], "model": d["model"], "deadline_s": d["deadline_ms"] / 1000.0,
                "target_ratio": d["target_ratio"], "window_s": d["window_s"]}

    @staticmethod
    def initial_from(slo: dict[str, Any]) -> dict[str, Any]:
        return {"runtime": slo.get("runtime", ""), "model": slo.get("model", ""),
                "deadline_ms": round(float(slo.get("deadline_s", 0)) * 1000.0, 3),
                "target_ratio": slo.get("target_ratio", 0.99), "window_s": slo.get("window_s", 60)}


LOCKED_CLOCKS = {"": None, "yes": True, "no": False}


class DeviceForm(forms.Form):
    isolated_cpus = forms.RegexField(regex=r"^[0-9,\- ]*$", max_length=200, required=False,
                                     help_text="e.g. 4-7")
    want_locked_clocks = forms.ChoiceField(
        choices=[("", "as the device's config says"), ("yes", "required"), ("no", "not required")],
        required=False, label="Locked GPU clocks",
        help_text="required: gpu_clock_not_locked fires while the GPU clock floats")

    @staticmethod
    def locked_choice(value: bool | None) -> str:
        return next(key for key, choice in LOCKED_CLOCKS.items() if choice is value)

    def clean_want_locked_clocks(self) -> bool | None:
        return LOCKED_CLOCKS[self.cleaned_data.get("want_locked_clocks") or ""]


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https")
    format = forms.ChoiceField(choices=WEBHOOK_FORMATS, initial="json")
    min_severity = forms.ChoiceField(choices=[("info", "info"), ("warning", "warning"), ("critical", "critical")],
                                     initial="warning", label="Min severity")
    secret = forms.CharField(max_length=200, required=False, label="HMAC secret (optional)",
                             widget=forms.PasswordInput(render_value=False))

    def clean_url(self) -> str:
        value = self.cleaned_data["url"]
        if urlsplit(value).scheme not in ("http", "https"):
            raise forms.ValidationError("only http and https URLs can receive webhooks")
        return value


def redacted(url: str) -> str:
    """scheme://host[:port]/… : what read-only users see of a webhook URL (its path can be a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}/…" if parts.path not in ("", "/") or parts.query else f"{parts.scheme}://{host}/"


RuntimeFormSet = forms.formset_factory(RuntimeForm, extra=1, can_delete=True)
SloFormSet = forms.formset_factory(SloForm, extra=1, can_delete=True)


def collect(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    """The rows of a valid formset as config dicts: kept rows, filled-in extra rows, not deleted."""
    out = []
    for i, form in enumerate(formset.forms):
        if i >= formset.initial_form_count() and not form.has_changed():
            continue
        if form.cleaned_data.get("DELETE"):
            continue
        out.append(form.to_config())
    return out
