"""``--config-file``: etcd's YAML configuration file, read into the same values as the flags.

The keys are etcd's (embed/config.go): the flag names (``name``, ``data-dir``,
``listen-client-urls``, ``initial-cluster``, ``quota-backend-bytes``, ``auto-compaction-retention``
...), with TLS settings in two blocks, ``client-transport-security`` and
``peer-transport-security``, each holding ``cert-file``, ``key-file``, ``client-cert-auth``,
``trusted-ca-file`` and ``auto-tls``. As in etcd, a configuration file replaces the command line
and the ``ETCD_*`` variables entirely: everything not in the file takes its default.

Every value goes through the flag's own parser, so a bad value in the file is refused with the
same message as on the command line, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# YAML block -> {key inside the block: flag name}
_SECURITY_BLOCKS = {
    "client-transport-security": {"cert-file": "cert-file", "key-file": "key-file",
                                  "client-cert-auth": "client-cert-auth", "trusted-ca-file": "trusted-ca-file",
                                  "auto-tls": "auto-tls", "crl-file": "client-crl-file"},
    "peer-transport-security": {"cert-file": "peer-cert-file", "key-file": "peer-key-file",
                                "client-cert-auth": "peer-client-cert-auth",
                                "trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls",
                                "allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname"},
}
# Durations are Go time.Duration in etcd's file: a bare number is nanoseconds.
_DURATIONS = {"experimental-watch-progress-notify-interval"}
# etcd 3.4's deprecated singular spelling of log-outputs
_ALIASES = {"log-output": "log-outputs"}


class ConfigFileError(Exception):
    """The file cannot be read or is not a YAML mapping; the message says what to fix."""


def _as_flag_text(key: str, value: Any) -> str:
    """A YAML value as the text the flag's parser takes (the flag table owns validation)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if key in _DURATIONS and isinstance(value, int):
        return f"{value}ns"
    return str(value)


def read_config_file(path: str) -> tuple[dict[str, str], list[str]]:
    """The file's settings as ``{flag name: flag text}``, and the keys pyetcd does not know."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigFileError(f"cannot read --config-file {path}: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigFileError(f"--config-file {path} is not valid YAML: {e}") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigFileError(f"--config-file {path} must be a YAML mapping of etcd's keys (name: ..., data-dir: ...)")
    settings: dict[str, str] = {}
    unknown: list[str] = []
    for raw_key, value in doc.items():
        key = _ALIASES.get(str(raw_key), str(raw_key))
        block = _SECURITY_BLOCKS.get(key)
        if block is None:
            settings[key] = _as_flag_text(key, value)
            continue
        if not isinstance(value, dict):
            if value is not None:
                raise ConfigFileError(f"--config-file {path}: {key} must be a mapping (cert-file: ..., key-file: ...)")
            continue
        for inner, inner_value in value.items():
            flag = block.get(str(inner))
            if flag is None:
                unknown.append(f"{key}.{inner}")
            else:
                settings[flag] = _as_flag_text(flag, inner_value)
    return settings, unknown
