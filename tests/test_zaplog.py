"""Logs as etcd 3.5 writes them (--logger zap): every line of a run is one JSON object with level,
ts, caller and msg first, then structured fields. Checked on a real run of real etcd (3.4, zap too)
and of pyetcd, and on the formatter itself."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from pyetcd.cli.zaplog import ZapJSONFormatter, native_record
from pyetcd.tools.durations import go_duration
from support import ClientTLS, Member, etcdctl

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,9}(Z|[+-]\d{4})$")
GRPC_GO = re.compile(r"^(INFO|WARNING|ERROR): \d{4}/\d\d/\d\d ")
CALLER = re.compile(r"^([\w.-]+/)?[\w.-]+\.(go|py|cc|c|h):\d+$")


def _record(msg: str, level: int = logging.INFO, name: str = "pyetcd.server", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, "/x/src/pyetcd/server/server.py", 42, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_formatter_writes_zap_lines() -> None:
    line = ZapJSONFormatter().format(_record("finished", fields={"revision": 5, "took": "1ms", "msg": "clash"}))
    obj = json.loads(line)
    assert list(obj)[:4] == ["level", "ts", "caller", "msg"]
    assert obj["level"] == "info" and obj["caller"] == "server/server.py:42" and obj["msg"] == "finished"
    assert TS.match(obj["ts"]) and obj["ts"].endswith("Z")
    assert obj["revision"] == 5 and obj["took"] == "1ms" and obj["field-msg"] == "clash"
    assert " " not in line.split('"msg"')[0]  # zap's compact separators
    assert json.loads(ZapJSONFormatter().format(_record("w", logging.WARNING)))["level"] == "warn"
    assert json.loads(ZapJSONFormatter().format(_record("c", logging.CRITICAL)))["level"] == "fatal"
    lib = json.loads(ZapJSONFormatter().format(_record("from grpc", name="grpc._server")))
    assert lib["logger"] == "grpc._server"
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        exc = json.loads(ZapJSONFormatter().format(_record("failed", logging.ERROR, exc_info=sys.exc_info())))
    assert exc["error"] == "boom\nsecond line" and "Traceback" in exc["stacktrace"]


def test_native_stderr_lines_become_records() -> None:
    line = "I1129 22:54:31.572683    6744 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL"
    assert native_record(line) == (logging.INFO, "Handshake failed with error SSL_ERROR_SSL", "ssl_transport_security.cc:2563")
    assert native_record("E1129 22:54:31.5 1 a/b.cc:1] x")[::2] == (logging.ERROR, "a/b.cc:1")
    assert native_record("something else") == (logging.ERROR, "something else", None)
    rec = _record("Handshake failed", native_caller="ssl_transport_security.cc:2563")
    assert json.loads(ZapJSONFormatter().format(rec))["caller"] == "ssl_transport_security.cc:2563"


def test_durations_as_go_prints_them() -> None:
    cases = {0: "0s", 1e-7: "100ns", 1.5e-6: "1.5\u00b5s", 0.9: "900ms", 1.292377e-3: "1.292377ms", 1.5: "1.5s",
             61: "1m1s", 3600: "1h0m0s", 5400: "1h30m0s", 7e-3: "7ms", -2: "-2s"}
    assert {k: go_duration(k) for k in cases} == cases


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("=== start")]


@pytest.mark.parametrize("outputs", ["stderr", "file"])
def test_every_line_of_a_run_is_zap_json(outputs: str, member_factory, tmp_path: Path, any_kind: str) -> None:  # type: ignore[no-untyped-def]
    log_file = tmp_path / f"{any_kind}-zap.log"
    args = ["--logger", "zap", "--log-level", "info", "--log-outputs", str(log_file) if outputs == "file" else "stderr"]
    m: Member = member_factory(any_kind, extra_args=args)
    etcdctl(m, "put", "k", "v1")
    etcdctl(m, "put", "k", "v2")
    etcdctl(m, "compaction", "2")
    etcdctl(m, "defrag")
    refused = etcdctl(m, "--dial-timeout=1s", "--command-timeout=1s", "get", "k", tls=ClientTLS(ca=m.certs.ca),
                      check=False)  # no client certificate
    assert refused.returncode != 0  # grpc's C core logs the failed handshake on fd 2 by itself
    assert m.stop() == (0 if any_kind == "pyetcd" else -15)  # etcd re-raises SIGTERM after its clean shutdown
    lines = _lines(log_file if outputs == "file" else m.log_path)
    if any_kind == "etcd":  # real etcd 3.4 lets grpc-go's own logger write plain lines to stderr; pyetcd must not
        lines = [ln for ln in lines if not GRPC_GO.match(ln)]
    assert len(lines) > 5
    msgs = []
    for line in lines:
        obj = json.loads(line)  # every line, including library warnings, if any
        assert list(obj)[:4] == ["level", "ts", "caller", "msg"], line
        assert obj["level"] in ("debug", "info", "warn", "error"), line
        assert TS.match(obj["ts"]) and CALLER.match(obj["caller"]), line
        msgs.append(obj["msg"])
    if any_kind == "pyetcd":  # the lines an operator looks for
        for expected in ("starting an etcd server", "ready to serve client requests", "defragmenting",
                         "finished defragmenting directory", "received signal; shutting down", "closed etcd server"):
            assert expected in msgs, (expected, msgs)
    if outputs == "file":
        assert not [ln for ln in _lines(m.log_path) if ln.startswith("{")]  # nothing went to stderr instead


@pytest.fixture(params=["etcd", "pyetcd"])
def any_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
