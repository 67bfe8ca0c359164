"""Notifications (`[alerts]`): fills, rejections, halts, disabled strategies, the feed's
health, divergences, start and stop, and the daily report, to Telegram and/or a webhook.

Not engine/notify.py, which is systemd's sd_notify. See engine/alerts/service.py.
"""

from .service import Alerts, targets_from

__all__ = ["Alerts", "targets_from"]
