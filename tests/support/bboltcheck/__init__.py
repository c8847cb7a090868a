"""bbolt's own consistency check on a file, from Go: ``bbolt_check(path)``.

main.go beside this file is built once (offline, against Debian's golang-github-coreos-bbolt-dev
in GOPATH mode) into a cache outside the repository; tests skip when Go or the bbolt source is
missing (``make deps`` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOPATH = Path("/usr/share/gocode")
_SRC = Path(__file__).resolve().parent
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pyetcd-tests"


def bboltcheck_binary() -> Path:
    """The built tool (rebuilt when main.go is newer); skips the calling test if it cannot be built."""
    go = shutil.which("go")
    if go is None or not (GOPATH / "src" / "go.etcd.io" / "bbolt").is_dir():
        pytest.skip("bbolt check needs golang-go and golang-github-coreos-bbolt-dev (make deps)")
    binary = _CACHE / "bboltcheck"
    main = _SRC / "main.go"
    if not binary.exists() or binary.stat().st_mtime < main.stat().st_mtime:
        _CACHE.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": "",
               "GOCACHE": str(_CACHE / "gocache"), "GOPROXY": "off"}
        tmp = binary.with_suffix(f".{os.getpid()}")
        subprocess.run([go, "build", "-o", str(tmp), str(main)], check=True, env=env, capture_output=True,
                       timeout=300)
        tmp.replace(binary)
    return binary


def bbolt_check(path: Path) -> str:
    """bbolt's tx.Check() (what ``bbolt check`` runs) on ``path``; returns its output, fails on errors."""
    res = subprocess.run([str(bboltcheck_binary()), "check", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "OK", f"bbolt check {path}: {res.stdout}{res.stderr}"
    return res.stdout


def bbolt_buckets(path: Path) -> dict[str, int]:
    """Bucket name -> number of keys, as bbolt itself counts them."""
    res = subprocess.run([str(bboltcheck_binary()), "buckets", str(path)], capture_output=True, text=True,
                         timeout=120, check=True)
    return {name: int(n) for name, n in (line.rsplit(" ", 1) for line in res.stdout.splitlines())}
