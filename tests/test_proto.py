"""The API's wire format: our protos against etcd's own, and the committed stubs against proto/.

etcd's .proto files come from Debian's golang-etcd-server-dev (etcd 3.4); they are compiled
here, at test time, with their gogoproto and google.api annotations stubbed out, and every
service, method, message, enum and field is compared with ours: name, number, type, label.
Our protos may only add (etcd 3.5's additions), never change or drop.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[1]
ETCD_SRC = Path("/usr/share/gocode/src/go.etcd.io/etcd")
ETCD_PROTOS = {
    "etcd/etcdserver/etcdserverpb/rpc.proto": "rpc.proto",
    "etcd/mvcc/mvccpb/kv.proto": "kv.proto",
    "etcd/auth/authpb/auth.proto": "auth.proto",
    "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto": "v3lock.proto",
    "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto": "v3election.proto",
}
# Stand-ins for the annotation protos etcd imports; options using them are stripped below.
_OPTION = re.compile(r"\[\(gogoproto\.[^\]]*\]|option \(gogoproto\.[^;]*;", re.S)
_HTTP = re.compile(r"option \(google\.api\.http\) = \{.*?\n\s*\};", re.S)


def _descriptor_set(include: Path, files: list[str], out: Path) -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    args = ["protoc", f"-I{include}", f"--descriptor_set_out={out}", "--include_imports", *files]
    assert protoc.main(args) == 0, f"protoc failed on {files}"
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _etcd_tree(tmp: Path) -> Path:
    """Copy etcd's protos under their import paths, with annotations stripped."""
    root = tmp / "etcd-protos"
    for rel in ETCD_PROTOS:
        src = ETCD_SRC / rel.removeprefix("etcd/")
        text = src.read_text()
        text = text.replace('import "gogoproto/gogo.proto";', "")
        text = text.replace('import "google/api/annotations.proto";', "")
        text = _HTTP.sub("", _OPTION.sub("", text))
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    return root


def _index(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, object]:
    """Flatten services, methods, messages, enums and fields to comparable records."""
    out: dict[str, object] = {}

    def walk_msg(prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{m.name}"
        out[name] = "message"
        for f in m.field:
            oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else ""
            out[f"{name}.{f.name}"] = (f.number, f.type, f.label, f.type_name, oneof)
        for e in m.enum_type:
            walk_enum(name, e)
        for n in m.nested_type:
            walk_msg(name, n)

    def walk_enum(prefix: str, e: descriptor_pb2.EnumDescriptorProto) -> None:
        for v in e.value:
            out[f"{prefix}.{e.name}.{v.name}"] = v.number

    for fd in fds.file:
        for m in fd.message_type:
            walk_msg(fd.package, m)
        for e in fd.enum_type:
            walk_enum(fd.package, e)
        for s in fd.service:
            for meth in s.method:
                out[f"{fd.package}.{s.name}/{meth.name}"] = (
                    meth.input_type, meth.output_type, meth.client_streaming, meth.server_streaming)
    return out


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], dict[str, object]]:
    if not ETCD_SRC.exists():
        pytest.fail("etcd's sources are missing: run `make deps` (installs golang-etcd-server-dev)")
    tmp = tmp_path_factory.mktemp("protos")
    theirs = _descriptor_set(_etcd_tree(tmp), list(ETCD_PROTOS), tmp / "etcd.pb")
    ours = _descriptor_set(ROOT / "proto", sorted(set(ETCD_PROTOS.values())), tmp / "ours.pb")
    return _index(theirs), _index(ours)


def test_every_etcd_api_element_exists_identically_in_ours(indexes: tuple[dict[str, object], ...]) -> None:
    theirs, ours = indexes
    assert len(theirs) > 300  # services, methods, messages, fields and enum values of etcd's API
    missing = sorted(k for k in theirs if k not in ours)
    different = sorted(k for k in theirs if k in ours and ours[k] != theirs[k])
    assert not missing, f"etcd API elements missing from proto/: {missing[:20]}"
    assert not different, f"etcd API elements that differ: {[(k, theirs[k], ours[k]) for k in different[:10]]}"


def test_ours_adds_etcd_35_api(indexes: tuple[dict[str, object], ...]) -> None:
    theirs, ours = indexes
    added = sorted(k for k in ours if k not in theirs)
    for name in ("etcdserverpb.Maintenance/Downgrade", "etcdserverpb.Auth/AuthStatus",
                 "etcdserverpb.MemberListRequest.linearizable", "etcdserverpb.AuthUserAddRequest.hashedPassword"):
        assert name in added


def test_committed_stubs_match_protos() -> None:
    result = subprocess.run([sys.executable, "-m", "pyetcd.tools.genproto", "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
