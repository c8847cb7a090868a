"""Command-line entry points: ``pyetcd`` (the server) and ``pyetcdutl`` (offline tools)."""
