"""pytest fixtures ``etcd`` and ``etcd_cluster``, registered through the ``pytest11`` entry point.

Installing pyetcd is enough; no conftest.py is needed::

    def test_put(etcd):                       # etcd: pyetcd.embed.Etcd, empty keyspace
        client = aetcd.Client(host=..., port=...)  # from etcd.endpoints[0]

One member (three for ``etcd_cluster``) is started per test session, the first time a test asks
for it, and wiped before every test (``Etcd.reset``), so a test costs milliseconds rather than
a process start. Settings, in pytest.ini / pyproject's ``[tool.pytest.ini_options]``:

* ``pyetcd_tls = true``: mutual TLS (``etcd.ca``, ``etcd.cert``, ``etcd.key``);
* ``pyetcd_args = --quota-backend-bytes=...``: extra etcd flags for every member.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from pyetcd.embed import Etcd


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("pyetcd_tls", "the etcd/etcd_cluster fixtures use mutual TLS", type="bool", default=False)
    parser.addini("pyetcd_args", "extra etcd flags for the etcd/etcd_cluster fixtures' members", default="")


def _session_etcd(config: pytest.Config, tmp: pytest.TempPathFactory, members: int) -> Iterator[Etcd]:
    etcd = Etcd(members=members, tls=bool(config.getini("pyetcd_tls")),
                data_dir=tmp.mktemp(f"pyetcd-{members}"), extra_args=shlex.split(str(config.getini("pyetcd_args"))))
    with etcd:
        yield etcd


@pytest.fixture(scope="session")
def _pyetcd_member(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    yield from _session_etcd(pytestconfig, tmp_path_factory, 1)


@pytest.fixture(scope="session")
def _pyetcd_cluster(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    yield from _session_etcd(pytestconfig, tmp_path_factory, 3)


@pytest.fixture
def etcd(_pyetcd_member: Etcd) -> Etcd:
    """A running single-member pyetcd with an empty keyspace (shared by the session, wiped per test)."""
    _pyetcd_member.reset()
    return _pyetcd_member


@pytest.fixture
def etcd_cluster(_pyetcd_cluster: Etcd) -> Etcd:
    """A running three-member pyetcd cluster with an empty keyspace (shared by the session, wiped per test)."""
    _pyetcd_cluster.reset()
    return _pyetcd_cluster
