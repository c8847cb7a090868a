"""Generate the gRPC/protobuf stubs in ``pyetcd/api`` from ``proto/*.proto``.

protoc writes absolute imports (``import kv_pb2``); we rewrite them to package-relative
ones so the stubs live inside ``pyetcd.api`` without touching ``sys.path``.
``--check`` regenerates into a temporary folder and fails when the committed stubs differ.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
API_DIR = ROOT / "src" / "pyetcd" / "api"
_ABS_IMPORT = re.compile(r"^import (\w+_pb2(?:_grpc)?) as ", re.M)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every proto file into out_dir; return the files written."""
    from grpc_tools import protoc

    protos = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
            f"--pyi_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = _ABS_IMPORT.sub(r"from . import \1 as ", path.read_text())
        text = re.sub(r"^import (\w+_pb2) as ", r"from . import \1 as ", text, flags=re.M)
        path.write_text(text)
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')
    written.append(init)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    args = parser.parse_args()
    if not args.check:
        for path in generate(API_DIR):
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [p.name for p in fresh if not (API_DIR / p.name).exists()
                 or not filecmp.cmp(p, API_DIR / p.name, shallow=False)]
        extra = sorted({p.name for p in API_DIR.glob("*_pb2*.py*")} - {p.name for p in fresh})
    if stale or extra:
        print(f"stale stubs in src/pyetcd/api: {stale + extra}; run `make proto` and commit", file=sys.stderr)
        return 1
    print("stubs are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
