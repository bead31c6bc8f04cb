"""Runtime actions: evict a model through the runtime's admin API, and throttle a runtime through
the latency proxy's admission limits (a Redis hash the proxy reads at run time)."""

from __future__ import annotations

import time
from typing import Any

from collectors.actions.base import Action, ApplyError
from collectors.actions.context import ActionContext
from collectors.actions.params import ParamError, integer, model_name, no_extra, require
from collectors.actions.params import name as check_name

EVICT_SETTLE_S = 5.0
# the proxy's admission fields (collectors/proxy/admission.py), kept as they were on undo
# Ollama frees a model only when its in-flight requests end
LIMIT_FIELDS = {"max_concurrency", "max_queue", "retry_after_s", "queue_timeout_s", "default_priority"}


class Evict(Action):
    name = "evict"
    undoable = False  # the runtime reloads the model on its next request
    runtime_scoped = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"runtime", "model"})
        clean = {"runtime": check_name(require(params, "runtime"), "runtime"),
                 "model": model_name(require(params, "model"))}
        if ctx is not None:
            runtime = ctx.runtime(clean["runtime"])
            if not runtime.get("url") or not runtime.get("kind"):
                raise ParamError(f"runtime {clean['runtime']!r} has no admin url/kind in the device config")
        return clean

    def _client(self, ctx: ActionContext, params: dict[str, Any]) -> Any:
        from collectors.runtimes import client_for

        runtime = ctx.runtime(params["runtime"])
        try:
            return client_for(runtime["kind"], runtime["url"], timeout=ctx.http_timeout_s)
        except ValueError as exc:
            raise ParamError(str(exc)) from None

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        from collectors.runtimes import RuntimeApiError

        with self._client(ctx, params) as client:
            try:
                names = {m.name for m in client.loaded_models()}
            except RuntimeApiError as exc:
                return {params["model"]: f"unknown ({exc.message})"}
        return {params["model"]: "loaded" if params["model"] in names else "unloaded"}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {params["model"]: "unloaded"}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        from collectors.runtimes import RuntimeApiError

        with self._client(ctx, params) as client:
            try:
                client.evict(params["model"])
            except RuntimeApiError as exc:
                kind = "permanent" if exc.permanent else "transient"
                raise ApplyError(f"{exc.message} ({kind})") from None
        deadline = time.monotonic() + EVICT_SETTLE_S
        while time.monotonic() < deadline and self.read(ctx, params)[params["model"]] == "loaded":
            time.sleep(0.25)
        return []


class Throttle(Action):
    """Admission limits for `runtime` or `runtime/model`; `clear: true` removes them."""

    name = "throttle"
    runtime_scoped = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"runtime", "model", "max_concurrency", "max_queue", "clear"})
        clean: dict[str, Any] = {"runtime": check_name(require(params, "runtime"), "runtime")}
        if params.get("model") is not None:
            clean["model"] = model_name(params["model"])
        if params.get("clear") is True:
            clean["clear"] = True
        else:
            clean["max_concurrency"] = integer(require(params, "max_concurrency"), "max_concurrency", 1, 256)
            clean["max_queue"] = integer(params.get("max_queue", 0), "max_queue", 0, 100_000)
        if ctx is not None:
            ctx.runtime(clean["runtime"])
        return clean

    def _scope(self, params: dict[str, Any]) -> str:
        return f"{params['runtime']}/{params['model']}" if params.get("model") else params["runtime"]

    def _store(self, ctx: ActionContext) -> Any:
        if ctx.store is None:
            raise ApplyError("no Redis store: admission limits cannot be set")
        return ctx.store

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        scope = self._scope(params)
        return {scope: self._store(ctx).admission(ctx.device).get(scope)}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        if params.get("clear"):
            return {self._scope(params): None}
        return {self._scope(params): {"max_concurrency": params["max_concurrency"],
                                      "max_queue": params["max_queue"]}}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        for scope, limits in self.desired(ctx, params, old).items():
            self._store(ctx).set_admission(ctx.device, scope, limits)
        return []

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        for scope, limits in old.items():
            self._store(ctx).set_admission(ctx.device, scope, limits)

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        if set(old) != {self._scope(params)}:
            raise ParamError("saved limits are for another scope")
        limits = next(iter(old.values()))
        if limits is None:
            return
        if not isinstance(limits, dict) or set(limits) - LIMIT_FIELDS:
            raise ParamError("bad saved admission limits")
        for key, value in limits.items():
            if key == "default_priority":
                if value not in ("high", "normal", "low"):
                    raise ParamError("bad saved default_priority")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e6:
                raise ParamError(f"bad saved {key}")
