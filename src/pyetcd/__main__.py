"""``python -m pyetcd``: the same server as the ``pyetcd`` command (``python -m pyetcd.cli.util`` is pyetcdutl)."""

from pyetcd.cli.launch import main

if __name__ == "__main__":
    raise SystemExit(main())
