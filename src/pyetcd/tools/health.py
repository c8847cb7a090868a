"""``python -m pyetcd.tools.health``: is a member healthy? (a linearizable Range answers, as
``etcdctl endpoint health`` checks). Exit 0 if so, 1 otherwise: for container health checks,
where no etcdctl is installed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyetcd.tools.health", description=__doc__)
    p.add_argument("--endpoint", required=True, help="https://host:port or http://host:port")
    p.add_argument("--cacert")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--timeout", type=float, default=3.0)
    a = p.parse_args(argv)
    target = a.endpoint.split("://", 1)[-1]
    if a.endpoint.startswith("https://"):
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(a.cacert).read_bytes() if a.cacert else None,
            private_key=Path(a.key).read_bytes() if a.key else None,
            certificate_chain=Path(a.cert).read_bytes() if a.cert else None)
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    try:
        rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=a.timeout)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.PERMISSION_DENIED:  # auth on: still healthy (etcdctl agrees)
            print(f"{a.endpoint} is unhealthy: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    finally:
        channel.close()
    print(f"{a.endpoint} is healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
