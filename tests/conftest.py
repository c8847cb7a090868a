"""Fixtures shared by every test that runs real processes: certificates and members.

Members are function-scoped and always stopped by pid in the fixture's teardown, even when the
test fails. A missing /usr/bin/etcd fails the test (``make deps`` installs it); pyetcd targets
are skipped, with the reason, only while the pyetcd server module has not landed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import SERVER_KINDS, CertPaths, Member, pyetcd_unavailable_reason, start_cluster, start_member


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """One CA and server/peer/client certificates for the whole session (SANs localhost, 127.0.0.1)."""
    return CertPaths.create(tmp_path_factory.mktemp("certs"))


MemberFactory = Callable[..., Member]


@pytest.fixture
def member_factory(tmp_path: Path, certs: CertPaths) -> Iterator[MemberFactory]:
    """start(kind, name=..., extra_args=..., ...) -> Member; every member is stopped at teardown.

    kind is "etcd" (real etcd) or "pyetcd"; a pyetcd start skips the test while pyetcd is absent.
    """
    started: list[Member] = []

    def start(kind: str, *, name: str | None = None, **kw: object) -> Member:
        if kind == "pyetcd" and (reason := pyetcd_unavailable_reason()):
            pytest.skip(reason)
        name = name or f"{kind}{len(started)}"
        m = start_member(kind, tmp_path / name, kw.pop("certs", certs), name=name, **kw)  # type: ignore[arg-type]
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


@pytest.fixture
def real_etcd(member_factory: MemberFactory) -> Member:
    """A fresh single-member real etcd 3.4 with mutual TLS."""
    return member_factory("etcd")


@pytest.fixture
def pyetcd_member(member_factory: MemberFactory) -> Member:
    """A fresh single-member pyetcd with mutual TLS."""
    return member_factory("pyetcd")


@pytest.fixture(params=SERVER_KINDS)
def any_member(request: pytest.FixtureRequest, member_factory: MemberFactory) -> Member:
    """The test runs twice: on real etcd (proving the test) and on pyetcd (the thing under test)."""
    return member_factory(request.param)


ClusterFactory = Callable[..., list[Member]]


@pytest.fixture
def cluster_factory(tmp_path: Path, certs: CertPaths) -> Iterator[ClusterFactory]:
    """start(kind, size=3, extra_args=...) -> members (peer and client mutual TLS, 127.0.0.1);
    every member is stopped by its pid at teardown."""
    started: list[Member] = []

    def start(kind: str, *, size: int = 3, **kw: object) -> list[Member]:
        if kind == "pyetcd" and (reason := pyetcd_unavailable_reason()):
            pytest.skip(reason)
        members = start_cluster(kind, tmp_path / f"{kind}-{len(started)}", certs, size=size, **kw)  # type: ignore[arg-type]
        started.extend(members)
        return members

    yield start
    for m in started:
        m.stop()
