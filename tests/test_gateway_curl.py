"""The README's curl examples, run line by line against a real pyetcd over mutual TLS, and the
same TLS rules for HTTP as for gRPC (no client certificate: refused)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import ETCDCTL_BIN, Member, etcdctl_env, free_port, grpc_channel, pyetcd_command
from support.crl import revoked_client, write_crl
from support.http import curl
from support.procstat import children
from support.tls import ClientTLS

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> list[tuple[str, str]]:
    """(command, expected substring) for each curl line of the README's HTTP block."""
    text = README.read_text()
    block = text.split("## HTTP on the client port", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    examples = []
    for line in block.splitlines():
        if not line.startswith("curl "):
            continue
        command, _, comment = line.rpartition("  # ")
        expected = re.split(r"\s{3,}\(", comment.strip())[0]  # drop the "   (note)" part
        examples.append((command.strip(), expected))
    return examples


def test_readme_has_examples() -> None:
    assert len(readme_examples()) >= 10


@pytest.mark.parametrize("served", ["client-url", "metrics-url"])
def test_readme_curl_examples(member_factory, served: str) -> None:
    metrics_port = free_port()
    m: Member = member_factory("pyetcd", extra_args=("--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"))
    c = m.certs
    env = {"PATH": "/usr/bin:/bin", "C": f"--cacert {c.ca} --cert {c.client} --key {c.client_key}",
           "U": m.client_url}
    if served == "metrics-url":  # /health and /metrics only, plain HTTP on their own URL
        for path, expected in (("/health", '{"health":"true","reason":""}'), ("/metrics", "etcd_server_has_leader 1.0")):
            out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{metrics_port}{path}"], capture_output=True,
                                 text=True, timeout=20, check=True).stdout
            assert expected in out
        return
    for command, expected in readme_examples():
        res = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30, check=False)
        assert res.returncode in (0, 28), f"{command}: exit {res.returncode} {res.stderr}"  # 28: --max-time (watch)
        assert expected in res.stdout, f"{command}\nexpected {expected!r} in\n{res.stdout}"


def test_http_needs_a_client_certificate_like_grpc(pyetcd_member: Member) -> None:
    no_cert = ClientTLS(ca=pyetcd_member.certs.ca)
    with pytest.raises(RuntimeError, match="curl"):
        curl(pyetcd_member, "/health", tls=no_cert)
    assert curl(pyetcd_member, "/health").status == 200


def test_http1_and_h2_offer_both_reach_the_gateway(pyetcd_member: Member) -> None:
    """curl offers h2 and http/1.1 by ALPN by default; --http1.1 offers only http/1.1."""
    c = pyetcd_member.certs
    for flag in ("--http2", "--http1.1"):
        res = subprocess.run(["curl", "-s", flag, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                              "--cacert", str(c.ca), "--cert", str(c.client), "--key", str(c.client_key),
                              pyetcd_member.client_url + "/version"], capture_output=True, text=True, timeout=20,
                             check=True)
        assert res.stdout == "200 1.1"


def test_plain_http_url_serves_grpc_and_http(tmp_path: Path) -> None:
    """On an http:// URL the HTTP/2 preface goes to gRPC (etcdctl), anything else to HTTP."""
    port, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*pyetcd_command(), "--name", "plain", "--data-dir", str(tmp_path / "data"),
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-sf", f"{url}/health"], capture_output=True, check=False).returncode:
            assert time.monotonic() < deadline and proc.poll() is None, "pyetcd did not serve /health"
            time.sleep(0.2)
        ctl = [ETCDCTL_BIN, f"--endpoints={url}"]
        subprocess.run([*ctl, "put", "k", "v"], env=etcdctl_env(), check=True, capture_output=True, timeout=20)
        out = subprocess.run(["curl", "-s", f"{url}/v3/kv/range", "-d", '{"key":"aw=="}'], capture_output=True,
                             text=True, check=True, timeout=20).stdout
        assert json.loads(out)["kvs"][0]["value"] == "dg=="  # "v", put over gRPC, read over HTTP
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_health_fails_while_an_alarm_is_raised(any_member: Member) -> None:
    """etcd: 503 while NOSPACE is raised (3.5 names it in "reason" and honours ?exclude=NOSPACE)."""
    def alarm(action: int) -> None:
        with grpc_channel(any_member) as ch:
            members = rpc_pb2_grpc.ClusterStub(ch).MemberList(rpc_pb2.MemberListRequest(), timeout=10).members
            rpc_pb2_grpc.MaintenanceStub(ch).Alarm(rpc_pb2.AlarmRequest(
                action=action, memberID=members[0].ID, alarm=rpc_pb2.NOSPACE), timeout=10)

    assert curl(any_member, "/health").status == 200
    alarm(rpc_pb2.AlarmRequest.ACTIVATE)
    raised = curl(any_member, "/health")
    assert raised.status == 503 and raised.json()["health"] == "false"
    if any_member.kind == "pyetcd":  # etcd 3.5's additions; 3.4 has neither
        assert raised.json() == {"health": "false", "reason": "ALARM NOSPACE"}
        assert curl(any_member, "/readyz").status == 503
        assert curl(any_member, "/livez").status == 200
        assert curl(any_member, "/health?exclude=NOSPACE").json() == {"health": "true", "reason": ""}
    alarm(rpc_pb2.AlarmRequest.DEACTIVATE)
    assert curl(any_member, "/health").status == 200


def test_front_process_is_restarted_if_it_dies(pyetcd_member: Member) -> None:
    """The front runs in a child of the member; killed, it is started again on the same sockets."""
    pid = pyetcd_member.pid
    assert pid is not None
    (front,) = children(pid)
    os.kill(front, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if curl(pyetcd_member, "/health", max_time=2).status == 200:
                break
        except RuntimeError:
            pass
        assert time.monotonic() < deadline, "the front did not come back"
        time.sleep(0.2)
    assert children(pid) != [front]
    with grpc_channel(pyetcd_member) as ch:  # gRPC through the new front too
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=10)


def test_revoked_client_refused_over_http_too(member_factory, certs, tmp_path: Path) -> None:
    """--client-crl-file applies to HTTP as to gRPC: the handshake of a revoked client fails."""
    revoked, serial = revoked_client(certs, tmp_path)
    m: Member = member_factory("pyetcd", extra_args=["--client-crl-file", str(write_crl(certs, serial,
                                                                                        tmp_path / "r.crl"))])
    with pytest.raises(RuntimeError, match="curl"):
        curl(m, "/health", tls=revoked)
    assert curl(m, "/health").status == 200
