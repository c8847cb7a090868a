"""The pyetcd command line as an operator meets it: etcd's flags, ETCD_* variables, clear
errors for bad input, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import MemberFactory
from support import Member, etcdctl, free_port
from support.procstat import children

PYETCD = str(Path(sys.executable).parent / "pyetcd")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYETCD, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


def test_unknown_flag_fails_at_start_naming_it() -> None:
    res = _run("--no-such-flag")
    assert res.returncode == 1
    assert "--no-such-flag" in res.stderr and "pyetcd --help" in res.stderr


def test_bad_values_fail_at_start_naming_the_flag(tmp_path: Path) -> None:
    cases = {
        ("--max-txn-ops", "many"): "--max-txn-ops",
        ("--listen-client-urls", "ftp://x:1"): "--listen-client-urls",
        ("--client-cert-auth=maybe",): "--client-cert-auth",
        ("--initial-cluster-state", "sideways"): "--initial-cluster-state",
    }
    for args, flag in cases.items():
        res = _run("--data-dir", str(tmp_path / "d"), *args)
        assert res.returncode == 1, args
        assert flag in res.stderr, (args, res.stderr)
    res = _run(env={"ETCD_MAX_REQUEST_BYTES": "lots"})
    assert res.returncode == 1 and "ETCD_MAX_REQUEST_BYTES" in res.stderr


def test_env_vars_configure_and_sigterm_stops_cleanly(pyetcd_member: Member, tmp_path: Path) -> None:
    # A second member configured only through ETCD_* variables, as an ops guide would.
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    c = pyetcd_member.certs
    env = {"ETCD_NAME": "from-env", "ETCD_DATA_DIR": str(tmp_path / "envdata"), "ETCD_LISTEN_CLIENT_URLS": url,
           "ETCD_ADVERTISE_CLIENT_URLS": url, "ETCD_CERT_FILE": str(c.server), "ETCD_KEY_FILE": str(c.server_key),
           "ETCD_TRUSTED_CA_FILE": str(c.ca), "ETCD_CLIENT_CERT_AUTH": "true"}
    proc = subprocess.Popen([PYETCD], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        other = Member(kind="pyetcd", name="from-env", base_dir=tmp_path, client_port=port, peer_port=0, certs=c)
        deadline = time.monotonic() + 20
        out = None
        while time.monotonic() < deadline:
            out = etcdctl(other, "member", "list", check=False, timeout=5)
            if out.returncode == 0:
                break
            time.sleep(0.2)
        assert out is not None and out.returncode == 0, out
        assert "from-env" in out.stdout and url in out.stdout
        assert (tmp_path / "envdata").is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_default_data_dir_is_name_dot_etcd(tmp_path: Path) -> None:
    proc = subprocess.Popen([PYETCD, "--name", "infra9", "--listen-client-urls", "http://127.0.0.1:0",
                             "--advertise-client-urls", "http://127.0.0.1:0"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "infra9.etcd").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "infra9.etcd" / "member").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


_FIRST_GRPC_IMPORT = """
import builtins, os, runpy, sys
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    if name == "grpc" or name.startswith("grpc."):
        print(os.environ.get("GRPC_EXPERIMENTS"), os.sched_getscheduler(0),
              os.environ.get("GRPC_ENABLE_FORK_SUPPORT"), flush=True)
        os._exit(0)
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
sys.argv = ["pyetcd", "--version"]
"""
_ENTRIES = {"the pyetcd command": f"runpy.run_path({PYETCD!r}, run_name='__main__')",
            "python -m pyetcd": "runpy.run_module('pyetcd', run_name='__main__')"}


def _at_first_grpc_import(start: str, env: dict[str, str], prefix: list[str] | None = None) -> list[str]:
    """GRPC_EXPERIMENTS, the scheduling policy and GRPC_ENABLE_FORK_SUPPORT as an entry point
    leaves them when grpc is first imported (with stderr, for the assertion messages)."""
    res = subprocess.run([*(prefix or []), sys.executable, "-c", _FIRST_GRPC_IMPORT + start], capture_output=True,
                         text=True, timeout=60, env=env)
    return [*res.stdout.split(), res.stderr]


def test_the_command_chooses_grpc_io_engine_before_grpc_is_imported() -> None:
    """gRPC core reads GRPC_EXPERIMENTS only while grpc is imported (cli/launch.py): both ways of
    starting the server set it first, and an operator's own value is kept."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    for entry, start in _ENTRIES.items():
        for preset, expected in ((None, "-event_engine_listener,-event_engine_for_all_other_endpoints"),
                                 ("-event_engine_client", "-event_engine_client")):
            seen = _at_first_grpc_import(start, {**env, **({"GRPC_EXPERIMENTS": preset} if preset else {})})
            assert seen[0] == expected, (entry, preset, seen)


def test_the_command_turns_grpc_fork_support_off_before_grpc_is_imported() -> None:
    """cli/launch.py: gRPC's fork handlers, which crashed members forking their front under
    uvloop, are off from either entry point unless the operator set GRPC_ENABLE_FORK_SUPPORT."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    for entry, start in _ENTRIES.items():
        for preset, expected in ((None, "false"), ("true", "true")):
            seen = _at_first_grpc_import(start, {**env, **({"GRPC_ENABLE_FORK_SUPPORT": preset} if preset else {})})
            assert seen[2] == expected, (entry, preset, seen)


def test_the_command_runs_under_batch_scheduling_unless_told_otherwise() -> None:
    """cli/launch.py: SCHED_BATCH before grpc starts a thread, from either entry point; a policy
    the operator chose (here SCHED_IDLE, with chrt) stays, and PYETCD_SCHED_BATCH=0 keeps the default."""
    base = {k: v for k, v in os.environ.items() if k != "PYETCD_SCHED_BATCH"}
    for entry, start in _ENTRIES.items():
        for prefix, env, expected in (([], {}, os.SCHED_BATCH),
                                      (["chrt", "--idle", "0"], {}, os.SCHED_IDLE),
                                      ([], {"PYETCD_SCHED_BATCH": "0"}, os.SCHED_OTHER)):
            seen = _at_first_grpc_import(start, {**base, **env}, prefix)
            assert seen[1] == str(expected), (entry, prefix, env, seen)


def test_every_thread_of_a_member_and_its_front_runs_under_batch_scheduling(pyetcd_member: Member) -> None:
    assert pyetcd_member.pid is not None
    pids = [pyetcd_member.pid, *children(pyetcd_member.pid)]
    assert len(pids) == 2  # the member and its front
    threads = [int(t) for pid in pids for t in os.listdir(f"/proc/{pid}/task")]
    assert len(threads) > 3
    assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_BATCH}


def test_a_member_runs_on_uvloop_unless_told_otherwise(member_factory: MemberFactory) -> None:
    """cli/eventloop.py: the member's event loop is uvloop's (its extension mapped in the process,
    named in the start-up log line); PYETCD_EVENT_LOOP=asyncio keeps asyncio's own loop."""
    for env, expected in (({}, "uvloop"), ({"PYETCD_EVENT_LOOP": "asyncio"}, "asyncio")):
        m = member_factory("pyetcd", env=env)
        assert m.pid is not None
        assert f'"event-loop":"{expected}"' in m.log_path.read_text().replace(" ", "")
        assert ("/uvloop/loop." in Path(f"/proc/{m.pid}/maps").read_text()) == (expected == "uvloop")
        assert etcdctl(m, "put", "k", expected).returncode == 0
        assert etcdctl(m, "get", "k", "--print-value-only").stdout.strip() == expected
