"""The robustness suite: recorded client histories under injected faults, checked as etcd's own are.

Test tooling, not server code, so it lives beside ``tests/support`` and is importable the same
way (``tests/`` on sys.path); etcd keeps its suite in ``tests/robustness`` too. Modules:

- ``traffic``: concurrent clients (gets, prefix ranges, puts, deletes, CAS txns, lease grant/revoke,
  puts with leases), a compactor every 100-200 ms, watchers from past revisions; all recorded;
- ``history``: the recording (invoke/return times, unknown outcomes), JSON, and ``patch``;
- ``faults``: seeded faults (kill -9, SIGSTOP/SIGCONT, crashes at pyetcd failpoints);
- ``linearizability``: Wing & Gong / porcupine's search with memoization, any ``Model``;
- ``model``: etcd as a sequential object (revisions, txns, delete ranges, leases, compaction);
- ``watchcheck``: etcd's watch guarantees;  ``evaluate``: every verdict on one run;
- ``run``: one seeded run end to end;  ``selftest``: deliberate bugs that must be caught;
- ``__main__``: ``make robustness`` and ``make robustness-selftest``.

Growing it to 3 and 5 members (once clusters land): ``run.run_once`` starts the cluster with
``support.member.start_cluster``, puts a ``support.proxy.FaultProxy`` in front of each peer URL
(members advertise the proxy's port), spreads ``traffic.Client``s over the members' endpoints and
passes every member to ``_hashkv``; ``faults`` gains kinds (partition/blackhole/delay/drop via the
proxies, leader kill, member replacement) beside ``kill``/``pause``. ``History.crashed`` bounds
unknown outcomes only while a single member is the whole cluster: do not record crashes of one
member of several there (a write in flight may commit on the others and apply later).
"""
