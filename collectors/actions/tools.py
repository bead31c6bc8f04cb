"""Actions through NVIDIA's and the OS's own tools at fixed paths: jetson_clocks, nvpmodel,
swapoff, systemctl, docker. Arguments are built here from validated values; no shell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from collectors.actions.base import Action, ApplyError
from collectors.actions.context import ActionContext, ToolError
from collectors.actions.params import ParamError, choice, integer, no_extra, require
from collectors.actions.signing import REQUEST_ID
from collectors.tegra import clocks_locked as tegra_clocks_locked
from collectors.tegra.nvpmodel import power_models
from collectors.text import is_uint


def clocks_locked(ctx: ActionContext) -> bool | None:
    """What jetson_clocks does: every online CPU and the GPU pinned (min == max). None if unreadable."""
    return tegra_clocks_locked(ctx.root)


class JetsonClocks(Action):
    """on: `jetson_clocks` after `--store`; off/undo: `--restore` the file stored before."""

    name = "jetson_clocks"
    safe = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"on"})
        on = require(params, "on")
        if not isinstance(on, bool):
            raise ParamError("'on' must be true or false")
        clean: dict[str, Any] = {"on": on}
        if ctx is not None:
            ctx.tool("jetson_clocks")
        return clean

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"clocks_locked": clocks_locked(ctx)}

    def _file(self, ctx: ActionContext, params: dict[str, Any]) -> str:
        if not REQUEST_ID.match(ctx.request_id):
            raise ParamError("bad request id")
        return str(ctx.state_dir / f"jetson_clocks-{ctx.request_id}.conf")

    def _baseline(self, ctx: ActionContext) -> str:
        return str(ctx.state_dir / "jetson_clocks-baseline.conf")

    def snapshot(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        old = self.read(ctx, params)
        ctx.run("jetson_clocks", "--store", self._file(ctx, params))
        if not old["clocks_locked"] and not Path(self._baseline(ctx)).exists():
            ctx.run("jetson_clocks", "--store", self._baseline(ctx))
        return old

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {"clocks_locked": params["on"]}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        try:
            if params["on"]:
                ctx.run("jetson_clocks")
            else:
                ctx.run("jetson_clocks", "--restore", self._baseline(ctx))
        except ToolError as exc:
            raise ApplyError(str(exc)) from None
        return []

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        try:
            ctx.run("jetson_clocks", "--restore", self._file(ctx, params))
        except ToolError as exc:
            raise ApplyError(str(exc)) from None

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        if set(old) != {"clocks_locked"}:
            raise ParamError("bad saved jetson_clocks state")


MODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def nvpmodel_modes(ctx: ActionContext) -> dict[str, int]:
    """Mode names -> ids from the device's /etc/nvpmodel.conf."""
    return {name: i for i, name in power_models(ctx.root).items()}


class NvpModel(Action):
    """`nvpmodel -m N` (stdin answers NO to a reboot prompt: a mode that needs one fails verify).

    `mode` is an id, or a name looked up in the device's /etc/nvpmodel.conf; "MAXN" also finds
    the board's MAXN variant (MAXN_SUPER on an Orin Nano with JetPack 6.2)."""

    name = "nvpmodel"

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"mode"})
        mode = require(params, "mode")
        if isinstance(mode, str) and MODE_NAME.match(mode):
            clean: dict[str, Any] = {"mode": mode}
        else:
            clean = {"mode": integer(mode, "mode", 0, 31)}
        if ctx is not None:
            ctx.tool("nvpmodel")
            if isinstance(clean["mode"], str):
                modes = nvpmodel_modes(ctx)
                found = modes.get(clean["mode"])
                if found is None:
                    wanted = clean["mode"].upper()
                    found = next((i for n, i in sorted(modes.items()) if n.upper().startswith(wanted)), None)
                if found is None:
                    raise ParamError(f"no power mode named {clean['mode']!r} in /etc/nvpmodel.conf")
                clean["mode"] = found
        return clean

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"nvpmodel": query_nvpmodel(ctx)[1]}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {"nvpmodel": params["mode"]}

    def _set(self, ctx: ActionContext, mode: int) -> None:
        locked = clocks_locked(ctx)
        try:
            ctx.run("nvpmodel", "-m", str(mode), stdin="NO\n")
            if locked:  # a mode switch resets the clocks: re-lock them, as jtop does
                ctx.run("jetson_clocks")
        except ToolError as exc:
            raise ApplyError(str(exc)) from None

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        self._set(ctx, params["mode"])
        return []

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        self._set(ctx, old["nvpmodel"])

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        integer(old.get("nvpmodel"), "saved nvpmodel mode", 0, 31)


def query_nvpmodel(ctx: ActionContext) -> tuple[str | None, int | None]:
    """`nvpmodel -q` -> ("MAXN", 0)."""
    try:
        text = ctx.run("nvpmodel", "-q")
    except ToolError as exc:
        raise ApplyError(str(exc)) from None
    found = re.search(r"NV Power Mode:\s*(\S+)", text)
    numbers = [line.strip() for line in text.splitlines() if is_uint(line.strip())]
    return (found.group(1) if found else None), (int(numbers[-1]) if numbers else None)


SWAP_DEVICE = re.compile(r"^/[A-Za-z0-9_./@-]{1,250}$")


def active_swaps(ctx: ActionContext) -> list[str]:
    try:
        lines = ctx.path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]


class SwapOff(Action):
    name = "swapoff"
    safe = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, set())
        if ctx is not None:
            ctx.tool("swapoff")
        return {}

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"swap": active_swaps(ctx)}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {"swap": []}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        try:
            ctx.run("swapoff", "-a")
        except ToolError as exc:
            raise ApplyError(str(exc)) from None
        return []

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        for device in old["swap"]:
            if not ctx.path(device).exists():
                raise ApplyError(f"swap device {device} no longer exists")
            if device not in active_swaps(ctx):
                try:
                    ctx.run("swapon", device)
                except ToolError as exc:
                    raise ApplyError(str(exc)) from None

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        devices = old.get("swap")
        if not isinstance(devices, list):
            raise ParamError("bad saved swap list")
        for device in devices:
            if not isinstance(device, str) or not SWAP_DEVICE.match(device) or ".." in device:
                raise ParamError(f"bad saved swap device {device!r}")


class ServiceAction(Action):
    """restart|stop|start an allow-listed systemd unit; stop/start can be undone."""

    name = "service"

    def can_undo(self, params: dict[str, Any]) -> bool:
        return params.get("op") != "restart"

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"name", "op"})
        clean = {"op": choice(require(params, "op"), "op", ("restart", "stop", "start")),
                 "name": require(params, "name")}
        if ctx is not None:
            clean["name"] = ctx.allowed("service", clean["name"])
        else:
            from collectors.actions.params import name as check_name
            clean["name"] = check_name(clean["name"], "name")
        return clean

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        try:  # is-active prints the state; it exits 3 when the unit is not active
            state = ctx.run("systemctl", "is-active", params["name"], ok=(0, 3)).strip()
        except ToolError:
            state = "unknown"
        return {params["name"]: state or "unknown"}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {params["name"]: "inactive" if params["op"] == "stop" else "active"}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        try:
            ctx.run("systemctl", params["op"], params["name"])
        except ToolError as exc:
            raise ApplyError(str(exc)) from None
        return []

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        if params["op"] == "restart":
            raise ApplyError("a restart cannot be undone")
        state = old.get(params["name"])
        try:
            ctx.run("systemctl", "start" if state == "active" else "stop", params["name"])
        except ToolError as exc:
            raise ApplyError(str(exc)) from None

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        if params["op"] == "restart":
            raise ParamError("a restart cannot be undone")
        if old.get(params["name"]) not in ("active", "inactive"):
            raise ParamError("bad saved service state")


class RestartContainer(Action):
    name = "restart_container"
    undoable = False

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"name"})
        value = require(params, "name")
        if ctx is not None:
            return {"name": ctx.allowed("container", value)}
        from collectors.actions.params import name as check_name
        return {"name": check_name(value, "name")}

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            out = ctx.run("docker", "inspect", "--format", "{{.State.Running}}", params["name"]).strip()
        except ToolError:
            out = "unknown"
        return {params["name"]: "running" if out == "true" else ("stopped" if out == "false" else out)}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {params["name"]: "running"}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        try:
            ctx.run("docker", "restart", params["name"])
        except ToolError as exc:
            raise ApplyError(str(exc)) from None
        return []
