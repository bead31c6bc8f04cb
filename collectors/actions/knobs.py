"""Tuning actions that write sysfs/procfs files: governor, THP, IRQ affinity, GPU runtime PM,
cgroup memory ceiling."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from collectors.actions.base import KnobAction
from collectors.actions.context import ActionContext, cgroup_parts
from collectors.actions.params import (
    GOVERNORS,
    MAX_IRQ,
    RUNTIME_PM,
    THP_MODES,
    ParamError,
    choice,
    cpu_list,
    format_cpus,
    integer,
    no_extra,
    require,
)
from collectors.actions.params import name as check_name
from collectors.tegra import GPU_CHIPS, gpu_devfreq_nodes
from collectors.text import is_uint


class SetGovernor(KnobAction):
    name = "set_governor"
    safe = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"cpus", "value"})
        clean = {"cpus": format_cpus(cpu_list(require(params, "cpus"))),
                 "value": choice(require(params, "value"), "value", GOVERNORS)}
        if ctx is not None:
            knobs = self.knobs(ctx, clean)
            first = next(iter(knobs.values())).parent / "scaling_available_governors"
            if first.exists() and clean["value"] not in first.read_text().split():
                raise ParamError(f"governor {clean['value']!r} is not available on this kernel")
        return clean

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        out = {}
        for cpu in cpu_list(params["cpus"]):
            path = ctx.path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")
            if not path.exists():
                raise ParamError(f"cpu{cpu} has no cpufreq governor on this device")
            out[f"cpu{cpu}"] = path
        return out

    def check_value(self, value: Any) -> Any:
        return choice(value, "saved governor", GOVERNORS)


class SetTHP(KnobAction):
    name = "thp"
    safe = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"mode"})
        return {"mode": choice(require(params, "mode"), "mode", THP_MODES)}

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        path = ctx.path("/sys/kernel/mm/transparent_hugepage/enabled")
        if not path.exists():
            raise ParamError("this kernel has no transparent hugepage setting")
        return {"transparent_hugepage": path}

    def parse(self, text: str) -> Any:
        found = re.search(r"\[(\w+)\]", text)
        return found.group(1) if found else text.strip()

    def want(self, params: dict[str, Any]) -> Any:
        return params["mode"]

    def check_value(self, value: Any) -> Any:
        return choice(value, "saved THP mode", THP_MODES)


class IrqAffinity(KnobAction):
    """irq: a number, a list of numbers, or "all" (every movable IRQ; unmovable ones are skipped)."""

    name = "irq_affinity"
    safe = True

    def best_effort(self, params: dict[str, Any]) -> bool:
        return bool(params["irq"] == "all")

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"irq", "cpus"})
        irq = require(params, "irq")
        if irq != "all":
            irqs = irq if isinstance(irq, list) else [irq]
            if not irqs or len(irqs) > 4096:
                raise ParamError("'irq' must be a number, a list of numbers or \"all\"")
            irq = sorted({integer(i, "irq", 0, MAX_IRQ) for i in irqs})
        clean = {"irq": irq, "cpus": format_cpus(cpu_list(require(params, "cpus")))}
        if ctx is not None:
            self.knobs(ctx, clean)
        return clean

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        base = ctx.path("/proc/irq")
        if params["irq"] == "all":
            numbers = sorted(int(p.name) for p in base.iterdir() if is_uint(p.name)) if base.is_dir() else []
        else:
            numbers = params["irq"]
        out = {}
        for irq in numbers:
            path = base / str(irq) / "smp_affinity_list"
            if not path.exists():
                raise ParamError(f"no IRQ {irq} on this device")
            out[f"irq{irq}"] = path
        if not out:
            raise ParamError("no IRQs found under /proc/irq")
        return out

    def parse(self, text: str) -> Any:
        try:
            return format_cpus(cpu_list(text.strip()))
        except ParamError:
            return text.strip()

    def want(self, params: dict[str, Any]) -> Any:
        return params["cpus"]

    def check_value(self, value: Any) -> Any:
        return format_cpus(cpu_list(value, "saved affinity"))


# the GPU's platform device, for kernels without a devfreq link to it
GPU_PM_GLOBS = ("sys/devices/platform/gpu.0/power/control",
                *(f"sys/devices/platform/{bus}*.{chip}/power/control"
                  for bus in ("", "bus@0/") for chip in GPU_CHIPS))


class GpuRuntimePM(KnobAction):
    """power/control of the GPU: "on" keeps it powered (no runtime suspend), "auto" lets it sleep."""

    name = "gpu_runtime_pm"
    safe = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"value"})
        clean = {"value": choice(require(params, "value"), "value", RUNTIME_PM)}
        if ctx is not None:
            self.knobs(ctx, clean)
        return clean

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        return gpu_power_controls(ctx.root)

    def check_value(self, value: Any) -> Any:
        return choice(value, "saved runtime PM", RUNTIME_PM)


def gpu_power_controls(root: Path) -> dict[str, Path]:
    """GPU power/control files: the Jetson GPU's devfreq device (named as the tuning state names
    it), the platform device when there is no devfreq link, and NVIDIA PCI display controllers."""
    out: dict[str, Path] = {}
    seen: set[Path] = set()
    for dev in gpu_devfreq_nodes(root):
        control = dev / "device/power/control"
        if control.exists():
            out[dev.name] = control
            seen.add(control.resolve())
    for pattern in GPU_PM_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.resolve() not in seen:
                out[path.parent.parent.name] = path
    pci = root / "sys/bus/pci/devices"
    if pci.is_dir():
        for dev in sorted(pci.iterdir()):
            try:
                vendor = (dev / "vendor").read_text().strip()
                klass = (dev / "class").read_text().strip()
            except OSError:
                continue
            if vendor == "0x10de" and klass.startswith("0x03") and (dev / "power/control").exists():
                out[dev.name] = dev / "power/control"
    if not out:
        raise ParamError("no GPU power/control file found on this device")
    return out


MIN_CEILING = 64 * 1024 * 1024
MAX_CEILING = 1 << 40
PAGE = 4096


class CgroupMemory(KnobAction):
    """Memory ceiling of a runtime's cgroup (from the device config): v2 memory.max/high, or v1."""

    name = "cgroup_memory"
    runtime_scoped = True

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        no_extra(params, {"runtime", "limit_bytes", "kind"})
        limit = require(params, "limit_bytes")
        clean = {"runtime": check_name(require(params, "runtime"), "runtime"),
                 "limit_bytes": "max" if limit == "max" else integer(limit, "limit_bytes", MIN_CEILING, MAX_CEILING),
                 "kind": choice(params.get("kind", "max"), "kind", ("max", "high"))}
        if ctx is not None:
            self.knobs(ctx, clean)
        return clean

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        parts = cgroup_parts(ctx.runtime(params["runtime"]).get("cgroup"))
        base = ctx.path("/sys/fs/cgroup")
        if (base / "cgroup.controllers").exists():
            path = base.joinpath(*parts) / f"memory.{params['kind']}"
        else:
            leaf = "memory.limit_in_bytes" if params["kind"] == "max" else "memory.soft_limit_in_bytes"
            path = base.joinpath("memory", *parts) / leaf
        if not path.exists():
            raise ParamError(f"cgroup {'/'.join(parts)} has no {path.name}")
        return {f"{params['runtime']}:{path.name}": path}

    def parse(self, text: str) -> Any:
        text = text.strip()
        if text == "max":
            return "max"
        try:
            value = int(text)
        except ValueError:
            return text
        return "max" if value >= (1 << 62) or value < 0 else value  # v1 "unlimited": a huge number

    def want(self, params: dict[str, Any]) -> Any:
        return params["limit_bytes"]

    def write(self, path: Path, value: Any) -> None:
        # v1 takes -1 for unlimited; v2 takes "max"
        text = ("-1" if "limit_in_bytes" in path.name else "max") if value == "max" else str(value)
        path.write_text(text + "\n", encoding="utf-8")

    def same(self, current: Any, wanted: Any) -> bool:
        if isinstance(current, int) and isinstance(wanted, int):
            return current // PAGE == wanted // PAGE  # the kernel rounds to pages
        return bool(current == wanted)

    def check_value(self, value: Any) -> Any:
        return "max" if value == "max" else integer(value, "saved limit", PAGE, 1 << 63)
