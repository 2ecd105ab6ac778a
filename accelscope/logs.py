"""JSON structured logging: one object per line (time, level, event, fields).

Built on the standard ``logging`` module with python-json-logger's
formatter.  ``event(...)`` logs a named event with fields;
:class:`RateLimiter` keeps repeated errors (one broken device every
collection cycle) to one line per key per interval, counting what it
suppressed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

try:  # python-json-logger >= 3
    from pythonjsonlogger.json import JsonFormatter
except ImportError:  # pragma: no cover - older releases
    from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

LOGGER_NAME = "accelscope"


def setup_logging(level: str = "info", fmt: str = "json", stream=None) -> logging.Logger:
    """Configure the ``accelscope`` logger.

    ``level``: debug, info, warning, error.  ``fmt``: ``json`` (one object
    per line with keys ``time``, ``level``, ``event`` and the event's fields)
    or ``text``.  Returns the logger.  Raises ValueError on an unknown level.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{message}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "message": "event",
                           "human_message": "message"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        ))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    return logger


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class _TextFormatter(logging.Formatter):
    """``time LEVEL event key=value ...``: the text form keeps every field."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        human = fields.pop("human_message", None)
        parts = [base] + [f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}"
                          for k, v in fields.items()]
        if human:
            parts.append(f"| {human}")
        return " ".join(parts)


def event(event_name: str, /, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event ``event_name`` with ``fields`` (JSON-serialisable values)."""
    if "message" in fields:  # a human sentence: rendered as "message" by the JSON formatter
        fields["human_message"] = fields.pop("message")
    extra = {(k + "_" if k in _RESERVED else k): v for k, v in fields.items()}
    logging.getLogger(LOGGER_NAME).log(level, event_name, extra=extra)


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RateLimiter:
    """Allow one log line per ``key`` per ``interval`` seconds.

    ``allow(key)`` returns ``(True, suppressed)`` when a line may be written,
    where ``suppressed`` is how many were dropped for that key since the
    last allowed one; otherwise ``(False, 0)``.  Thread-safe.
    """

    def __init__(self, interval: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10000) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def allow(self, key: str) -> tuple[bool, int]:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is None or now - last[0] >= self.interval:
                if len(self._last) >= self._max_keys:
                    self._last.clear()
                self._last[key] = (now, 0)
                return True, (last[1] if last else 0)
            self._last[key] = (last[0], last[1] + 1)
            return False, 0
