"""design.md's package table, enforced: imports point down the table, never up.

Each package may import only packages listed before it (and the shared top-level modules).
raft/ and mvcc/ never import grpc; the rpc layer never touches LMDB.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "pyetcd"
# design.md's order, top to bottom: a package may depend only on those before it.
LAYERS = ["api", "tools", "raft", "storage", "mvcc", "watch", "lease", "auth", "server", "transport", "rpc",
          "gateway", "cli"]
SHARED = {"errors", "failpoints", "__init__"}  # pyetcd.errors, .failpoints, pyetcd (versions): usable everywhere
FORBIDDEN_THIRD_PARTY = {"raft": {"grpc", "lmdb", "google"}, "mvcc": {"grpc"}, "rpc": {"lmdb"}}


def _imports(rel: Path, source: str) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(source)
    package = ".".join(("pyetcd", *rel.parent.parts))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def _violations(rel: Path, source: str) -> list[str]:
    found: list[str] = []
    layer = rel.parts[0] if len(rel.parts) > 1 else None
    if layer is None or layer == "api":
        return found
    assert layer in LAYERS, f"package {layer!r} is not in design.md's table: add it to LAYERS"
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | SHARED
    for name in _imports(rel, source):
        parts = name.split(".")
        if parts[0] == "pyetcd":
            target = parts[1] if len(parts) > 1 else "__init__"
            if target not in allowed:
                found.append(f"{rel} imports {name} ({layer} may not depend on {target})")
        elif parts[0] in FORBIDDEN_THIRD_PARTY.get(layer, set()):
            found.append(f"{rel} imports {name} ({layer} must not use {parts[0]})")
    return found


def test_imports_point_down_the_design_table() -> None:
    found = [v for path in sorted(PKG.rglob("*.py"))
             for v in _violations(path.relative_to(PKG), path.read_text())]
    assert found == []


def test_the_check_catches_an_upward_import() -> None:
    found = _violations(Path("raft/probe.py"), "from pyetcd.server import server\nimport grpc\n")
    assert set(found) == {"raft/probe.py imports pyetcd.server (raft may not depend on server)",
                          "raft/probe.py imports grpc (raft must not use grpc)"}
