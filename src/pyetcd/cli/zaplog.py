"""Log lines as etcd 3.5 writes them with ``--logger zap``: one JSON object per line.

Every line has ``level``, ``ts``, ``caller`` and ``msg`` first (zap's production encoder order),
then the record's structured fields. Code logs structured fields the stdlib way::

    log.info("finished scheduled compaction", extra={"fields": {"compact-revision": 5, "took": "1ms"}})

so log aggregators that parse etcd's logs parse ours. Why a Formatter and not a new logging
API: library records (grpc, asyncio) come through the same handlers and become JSON too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any

# zap's level names; Python's CRITICAL is what etcd calls fatal.
_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
           logging.CRITICAL: "fatal"}
# --log-level values to Python levels (etcd's panic and fatal both log only the most severe).
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
          "panic": logging.CRITICAL, "fatal": logging.CRITICAL}
_RESERVED = ("level", "ts", "caller", "msg")


def zap_level(levelno: int) -> str:
    for threshold in sorted(_LEVELS, reverse=True):
        if levelno >= threshold:
            return _LEVELS[threshold]
    return "debug"


def zap_timestamp(created: float) -> str:
    """etcd 3.5's ``ts``: ISO 8601 in UTC with microseconds, e.g. ``2024-04-10T08:02:55.123456Z``."""
    return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zap_caller(pathname: str, lineno: int) -> str:
    """zap's short caller: the file's directory and name, ``server/server.py:123``."""
    folder, name = os.path.split(pathname)
    return f"{os.path.basename(folder)}/{name}:{lineno}"


class ZapJSONFormatter(logging.Formatter):
    """One JSON object per record, keys in zap's order, structured fields after ``msg``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": zap_level(record.levelno),
            "ts": zap_timestamp(record.created),
            "caller": zap_caller(record.pathname, record.lineno),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line[key if key not in _RESERVED else f"field-{key}"] = value
        if record.name != "pyetcd" and not record.name.startswith("pyetcd."):
            line["logger"] = record.name  # a library's record: say whose
        if record.exc_info:
            line["error"] = str(record.exc_info[1])
            line["stacktrace"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))


def handlers_for(outputs: str) -> list[logging.Handler]:
    """``--log-outputs``: ``default``/``stderr``, ``stdout`` or file paths, comma-separated."""
    handlers: list[logging.Handler] = []
    for out in (outputs or "default").split(","):
        out = out.strip()
        if out in ("default", "stderr", ""):
            handlers.append(logging.StreamHandler(sys.stderr))
        elif out == "stdout":
            handlers.append(logging.StreamHandler(sys.stdout))
        else:
            handlers.append(logging.FileHandler(out))
    return handlers


def setup_logging(logger: str, level: str, outputs: str) -> None:
    """Configure the root logger for the server process (``--logger``, ``--log-level``, ``--log-outputs``)."""
    formatter: logging.Formatter = (ZapJSONFormatter() if logger == "zap"
                                    else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers = handlers_for(outputs)
    for h in handlers:
        h.setFormatter(formatter)
    logging.basicConfig(level=LEVELS[level], handlers=handlers, force=True)
