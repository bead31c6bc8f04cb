"""Every device action against a fake tree (--root): preview, apply, verify, rollback, undo."""

from __future__ import annotations

import os

import pytest

from collectors.actions.base import execute, undo
from collectors.actions.context import ActionContext, load_config
from collectors.actions.params import ParamError
from collectors.actions.registry import ACTIONS
from tests import fake_device
from tests.fake_device import read


@pytest.fixture
def tree(tmp_path):
    return fake_device.build(tmp_path / "root")


def ctx_for(root, request_id="req-00000001"):
    return ActionContext(root=root, device="dev1", config=load_config(root), request_id=request_id)


def run(root, name, params, **kw):
    ctx = ctx_for(root, **kw)
    action = ACTIONS[name]
    clean = action.validate(params, ctx)
    return action, ctx, clean, execute(action, ctx, clean)


def test_governor_apply_verify_undo(tree):
    action, ctx, clean, out = run(tree, "set_governor", {"cpus": "4-5", "value": "performance"})
    assert out.status == "applied", out.reason
    assert out.preview == [{"target": "cpu4", "old": "schedutil", "new": "performance"},
                           {"target": "cpu5", "old": "schedutil", "new": "performance"}]
    assert read(tree, "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor") == "performance"
    assert read(tree, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor") == "schedutil"
    back = undo(action, ctx, clean, out.snapshot)
    assert back.status == "undone", back.reason
    assert read(tree, "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor") == "schedutil"


def test_governor_verification_failure_rolls_back(tree):
    # cpu5's governor file swallows writes (reads back empty): verification must fail, and cpu4,
    # already changed, must be put back.
    knob = tree / "sys/devices/system/cpu/cpu5/cpufreq/scaling_governor"
    knob.unlink()
    knob.symlink_to(os.devnull)
    _action, _ctx, _clean, out = run(tree, "set_governor", {"cpus": [4, 5], "value": "performance"})
    assert out.status == "rolled_back"
    assert "verification failed: cpu5" in out.reason
    assert read(tree, "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor") == "schedutil"


def test_governor_rejects_unknown_governor_and_missing_cpu(tree):
    with pytest.raises(ParamError, match="must be one of"):
        ACTIONS["set_governor"].validate({"cpus": "4", "value": "turbo; reboot"}, ctx_for(tree))
    with pytest.raises(ParamError, match="cpu42 has no cpufreq"):
        ACTIONS["set_governor"].validate({"cpus": "42", "value": "performance"}, ctx_for(tree))
    (tree / "sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors").write_text("schedutil\n")
    with pytest.raises(ParamError, match="not available"):
        ACTIONS["set_governor"].validate({"cpus": "0", "value": "performance"}, ctx_for(tree))


def test_thp_never_and_undo(tree):
    action, ctx, clean, out = run(tree, "thp", {"mode": "never"})
    assert out.status == "applied"
    assert out.preview == [{"target": "transparent_hugepage", "old": "madvise", "new": "never"}]
    # the real file reads "always madvise [never]"; the fake stores what was written
    (tree / "sys/kernel/mm/transparent_hugepage/enabled").write_text("always madvise [never]\n")
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "sys/kernel/mm/transparent_hugepage/enabled") == "madvise"


def test_irq_affinity_single_and_all(tree):
    action, ctx, clean, out = run(tree, "irq_affinity", {"irq": 57, "cpus": "0-3"})
    assert out.status == "applied"
    assert read(tree, "proc/irq/57/smp_affinity_list") == "0-3"
    assert read(tree, "proc/irq/24/smp_affinity_list") == "0-7"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "proc/irq/57/smp_affinity_list") == "0-7"
    # "all": an IRQ the kernel will not move is skipped, not fatal. Stand-in: a link to a
    # read-only procfs file, which answers writes with EIO as a pinned IRQ does.
    (tree / "proc/irq/9/smp_affinity_list").unlink()
    (tree / "proc/irq/9/smp_affinity_list").symlink_to("/proc/version")
    _a, _c, _p, out = run(tree, "irq_affinity", {"irq": "all", "cpus": [0, 1, 2, 3]})
    assert out.status == "applied", out.reason
    assert out.skipped == ["irq9"]
    assert all(read(tree, f"proc/irq/{n}/smp_affinity_list") == "0-3" for n in (1, 24, 57, 130))


@pytest.mark.parametrize("params, message", [
    ({"irq": -1, "cpus": "0-3"}, "between 0 and 65535"),
    ({"irq": "1; rm -rf /", "cpus": "0-3"}, "must be an integer"),
    ({"irq": "../../etc", "cpus": "0-3"}, "must be an integer"),
    ({"irq": 999, "cpus": "0-3"}, "no IRQ 999"),
    ({"irq": 24, "cpus": "0-3 && reboot"}, "CPU list"),
    ({"irq": 24, "cpus": "0-3", "path": "/etc/passwd"}, "unknown parameter"),
    ({"irq": True, "cpus": "0"}, "must be an integer"),
])
def test_irq_affinity_hostile_parameters(tree, params, message):
    with pytest.raises(ParamError, match=message):
        ACTIONS["irq_affinity"].validate(params, ctx_for(tree))


def test_gpu_runtime_pm(tree):
    action, ctx, clean, out = run(tree, "gpu_runtime_pm", {"value": "on"})
    assert out.status == "applied"
    assert out.preview == [{"target": "17000000.gpu", "old": "auto", "new": "on"}]
    assert read(tree, "sys/devices/platform/gpu.0/power/control") == "on"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "sys/devices/platform/gpu.0/power/control") == "auto"


def test_cgroup_v2_ceiling_and_undo(tree):
    action, ctx, clean, out = run(tree, "cgroup_memory", {"runtime": "ollama", "limit_bytes": 5_500_000_000})
    assert out.status == "applied", out.reason
    assert read(tree, "sys/fs/cgroup/system.slice/ollama.service/memory.max") == "5500000000"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "sys/fs/cgroup/system.slice/ollama.service/memory.max") == "max"


def test_cgroup_v1_ceiling(tmp_path):
    config = fake_device.default_config()
    config["runtimes"][0]["cgroup"] = "ollama"
    root = fake_device.build(tmp_path / "v1", config=config, cgroup="v1")
    action, ctx, clean, out = run(root, "cgroup_memory", {"runtime": "ollama", "limit_bytes": 2_500_000_000})
    assert out.status == "applied"
    assert out.preview[0]["old"] == "max"
    assert read(root, "sys/fs/cgroup/memory/ollama/memory.limit_in_bytes") == "2500000000"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(root, "sys/fs/cgroup/memory/ollama/memory.limit_in_bytes") == "-1"


def test_cgroup_rejects_unknown_runtime_and_tiny_limits(tree):
    with pytest.raises(ParamError, match="not in this device's allow-list"):
        ACTIONS["cgroup_memory"].validate({"runtime": "sshd", "limit_bytes": 10**9}, ctx_for(tree))
    with pytest.raises(ParamError, match="between"):
        ACTIONS["cgroup_memory"].validate({"runtime": "ollama", "limit_bytes": 1000}, ctx_for(tree))
    with pytest.raises(ParamError, match="plain name"):
        ACTIONS["cgroup_memory"].validate({"runtime": "../../init.scope", "limit_bytes": 10**9}, ctx_for(tree))


def test_jetson_clocks_on_then_undo_restores_stored_clocks(tree):
    action, ctx, clean, out = run(tree, "jetson_clocks", {"on": True})
    assert out.status == "applied", out.reason
    assert out.preview == [{"target": "clocks_locked", "old": False, "new": True}]
    assert read(tree, "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq") == "1510400"
    assert read(tree, "sys/class/devfreq/17000000.gpu/min_freq") == "624750000"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq") == "729600"
    assert read(tree, "sys/class/devfreq/17000000.gpu/min_freq") == "306000000"


def test_jetson_clocks_that_does_nothing_fails_verification(tree):
    (tree / "etc/fake-jetson_clocks-broken").write_text("")
    _a, _c, _p, out = run(tree, "jetson_clocks", {"on": True})
    assert out.status == "rolled_back"
    assert "clocks_locked: read back False, expected True" in out.reason
    assert "rolled back to the saved values" in out.reason


def test_nvpmodel_switch_undo_and_reboot_mode_rolls_back(tree):
    action, ctx, clean, out = run(tree, "nvpmodel", {"mode": 0})
    assert out.status == "applied"
    assert out.preview == [{"target": "nvpmodel", "old": 2, "new": 0}]
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "var/lib/nvpmodel/status").startswith("pmode:0002")
    _a, _c, _p, out = run(tree, "nvpmodel", {"mode": 3})  # needs a reboot: we answer NO
    assert out.status == "rolled_back"
    assert read(tree, "var/lib/nvpmodel/status").startswith("pmode:0002")
    with pytest.raises(ParamError):
        ACTIONS["nvpmodel"].validate({"mode": "0 && reboot"}, ctx_for(tree))
    # by name, resolved on the device from /etc/nvpmodel.conf
    assert ACTIONS["nvpmodel"].validate({"mode": "MAXN"}, ctx_for(tree)) == {"mode": 0}
    (tree / "etc/nvpmodel.conf").write_text("< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n")
    assert ACTIONS["nvpmodel"].validate({"mode": "MAXN"}, ctx_for(tree)) == {"mode": 2}
    with pytest.raises(ParamError, match="no power mode named 'TURBO'"):
        ACTIONS["nvpmodel"].validate({"mode": "TURBO"}, ctx_for(tree))


def test_swapoff_and_undo(tree):
    action, ctx, clean, out = run(tree, "swapoff", {})
    assert out.status == "applied"
    assert out.preview == [{"target": "swap", "old": ["/dev/zram0"], "new": []}]
    assert "/dev/zram0" not in (tree / "proc/swaps").read_text()
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert "/dev/zram0" in (tree / "proc/swaps").read_text()
    with pytest.raises(ParamError, match="bad saved swap device"):
        undo(action, ctx, clean, {"swap": ["/dev/sda1; reboot"]})


def test_service_stop_undo_and_restart(tree):
    action, ctx, clean, out = run(tree, "service", {"op": "stop", "name": "gdm3.service"})
    assert out.status == "applied"
    assert read(tree, "run/fake-units/gdm3.service") == "inactive"
    assert undo(action, ctx, clean, out.snapshot).status == "undone"
    assert read(tree, "run/fake-units/gdm3.service") == "active"
    _a, _c, _p, out = run(tree, "service", {"op": "restart", "name": "ollama.service"})
    assert out.status == "applied"
    assert read(tree, "run/fake-restarts").splitlines()[-1] == "ollama.service"
    (tree / "etc/fake-service-fails").write_text("")
    _a, _c, _p, out = run(tree, "service", {"op": "restart", "name": "ollama.service"})
    assert out.status == "failed"  # a restart cannot be rolled back: it is reported
    assert "verification failed: ollama.service: read back 'failed', expected 'active'" in out.reason


def test_service_and_container_names_come_from_the_allow_list(tree):
    with pytest.raises(ParamError, match="not in this device's allow-list"):
        ACTIONS["service"].validate({"op": "stop", "name": "sshd.service"}, ctx_for(tree))
    with pytest.raises(ParamError, match="plain name"):
        ACTIONS["service"].validate({"op": "stop", "name": "gdm3;reboot"}, ctx_for(tree))
    with pytest.raises(ParamError, match="plain name"):
        ACTIONS["restart_container"].validate({"name": "$(reboot)"}, ctx_for(tree))
    _a, _c, _p, out = run(tree, "restart_container", {"name": "triton"})
    assert out.status == "applied"


def test_broken_allow_list_refuses_runtime_actions_with_the_reason(tree):
    (tree / "etc/thoxdash/agent.json").write_text("{not json")
    ctx = ctx_for(tree)
    with pytest.raises(ParamError, match="allow-list is unusable"):
        ACTIONS["cgroup_memory"].validate({"runtime": "ollama", "limit_bytes": 10**9}, ctx)
    assert ACTIONS["thp"].validate({"mode": "never"}, ctx) == {"mode": "never"}
