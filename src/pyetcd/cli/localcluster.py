"""``make cluster``: the three members of ``docker-compose.yml`` as local processes.

One table says what the cluster is (names, client and peer ports, certificates); both this
command and docker-compose.yml use it (a test keeps the compose file's command lines equal to
``member_args`` with the containers' host names), so an ops guide's three-endpoint commands work
the same against either:

    etcdctl --endpoints=https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379 \\
        --cacert=certs/ca.pem --cert=certs/client.pem --key=certs/client-key.pem member list -w table
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

# (name, client port, peer port): etcd's own local-cluster layout (its Procfile)
MEMBERS = [("infra1", 2379, 2380), ("infra2", 22379, 22380), ("infra3", 32379, 32380)]
TOKEN = "pyetcd-cluster-1"


def member_args(name: str, host: str, certs: str, data_dir: str, listen_host: str | None = None) -> list[str]:
    """etcd's flags for member ``name`` reached at ``host`` (listening on ``listen_host``)."""
    hosts = {n: host if "{" not in host else host.format(name=n) for n, _, _ in MEMBERS}
    _, cport, pport = next(m for m in MEMBERS if m[0] == name)
    me, listen = hosts[name], listen_host or hosts[name]
    initial = ",".join(f"{n}=https://{hosts[n]}:{p}" for n, _, p in MEMBERS)
    return [
        "--name", name, "--data-dir", data_dir,
        "--listen-client-urls", f"https://{listen}:{cport}", "--advertise-client-urls", f"https://{me}:{cport}",
        "--listen-peer-urls", f"https://{listen}:{pport}", "--initial-advertise-peer-urls", f"https://{me}:{pport}",
        "--initial-cluster", initial, "--initial-cluster-token", TOKEN, "--initial-cluster-state", "new",
        "--cert-file", f"{certs}/server.pem", "--key-file", f"{certs}/server-key.pem",
        "--trusted-ca-file", f"{certs}/ca.pem", "--client-cert-auth",
        "--peer-cert-file", f"{certs}/peer.pem", "--peer-key-file", f"{certs}/peer-key.pem",
        "--peer-trusted-ca-file", f"{certs}/ca.pem", "--peer-client-cert-auth",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyetcd.cli.localcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certs", default="certs", help="folder with ca.pem, server.pem, peer.pem ...")
    parser.add_argument("--data", default="cluster.data", help="folder for the members' data dirs and logs")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    data = Path(args.data)
    data.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    for name, _, _ in MEMBERS:
        cmd = [sys.executable, "-m", "pyetcd",
               *member_args(name, args.host, args.certs, str(data / f"{name}.etcd"))]
        log = (data / f"{name}.log").open("ab")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        print(f"started {name} (pid {procs[-1].pid}): {shlex.join(cmd)}\n  log: {data / f'{name}.log'}")
    endpoints = ",".join(f"https://{args.host}:{c}" for _, c, _ in MEMBERS)
    print(f"\nReach the cluster with:\n  ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={args.certs}/ca.pem "
          f"--cert={args.certs}/client.pem --key={args.certs}/client-key.pem member list -w table\n"
          "Ctrl-C stops all three.")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    codes = [p.wait(15) for p in procs]
    print(f"members exited with {codes}")
    return 0 if stopping else 1


if __name__ == "__main__":
    raise SystemExit(main())
