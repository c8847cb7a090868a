"""Go durations as etcd's flags take them (``100ms``, ``1m30s``) and as etcd's logs print them (``1h0m0s``)."""

from __future__ import annotations

import re

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")


def parse_go_duration(value: str) -> float:
    """A Go duration (``100ms``, ``5s``, ``1m30s``, ``0``) in seconds."""
    v = value.strip()
    sign = -1.0 if v.startswith("-") else 1.0
    v = v.lstrip("+-")
    if v == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(v):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not v or pos != len(v):
        raise ValueError(f"invalid duration {value!r}")
    return sign * total


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String()`` writes it: ``0s``, ``900ms``, ``1.5s``, ``1h0m0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = frac(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return f"{sign}{secs}"
