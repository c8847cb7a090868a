"""design.md's package table, enforced: imports point down the table, each package imports only
what its "may import" column allows, and no module imports itself back through others.

raft/ and mvcc/ never import grpc; the rpc layer never touches LMDB; nothing imports in a circle
(an import under ``if TYPE_CHECKING`` counts: a cycle of types is still a tangle). The tests keep a
rule of their own: code they share lives in tests/support/, never in a test module another imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "pyetcd"
TESTS = Path(__file__).resolve().parent
# design.md's order, top to bottom: a package may depend only on those before it ...
# embed/ (a member as a child process, the pytest plugin) sits on top; at run time it loads only tools/ (test_embed).
LAYERS = ["api", "tools", "raft", "storage", "mvcc", "watch", "lease", "auth", "server", "rpc",
          "h2", "gateway", "transport", "cli", "embed"]
# ... and, of those, only on what its "may import" column names (api and the shared modules aside).
MAY_IMPORT: dict[str, set[str]] = {
    "tools": set(),
    "raft": set(),
    "storage": {"raft", "tools"},  # the durable raft log implements the core's Storage
    "mvcc": {"storage"},
    "watch": {"mvcc", "storage"},
    "lease": {"storage", "mvcc"},
    "auth": {"storage"},
    "server": {"raft", "storage", "mvcc", "watch", "lease", "auth", "tools"},
    # the server's ports (Protocols) and config, never its internals' state; served and called natively
    # the way the client port is (h2/'s HTTP/2, gateway/'s TLS pump), the peer service through rpc/'s wrapping
    "transport": {"raft", "server", "rpc", "h2", "gateway"},
    "rpc": {"server", "auth", "watch", "mvcc", "raft"},
    "h2": {"rpc", "server"},  # serves rpc/'s servicers over its own HTTP/2 in grpcio's place
    "gateway": {"rpc", "server", "auth", "watch"},
    "cli": set(LAYERS),
    "embed": {"tools"},
}
SHARED = {"errors", "wire", "varint", "__init__", "tls", "failpoints"}  # errors, wire (bounded decoding), tls, ...: usable everywhere
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
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if _is_module(f"{module}.{a.name}")]
            names.update(subs)  # `from pkg import module` depends on the module, not on pkg's __init__
            if len(subs) < len(node.names):
                names.add(module)
    return names


def _is_module(name: str) -> bool:
    path = PKG.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def _violations(rel: Path, source: str) -> list[str]:
    found: list[str] = []
    layer = rel.parts[0] if len(rel.parts) > 1 else None
    if layer is None or layer == "api":
        return found
    assert layer in LAYERS, f"package {layer!r} is not in design.md's table: add it to LAYERS"
    below = set(LAYERS[: LAYERS.index(layer) + 1])
    allowed = (below & (MAY_IMPORT[layer] | {layer, "api"})) | SHARED
    for name in sorted(_imports(rel, source)):
        parts = name.split(".")
        if parts[0] == "pyetcd":
            target = parts[1] if len(parts) > 1 else "__init__"
            if target not in allowed and (PKG / target).is_dir() | (PKG / f"{target}.py").exists():
                why = "up the table" if target not in below else "not in its may-import column"
                found.append(f"{rel} imports {'.'.join(parts[:2])} ({layer} may not depend on {target}: {why})")
        elif parts[0] in FORBIDDEN_THIRD_PARTY.get(layer, set()):
            found.append(f"{rel} imports {name} ({layer} must not use {parts[0]})")
    return sorted(set(found))


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py") if "api" not in p.relative_to(PKG).parts[:1]}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = {n for n in _imports(path.relative_to(PKG), path.read_text()) if n in modules and n != name}
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_imports_follow_the_design_table() -> None:
    found = [v for path in sorted(PKG.rglob("*.py"))
             for v in _violations(path.relative_to(PKG), path.read_text())]
    assert found == []


def test_no_import_cycles() -> None:
    assert find_cycles(_graph()) == []


def test_the_check_catches_an_upward_import() -> None:
    found = _violations(Path("raft/probe.py"), "from pyetcd.server import server\nimport grpc\n")
    assert set(found) == {"raft/probe.py imports pyetcd.server (raft may not depend on server: up the table)",
                          "raft/probe.py imports grpc (raft must not use grpc)"}


def test_the_check_catches_an_import_outside_the_column() -> None:
    found = _violations(Path("mvcc/probe.py"), "from pyetcd.raft import Entry\n")
    assert found == ["mvcc/probe.py imports pyetcd.raft (mvcc may not depend on raft: not in its may-import column)"]


def test_the_cycle_finder_finds_a_ring() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _test_module_imports(source: str) -> list[str]:
    """The test modules (``test_*``) that ``source`` imports."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return [n for n in names if n.rpartition(".")[2].startswith("test_")]


def test_no_test_module_imports_another() -> None:
    found = [f"{path.relative_to(TESTS)} imports {name}" for path in sorted(TESTS.rglob("test_*.py"))
             for name in _test_module_imports(path.read_text())]
    assert found == []


def test_the_check_catches_a_helper_taken_from_another_test_module() -> None:
    assert _test_module_imports("from test_lease_etcdctl import Background\nimport support\n") == ["test_lease_etcdctl"]
