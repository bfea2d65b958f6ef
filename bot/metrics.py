"""The bot's metrics: Discord 429s, counted from discord.py's own rate-limit warnings (its HTTP client retries them
itself and tells nobody else), and the /metrics exporter (``EASEL_METRICS_PORT``)."""

from __future__ import annotations

import logging

from common import metrics
from common.settings import Settings

RATE_LIMITED = "We are being rate limited."


class RateLimitCounter(logging.Handler):
    """Counts discord.py's "We are being rate limited" warnings (each is one HTTP 429 answer)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(RATE_LIMITED):
            scope = "too_long" if "too long" in record.getMessage() else "retried"
            metrics.DISCORD_RATE_LIMITED.labels(scope).inc()


def install(settings: Settings) -> None:
    logging.getLogger("discord.http").addHandler(RateLimitCounter(level=logging.WARNING))
    metrics.start_exporter(settings.metrics_port)
