"""Long operations report progress: the key index rebuilt at start from a large data dir, and
defragmentation's copy (its growth polled while LMDB writes it)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from pyetcd.mvcc import KVStore
from pyetcd.mvcc import store as mvcc_store
from pyetcd.storage.backend import Backend
from pyetcd.storage.progress import FileGrowth, Progress
from support import Member, etcdctl


def _fields(caplog: pytest.LogCaptureFixture, msg: str) -> list[dict[str, object]]:
    return [r.__dict__["fields"] for r in caplog.records if r.getMessage() == msg]


def test_progress_logs_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    caplog.set_level(logging.INFO)
    p = Progress(logging.getLogger("pyetcd.test"), "copying", 1000, "rows", interval=5.0, clock=lambda: now[0])
    for done in range(0, 1000, 10):
        now[0] += 0.2  # 100 updates over 20 s: a line every 5 s
        p.update(done)
    now[0] += 1
    p.finish(1000)
    assert _fields(caplog, "copying started") == [{"total-rows": 1000}]
    lines = _fields(caplog, "copying in progress")
    assert len(lines) == 4 == p.reports  # at 5, 10, 15 and 20 s
    assert [line["rows"] for line in lines] == sorted(line["rows"] for line in lines)  # type: ignore[type-var]
    assert lines[0]["took"] == "5s" and 0 < lines[0]["percent"] < 100  # type: ignore[operator]
    assert _fields(caplog, "copying finished") == [{"rows": 1000, "took": "21s"}]


def test_file_growth_is_reported_while_it_is_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    target = tmp_path / "data.mdb"
    p = Progress(logging.getLogger("pyetcd.test"), "defragmenting", 64 * 1024, "copied-bytes", interval=0.0)

    def writer() -> None:
        with target.open("wb") as f:
            for _ in range(16):
                f.write(b"x" * 4096)
                f.flush()
                time.sleep(0.02)

    with FileGrowth(p, target, poll=0.01):
        t = threading.Thread(target=writer)
        t.start()
        t.join()
    sizes = [f["copied-bytes"] for f in _fields(caplog, "defragmenting in progress")]
    assert len(sizes) >= 3 and sizes == sorted(sizes) and 0 < sizes[0] < sizes[-1] <= 64 * 1024  # type: ignore[operator]


def test_key_index_rebuild_reports_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend(tmp_path / "db", quota_bytes=1 << 26)
    kv = KVStore(backend)
    txn = backend.begin_write()
    w = kv.writer(txn)
    for i in range(300):
        t = w.begin()
        t.put(b"key-%03d" % (i % 120), b"v", 0)
        t.end()
    w.finish()
    txn.commit()
    backend.close()

    monkeypatch.setattr(mvcc_store, "_PROGRESS_MIN", 100)  # a "large" data dir, scaled down
    monkeypatch.setattr(mvcc_store, "_PROGRESS_EVERY", 50)
    monkeypatch.setattr(mvcc_store, "_PROGRESS_INTERVAL", 0.0)
    caplog.set_level(logging.INFO)
    reopened = KVStore(Backend(tmp_path / "db", quota_bytes=1 << 26))
    assert reopened.current_rev == 301
    assert _fields(caplog, "restoring mvcc key index started") == [{"total-revisions": 300}]
    assert [f["revisions"] for f in _fields(caplog, "restoring mvcc key index in progress")] == [50, 100, 150, 200, 250, 300]
    (done,) = _fields(caplog, "restoring mvcc key index finished")
    assert done["revisions"] == 300 and done["keys"] == 120 and done["current-revision"] == 301


def test_a_small_data_dir_starts_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    KVStore(Backend(tmp_path / "db", quota_bytes=1 << 26))
    assert not [r for r in caplog.records if "key index" in r.getMessage()]


def test_defrag_logs_start_and_finish(pyetcd_member: Member) -> None:
    etcdctl(pyetcd_member, "put", "k", "v")
    etcdctl(pyetcd_member, "defrag")
    pyetcd_member.stop()
    lines = [json.loads(ln) for ln in pyetcd_member.log_path.read_text().splitlines() if ln.startswith("{")]
    started = [ln for ln in lines if ln["msg"] == "defragmenting"]
    finished = [ln for ln in lines if ln["msg"] == "finished defragmenting directory"]
    # etcd 3.5's messages and fields (mvcc/backend: "defragmenting", "finished defragmenting directory")
    assert started and started[0]["current-db-size-bytes"] > 0 and started[0]["path"].endswith("member/snap")
    assert finished and finished[0]["current-db-size-bytes"] > 0 and finished[0]["took"].endswith("s")
    assert finished[0]["current-db-size-bytes-diff"] <= 0
