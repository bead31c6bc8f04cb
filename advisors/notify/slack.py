"""Slack incoming-webhook body: `text` (the notification fallback) plus `blocks`."""

from __future__ import annotations

from typing import Any

from advisors.notify.base import AlertView, Context, Notifier

ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
MAX_BLOCKS = 45  # Slack allows 50 blocks per message


def escape(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier(Notifier):
    format = "slack"
    label = "Slack"

    def payload(self, alerts: list[AlertView], ctx: Context) -> dict[str, Any]:
        firing = [a for a in alerts if a.status == "firing"]
        resolved = [a for a in alerts if a.status == "resolved"]
        parts = []
        if firing:
            parts.append(f"{len(firing)} firing")
        if resolved:
            parts.append(f"{len(resolved)} resolved")
        title = f"ThoxDash {ctx.device}: {', '.join(parts)}"
        lines = [f"[{a.status.upper()}] {a.rule} {a.summary}" for a in alerts]
        blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
        for a in alerts[:MAX_BLOCKS]:
            icon = ":white_check_mark:" if a.status == "resolved" else ICON.get(a.severity, "")
            labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
            text = (f"{icon} *{escape(a.rule)}* ({escape(a.severity)}, {a.status}) on `{escape(a.device)}`"
                    f"{' ' + escape(labels) if labels else ''}\n{escape(a.summary)}\n<{a.url}|open in ThoxDash>")
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}})
        if len(alerts) > MAX_BLOCKS:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"and {len(alerts) - MAX_BLOCKS} more"}]})
        return {"text": escape(title + "\n" + "\n".join(lines))[:3000], "blocks": blocks}
