"""``pyetcdutl``: offline tools: certificates, snapshots."""

from __future__ import annotations

import sys

USAGE = """usage: pyetcdutl COMMAND [ARGS]

commands:
  certs     write a CA and server, peer and client certificates (see pyetcdutl certs --help)
  snapshot  restore a snapshot into a new member's data dir, or describe it (pyetcdutl snapshot --help)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "certs":
        from pyetcd.tools import certs

        return certs.main(rest)
    if command == "snapshot":
        from pyetcd.cli import snapshot

        return snapshot.main(rest)
    print(f"pyetcdutl: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
