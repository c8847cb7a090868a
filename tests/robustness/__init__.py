"""The robustness suite: recorded client histories under injected faults, checked as etcd's own are.

Test tooling, not server code, so it lives beside ``tests/support`` and is importable the same
way (``tests/`` on sys.path); etcd keeps its suite in ``tests/robustness`` too. Modules:

- ``traffic``: concurrent clients (gets, prefix ranges, puts, deletes, CAS txns, lease grant/revoke,
  puts with leases), a compactor every 100-200 ms, watchers from past revisions; all recorded;
- ``leases``: short leases (fault ``lease-pause``) kept alive over LeaseKeepAlive, and the wait for
  their expiry after the traffic;
- ``history``: the recording (invoke/return times, unknown outcomes), JSON, and ``patch``;
- ``settle``: unknown compactions, revokes and deletes bounded (or dropped) by what came after them;
- ``expiry``: the server's own lease revokes as operations, each in a window clients' answers give;
- ``faults``: seeded faults (kill -9, SIGSTOP/SIGCONT, crashes at pyetcd failpoints, lease expiry
  during a pause; on clusters also leader kills/pauses, partitions, blackholes, delay, drop, member
  replacement);
- ``linearizability``: Wing & Gong / porcupine's search with memoization, any ``Model``;
- ``model``: etcd as a sequential object (revisions, txns, delete ranges, leases, compaction);
- ``watchcheck``: etcd's watch guarantees;  ``evaluate``: every verdict on one run;
- ``run``: one seeded run end to end;  ``selftest``: deliberate bugs that must be caught;
- ``__main__``: ``make robustness`` and ``make robustness-selftest``;
- ``cluster``: the members of a run, each behind a ``support.proxy.FaultProxy`` it advertises as its
  peer URL; partitions, member replacement, who leads.

Clusters (``--members 3``/``5``): clients, watchers and the compactor are spread over the members;
``History.crashed`` bounds unknown outcomes only while a single member is the whole cluster (a write
in flight at a crash of one member of several may commit through the others later), so clusters
record no crashes and rely on ``settle``; a check that gives up within ``--check-timeout`` makes the
run inconclusive.
"""
