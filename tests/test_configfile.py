"""--config-file: etcd's YAML keys give the same configuration as the same flags; other flags and
ETCD_* variables are then ignored (etcd's rule); a member starts from a file alone, on real etcd
and on pyetcd alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pyetcd.cli.flags import FlagError, resolve, to_config
from support import ETCD_BIN, CertPaths, Member, etcdctl, free_port, pyetcd_command

FLAGS = [
    "--name", "infra1", "--data-dir", "/var/lib/etcd/infra1",
    "--listen-client-urls", "https://127.0.0.1:2379,https://10.0.0.1:2379",
    "--advertise-client-urls", "https://10.0.0.1:2379",
    "--listen-peer-urls", "https://10.0.0.1:2380", "--initial-advertise-peer-urls", "https://10.0.0.1:2380",
    "--initial-cluster", "infra1=https://10.0.0.1:2380", "--initial-cluster-state", "new",
    "--initial-cluster-token", "tok-1",
    "--cert-file", "/c/server.pem", "--key-file", "/c/server-key.pem", "--trusted-ca-file", "/c/ca.pem",
    "--client-cert-auth",
    "--peer-cert-file", "/c/peer.pem", "--peer-key-file", "/c/peer-key.pem", "--peer-trusted-ca-file", "/c/ca.pem",
    "--peer-client-cert-auth",
    "--max-txn-ops", "256", "--max-request-bytes", "2097152", "--quota-backend-bytes", "4294967296",
    "--heartbeat-interval", "200", "--election-timeout", "2000", "--snapshot-count", "50000",
    "--logger", "zap", "--log-level", "warn", "--log-outputs", "stdout,/var/log/etcd.log",
    "--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
    "--experimental-watch-progress-notify-interval", "5s", "--bcrypt-cost", "12", "--auth-token-ttl", "600",
]

# The same settings in etcd's file format (etcd.conf.yml.sample's keys and shapes).
YAML = """
name: infra1
data-dir: /var/lib/etcd/infra1
listen-client-urls: https://127.0.0.1:2379,https://10.0.0.1:2379
advertise-client-urls: https://10.0.0.1:2379
listen-peer-urls: https://10.0.0.1:2380
initial-advertise-peer-urls: https://10.0.0.1:2380
initial-cluster: infra1=https://10.0.0.1:2380
initial-cluster-state: new
initial-cluster-token: tok-1
client-transport-security:
  cert-file: /c/server.pem
  key-file: /c/server-key.pem
  client-cert-auth: true
  trusted-ca-file: /c/ca.pem
  auto-tls: false
peer-transport-security:
  cert-file: /c/peer.pem
  key-file: /c/peer-key.pem
  client-cert-auth: true
  trusted-ca-file: /c/ca.pem
max-txn-ops: 256
max-request-bytes: 2097152
quota-backend-bytes: 4294967296
heartbeat-interval: 200
election-timeout: 2000
snapshot-count: 50000
logger: zap
log-level: warn
log-outputs: [stdout, /var/log/etcd.log]
auto-compaction-mode: revision
auto-compaction-retention: "1000"
experimental-watch-progress-notify-interval: 5000000000
bcrypt-cost: 12
auth-token-ttl: 600
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "etcd.conf.yml"
    path.write_text(text)
    return str(path)


def test_yaml_gives_the_same_configuration_as_the_flags(tmp_path: Path) -> None:
    from_flags = resolve(FLAGS, environ={})
    from_file = resolve(["--config-file", _write(tmp_path, YAML)], environ={})
    assert from_file.unknown_keys == []
    assert to_config(from_file.values) == to_config(from_flags.values)
    for key in ("logger", "log_outputs", "log_level"):
        assert from_file.values[key] == from_flags.values[key]


def test_a_config_file_replaces_flags_and_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: from-file\n")
    env = {"ETCD_NAME": "from-env", "ETCD_MAX_TXN_OPS": "7"}
    r = resolve(["--config-file", path, "--name", "from-flag", "--max-txn-ops", "9"], environ=env)
    assert r.values["name"] == "from-file"
    assert r.values["max_txn_ops"] == 128  # etcd's default: neither the flag nor the variable counts
    r = resolve([], environ={"ETCD_CONFIG_FILE": path, "ETCD_NAME": "from-env"})
    assert r.values["name"] == "from-file" and r.config_file == path


def test_bad_values_and_unknown_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(FlagError, match=r"max-txn-ops in .*etcd.conf.yml"):
        resolve(["--config-file", _write(tmp_path, "max-txn-ops: many\n")], environ={})
    with pytest.raises(FlagError, match="must be a YAML mapping"):
        resolve(["--config-file", _write(tmp_path, "- a\n- b\n")], environ={})
    with pytest.raises(FlagError, match="cannot read --config-file"):
        resolve(["--config-file", str(tmp_path / "missing.yml")], environ={})
    r = resolve(["--config-file", _write(tmp_path, "name: x\nno-such-key: 1\nclient-transport-security:\n  bogus: 1\n")],
                environ={})
    assert sorted(r.unknown_keys) == ["client-transport-security.bogus", "no-such-key"]


def test_periodic_retention_in_hours_from_a_bare_number(tmp_path: Path) -> None:
    r = resolve(["--config-file", _write(tmp_path, "auto-compaction-retention: 1\n")], environ={})
    assert to_config(r.values).auto_compaction_retention == "1"
    with pytest.raises(FlagError, match="auto-compaction"):
        to_config(resolve(["--auto-compaction-retention", "soon"], environ={}).values)


@dataclass(eq=False)
class FileMember(Member):
    """A member started with --config-file alone (plus a flag that must be ignored)."""

    config: Path = Path()

    def command(self) -> list[str]:
        binary = [ETCD_BIN] if self.kind == "etcd" else pyetcd_command()
        return [*binary, "--config-file", str(self.config), "--name", "ignored-because-of-the-file"]


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_a_member_starts_from_the_file_alone(kind: str, tmp_path: Path, certs: CertPaths) -> None:
    client, peer = free_port(), free_port()
    doc = {
        "name": "from-yaml", "data-dir": str(tmp_path / "data"),
        "listen-client-urls": f"https://127.0.0.1:{client}", "advertise-client-urls": f"https://127.0.0.1:{client}",
        "listen-peer-urls": f"https://127.0.0.1:{peer}", "initial-advertise-peer-urls": f"https://127.0.0.1:{peer}",
        "initial-cluster": f"from-yaml=https://127.0.0.1:{peer}", "initial-cluster-token": f"yaml-{kind}",
        "client-transport-security": {"cert-file": str(certs.server), "key-file": str(certs.server_key),
                                      "trusted-ca-file": str(certs.ca), "client-cert-auth": True},
        "peer-transport-security": {"cert-file": str(certs.peer), "key-file": str(certs.peer_key),
                                    "trusted-ca-file": str(certs.ca), "client-cert-auth": True},
        "logger": "zap", "log-level": "info",
    }
    config = tmp_path / "etcd.conf.yml"
    config.write_text(yaml.safe_dump(doc))
    m = FileMember(kind=kind, name="from-yaml", base_dir=tmp_path, client_port=client, peer_port=peer, certs=certs,
                   config=config)
    try:
        m.start()
        members = json.loads(etcdctl(m, "member", "list", "-w", "json").stdout)["members"]
        assert [(x["name"], x["clientURLs"], x["peerURLs"]) for x in members] == [
            ("from-yaml", [m.client_url], [m.peer_url])]
        etcdctl(m, "put", "k", "v")
        assert etcdctl(m, "get", "k", "--print-value-only").stdout.strip() == "v"
        assert "loaded server configuration" in m.log_tail(400)
    finally:
        m.stop()
