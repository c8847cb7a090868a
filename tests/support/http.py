"""HTTP to a member's client URL with the real curl, as an operator would (curl picks h2 or
HTTP/1.1 by ALPN on its own): health, metrics and etcd's v3 JSON gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from support.member import Member
from support.tls import ClientTLS

CURL = shutil.which("curl") or "/usr/bin/curl"


@dataclass
class HTTPReply:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def curl_argv(url: str, *, tls: ClientTLS | None = None, data: str | None = None,
              headers: dict[str, str] | None = None, max_time: float = 20.0) -> list[str]:
    cmd = [CURL, "-sS", "--max-time", str(max_time), "-w", "\n%{http_code}"]
    if tls is not None:
        cmd += ["--cacert", str(tls.ca)]
        if tls.cert and tls.key:
            cmd += ["--cert", str(tls.cert), "--key", str(tls.key)]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if data is not None:  # the body on stdin: no argument length limit
        cmd += ["-X", "POST", "--data-binary", "@-"]
    return [*cmd, url]


def curl(member: Member, path: str, *, data: str | None = None, tls: ClientTLS | None = None,
         headers: dict[str, str] | None = None, base: str | None = None, max_time: float = 20.0,
         stream: bool = False) -> HTTPReply:
    """One request to ``member`` (its client URL unless ``base``); ``stream``: read until max_time."""
    url = (base or member.client_url) + path
    argv = curl_argv(url, tls=tls or member.client_tls(), data=data, headers=headers, max_time=max_time)
    res = subprocess.run(argv, input=data, capture_output=True, text=True, timeout=max_time + 10, check=False)
    body, _, code = res.stdout.rpartition("\n")
    if res.returncode not in (0, 28) or (res.returncode == 28 and not stream):  # 28: --max-time reached
        raise RuntimeError(f"curl {url} failed ({res.returncode}): {res.stderr.strip()}")
    return HTTPReply(int(code or 0), body)


def post(member: Member, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
         **kw: Any) -> HTTPReply:
    """POST a JSON body to a gateway path, with an auth token in Authorization if given."""
    headers = {"Authorization": token} if token else None
    return curl(member, path, data=json.dumps(body or {}), headers=headers, **kw)
