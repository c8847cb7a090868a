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
import re
import sys
import threading
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
            "caller": getattr(record, "native_caller", None) or zap_caller(record.pathname, record.lineno),
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


# What grpc's C core (absl) writes to fd 2: "I1129 22:54:31.572683    6744 file.cc:2563] message"
_NATIVE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w./-]+:\d+)\] ?(.*)$")
_NATIVE_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def native_record(line: str) -> tuple[int, str, str | None]:
    """A line a C library wrote to stderr as (level, message, caller); unknown shapes are errors."""
    m = _NATIVE.match(line)
    if m is None:
        return logging.ERROR, line, None
    return _NATIVE_LEVELS[m.group(1)], m.group(3), m.group(2)


def bridge_native_stderr() -> None:
    """Route what C libraries write straight to fd 2 (grpc core's handshake failures...) through
    logging, so that with zap every line on stderr is JSON, as etcd 3.5 routes grpc's own logs
    through zap. Python's ``sys.stderr`` keeps the original stream; fd 2 becomes a pipe read here."""
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    native = logging.getLogger("grpc.core")

    def pump() -> None:
        with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as pipe:
            for raw in pipe:
                if raw.strip():
                    level, msg, caller = native_record(raw.rstrip("\n"))
                    native.log(level, "%s", msg, extra={"native_caller": caller or "native/stderr:0"})

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()


def setup_logging(logger: str, level: str, outputs: str) -> None:
    """Configure the root logger for the server process (``--logger``, ``--log-level``, ``--log-outputs``)."""
    if logger == "zap":
        bridge_native_stderr()
        logging.captureWarnings(True)  # Python warnings become log lines too
    formatter: logging.Formatter = (ZapJSONFormatter() if logger == "zap"
                                    else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers = handlers_for(outputs)
    for h in handlers:
        h.setFormatter(formatter)
    logging.basicConfig(level=LEVELS[level], handlers=handlers, force=True)
