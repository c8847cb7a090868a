"""The robustness suite: recorded client histories under injected faults, checked as etcd's own are.

Test tooling, not server code, so it lives beside ``tests/support`` and is importable the same
way (``tests/`` on sys.path). It mirrors etcd's ``tests/robustness``: ``traffic`` records what
concurrent clients and watchers saw, ``faults`` crashes/pauses members, ``linearizability`` is
a Wing & Gong / porcupine checker, ``model`` the etcd model it checks against, ``watchcheck``
etcd's watch guarantees, ``run`` one seeded run end to end and ``__main__`` the make targets.
"""
