"""`make run` as the README promises: the command it runs starts a working mutual-TLS member.

The recipe is taken from `make -n run` (on free ports, a temporary data dir, and certificates
of the test session instead of the checkout's certs/), then run for real: etcdctl reaches it
and /health answers on the same URL.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

from support import CertPaths, etcdctl_env, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_make_run_starts_a_mutual_tls_member(tmp_path: Path, certs: CertPaths) -> None:
    port, peer = free_port(), free_port()
    dry = subprocess.run(["make", "-s", "-n", "run", f"PORT={port}", f"PEER_PORT={peer}",
                          f"DATA_DIR={tmp_path / 'data'}"], cwd=ROOT, capture_output=True, text=True, check=True)
    recipe = dry.stdout.replace("\\\n", " ").splitlines()
    (line,) = [x for x in recipe if x.strip().startswith(".venv/bin/pyetcd ")]
    argv = [a.replace("certs/", f"{certs.dir}/") for a in shlex.split(line)]
    argv[0] = str(ROOT / argv[0])
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=(tmp_path / "log").open("wb"), stderr=subprocess.STDOUT)
    try:
        base = ["etcdctl", f"--endpoints=https://127.0.0.1:{port}", f"--cacert={certs.ca}",
                f"--cert={certs.client}", f"--key={certs.client_key}"]
        deadline = time.monotonic() + 30
        while True:
            put = subprocess.run([*base, "put", "hello", "world"], capture_output=True, text=True, env=etcdctl_env(),
                                 timeout=30)
            if put.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert put.stdout == "OK\n", (put.stderr, (tmp_path / "log").read_text()[-2000:])
        health = subprocess.run(["curl", "-s", "--cacert", str(certs.ca), "--cert", str(certs.client), "--key",
                                 str(certs.client_key), f"https://127.0.0.1:{port}/health"],
                                capture_output=True, text=True, timeout=30)
        assert health.stdout == '{"health":"true","reason":""}'
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
