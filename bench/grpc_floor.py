"""The floor under pyetcd's reads: what grpc.aio alone costs per request, next to etcd and pyetcd.

Three servers side by side in one run, each driven by etcd's benchmark tool with the same
serializable range scenarios as bench/kv.py (mutual TLS):

* real etcd;
* pyetcd;
* ``floor``: a grpc.aio server, same TLS, whose KV.Range does nothing but return a fixed
  RangeResponse (request and response left as bytes: no protobuf, no store, no auth), run as
  the pyetcd command runs a member: gRPC's EventEngine off for the sockets it accepts, under
  SCHED_BATCH (cli/launch.py), on the same event loop (cli/eventloop.py). It does TLS in gRPC,
  where pyetcd's front ends it natively in a process of its own.

The table gives requests/s and server CPU per request (microseconds, from /proc: robust to the
other load on the machine, unlike requests/s; pyetcd's includes its HTTP front process). The
floor's CPU per request is what any CPython server built on grpc.aio pays before doing any work;
compared with etcd's whole cost per request it says how far reads can go in one process, and
how many processes (cores) it would take to keep up with etcd.

    .venv/bin/python bench/grpc_floor.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kv import RESULTS, SCENARIOS, CertPaths, Member, preload, run_scenario
from pyetcd.cli.eventloop import loop_factory
from pyetcd.cli.launch import GRPC_EXPERIMENTS, use_batch_scheduling
from support import free_port, start_member
from support.procstat import children, cpu_seconds

FLOOR_SCENARIOS = [sc for sc in SCENARIOS if sc.name.startswith("range serializable")]


async def serve_floor(port: int, certs: Path) -> None:
    """The floor server (run in its own process by ``--serve``)."""
    import grpc

    from pyetcd.api import rpc_pb2

    answer = rpc_pb2.RangeResponse(header=rpc_pb2.ResponseHeader(
        cluster_id=1, member_id=2, revision=3, raft_term=4)).SerializeToString()

    async def range_(request: bytes, context: object) -> bytes:
        return answer

    handler = grpc.method_handlers_generic_handler("etcdserverpb.KV", {"Range": grpc.unary_unary_rpc_method_handler(
        range_, request_deserializer=None, response_serializer=None)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    creds = grpc.ssl_server_credentials([((certs / "server-key.pem").read_bytes(), (certs / "server.pem").read_bytes())],
                                        root_certificates=(certs / "ca.pem").read_bytes(), require_client_auth=True)
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    await server.start()
    await server.wait_for_termination()


@dataclass
class Floor:
    """Enough of a Member for run_scenario: where to connect, with which certificates."""

    certs: CertPaths
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, certs: CertPaths) -> Floor:
        port = free_port()
        env = {**os.environ, "GRPC_EXPERIMENTS": os.environ.get("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)}
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(certs.dir)], env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return cls(certs, proc, port)
            time.sleep(0.1)
        proc.kill()
        raise RuntimeError("the floor server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of pid and its children (pyetcd's HTTP front runs in a child)."""
    return cpu_seconds(pid) + sum(cpu_seconds(k) for k in children(pid))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a fifth of the requests per scenario")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "CERT_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        use_batch_scheduling()
        with asyncio.Runner(loop_factory=loop_factory()[1]) as runner:
            runner.run(serve_floor(int(args.serve[0]), Path(args.serve[1])))
        return 0
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyetcd-bench-floor-") as tmp:
        certs = CertPaths.create(Path(tmp) / "certs")
        servers: dict[str, Member | Floor] = {}
        try:
            servers["real"] = start_member("etcd", Path(tmp) / "etcd", certs, name="floor-etcd")
            servers["pyetcd"] = start_member("pyetcd", Path(tmp) / "pyetcd", certs, name="floor-pyetcd")
            servers["floor"] = Floor.start(certs)
            for name in ("real", "pyetcd"):
                member = servers[name]
                assert isinstance(member, Member)
                preload(member)
            for rnd in range(args.rounds):
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for sc in FLOOR_SCENARIOS:
                    for name in order:
                        srv = servers[name]
                        cpu0 = process_tree_cpu(srv.pid or 0)
                        res = run_scenario([srv], sc, args.quick)  # type: ignore[list-item]
                        used = process_tree_cpu(srv.pid or 0) - cpu0
                        total = max(200, sc.total // 5) if args.quick else sc.total
                        if res.failure or not res.requests_per_sec:
                            print(f"{sc.name} / {name}: {res.failure}", file=sys.stderr)
                            continue
                        rows.setdefault(sc.name, {}).setdefault(name, []).append(
                            (res.requests_per_sec, used / total * 1e6))
                        print(f"{sc.name:34} {name:7} {res.requests_per_sec:9,.0f} req/s "
                              f"{used / total * 1e6:7.1f} us CPU/req", file=sys.stderr)
        finally:
            for srv in servers.values():
                srv.stop()
    print(f"{'scenario':34}{'target':>8}{'req/s':>10}{'CPU us/req':>12}{'req/s / etcd':>14}{'CPU / etcd':>12}")
    for sc_name, by in rows.items():
        base = by.get("real")
        for name, vals in by.items():
            rps = sum(v[0] for v in vals) / len(vals)
            cpu = sum(v[1] for v in vals) / len(vals)
            ratio = (f"{rps / (sum(v[0] for v in base) / len(base)):.2f}",
                     f"{cpu / (sum(v[1] for v in base) / len(base)):.2f}") if base else ("-", "-")
            print(f"{sc_name:34}{name:>8}{rps:10,.0f}{cpu:12.1f}{ratio[0]:>14}{ratio[1]:>12}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"grpc-floor-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps({"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                               "cpus": os.cpu_count(), "quick": args.quick, "rounds": rows}, indent=2))
    print(f"results: {out.relative_to(Path(__file__).resolve().parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
