"""The shape every action has, and the apply -> verify -> rollback sequence they all share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from collectors.actions.context import ActionContext
from collectors.actions.params import ParamError


class ApplyError(RuntimeError):
    """Applying failed part-way; the executor rolls back from the snapshot."""


@dataclass
class Outcome:
    status: str  # applied | rolled_back | failed | preview | undone
    reason: str = ""
    preview: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class Action:
    """One allow-listed action. Subclasses define targets and how to read, write and restore them.

    `snapshot` and `read` return {target: value}; `desired` returns {target: wanted value}.
    """

    name: ClassVar[str] = ""
    undoable: ClassVar[bool] = True
    safe: ClassVar[bool] = False          # may be part of "apply recommended tuning"
    needs_reboot: ClassVar[bool] = False
    runtime_scoped: ClassVar[bool] = False  # params name a runtime: the priority policy applies

    def can_undo(self, params: dict[str, Any]) -> bool:
        return self.undoable

    def validate(self, params: dict[str, Any], ctx: ActionContext | None) -> dict[str, Any]:
        """Clean params; with ctx None only the context-free checks (the web side's)."""
        raise NotImplementedError

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def snapshot(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        return self.read(ctx, params)

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        """Make the change; return targets skipped on purpose (best effort). Raise ApplyError."""
        raise NotImplementedError

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        raise ApplyError(f"{self.name} cannot be undone")

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        """Validate saved old values before writing them back (they come back through Redis)."""

    def same(self, current: Any, wanted: Any) -> bool:
        return bool(current == wanted)

    def mismatches(self, current: dict[str, Any], wanted: dict[str, Any], skip: list[str]) -> list[str]:
        return [f"{target}: read back {current.get(target)!r}, expected {value!r}"
                for target, value in wanted.items()
                if target not in skip and not self.same(current.get(target), value)]


def execute(action: Action, ctx: ActionContext, params: dict[str, Any], dry_run: bool = False) -> Outcome:
    """Snapshot, preview, apply, verify by reading back; roll back if anything goes wrong."""
    old = action.snapshot(ctx, params)
    want = action.desired(ctx, params, old)
    preview = [{"target": t, "old": old.get(t), "new": v} for t, v in want.items()]
    if dry_run:
        return Outcome("preview", "dry run: nothing changed", preview, old)
    try:
        skipped = action.apply(ctx, params, old)
        problems = action.mismatches(action.read(ctx, params), want, skipped)
        reason = "verification failed: " + "; ".join(problems) if problems else ""
    except (ApplyError, OSError, ParamError) as exc:
        skipped, reason = [], f"apply failed: {exc}"
    if not reason:
        return Outcome("applied", "verified by reading back", preview, old, skipped)
    if not action.can_undo(params):
        return Outcome("failed", reason, preview, old, skipped)
    return Outcome("rolled_back", reason + rollback(action, ctx, params, old), preview, old, skipped)


def rollback(action: Action, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> str:
    try:
        action.restore(ctx, params, old)
        problems = action.mismatches(action.read(ctx, params), old, [])
    except (ApplyError, OSError, ParamError) as exc:
        return f"; ROLLBACK FAILED: {exc}"
    if problems:
        return "; ROLLBACK INCOMPLETE: " + "; ".join(problems)
    return "; rolled back to the saved values"


def undo(action: Action, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> Outcome:
    """Restore a saved snapshot and verify it (manual undo)."""
    if not action.can_undo(params):
        return Outcome("failed", f"{action.name} cannot be undone")
    action.check_snapshot(params, old)
    current = action.read(ctx, params)
    preview = [{"target": t, "old": current.get(t), "new": v} for t, v in old.items()]
    try:
        action.restore(ctx, params, old)
        problems = action.mismatches(action.read(ctx, params), old, [])
    except (ApplyError, OSError) as exc:
        return Outcome("failed", f"undo failed: {exc}", preview, current)
    if problems:
        return Outcome("failed", "undo verification failed: " + "; ".join(problems), preview, current)
    return Outcome("undone", "restored the saved values and read them back", preview, current)


# -- file knobs (sysfs / procfs) -----------------------------------------------------------------
class KnobAction(Action):
    """An action that writes one value into a set of files and reads it back."""

    def best_effort(self, params: dict[str, Any]) -> bool:
        """Skip targets the kernel refuses (e.g. unmovable IRQs) instead of failing."""
        return False

    def write(self, path: Path, value: Any) -> None:
        path.write_text(self.render(value) + "\n", encoding="utf-8")

    def knobs(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Path]:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        return text.strip()

    def render(self, value: Any) -> str:
        return str(value)

    def want(self, params: dict[str, Any]) -> Any:
        return params["value"]

    def check_value(self, value: Any) -> Any:
        """Validate one saved value (for undo); raise ParamError."""
        return value

    def read(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        return {t: self.parse(p.read_text(encoding="utf-8", errors="replace"))
                for t, p in self.knobs(ctx, params).items()}

    def desired(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {t: self.want(params) for t in old}

    def apply(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> list[str]:
        skipped = []
        value = self.want(params)
        for target, path in self.knobs(ctx, params).items():
            try:
                self.write(path, value)
            except OSError as exc:
                if not self.best_effort(params):
                    raise ApplyError(f"{target}: {exc.strerror or exc}") from None
                skipped.append(target)
        return skipped

    def restore(self, ctx: ActionContext, params: dict[str, Any], old: dict[str, Any]) -> None:
        knobs = self.knobs(ctx, params)
        errors = []
        for target, value in old.items():
            if target not in knobs:
                raise ApplyError(f"{target} is not a target of this action")
            try:
                self.write(knobs[target], value)
            except OSError as exc:
                errors.append(f"{target}: {exc.strerror or exc}")
        if errors:
            raise ApplyError("; ".join(errors))

    def check_snapshot(self, params: dict[str, Any], old: dict[str, Any]) -> None:
        if not isinstance(old, dict) or not old:
            raise ParamError("no saved values to restore")
        for value in old.values():
            self.check_value(value)
