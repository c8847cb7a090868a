"""The checkers shown able to fail: runs against pyetcd with a bug switched on deliberately.

Each bug is a ``bug.*`` failpoint compiled into the server (off unless PYETCD_FAILPOINTS names
it). A bug counts as caught when a run with it is judged failed by the checkers (not merely
when the run broke); each gets a few seeded attempts, as a real bug would in ``make robustness``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from robustness.faults import LEASE_FAULT
from robustness.run import RunConfig, run_once
from support.tls import CertPaths

ATTEMPTS = 3


@dataclass(frozen=True)
class Bug:
    failpoints: str
    fault: str
    what: str


BUGS: dict[str, Bug] = {
    "ack_before_commit": Bug("bug.ack_before_commit=on", "kill",
                             "a turn's clients are answered before its write transaction commits "
                             "(it commits with the next turn), then kill -9"),
    "drop_watch_event": Bug("bug.drop_watch_event=3%on", "none",
                            "now and then a revision's events are not sent to synced watchers"),
    "watch_resume_skip": Bug("bug.watch_resume_skip=on", "kill",
                             "a watcher started (or resumed) at a past revision misses that revision"),
    "stale_read": Bug("bug.stale_read=10%on", "none",
                      "now and then a linearizable range is served from the state 3 revisions back"),
    "lease_expiry_split": Bug("bug.lease_expiry_split=on", LEASE_FAULT,
                              "an expired lease's keys are deleted one by one, in revisions of their own, "
                              "before the lease is revoked"),
}


def _fault(bug: Bug, members: int) -> str:
    """The bug's fault; on a cluster a kill or a pause hits the leader (a lease-pause always does)."""
    return bug.fault if members == 1 or bug.fault in ("none", LEASE_FAULT) else f"{bug.fault}-leader"


def run_selftest(base: Path, certs: CertPaths, seed: int = 1, members: int = 1) -> int:
    """Every bug against ``members`` members (the bug switched on in each; a kill hits the leader of several)."""
    caught = 0
    for n, (name, bug) in enumerate(BUGS.items()):
        verdict = "NOT caught"
        for attempt in range(ATTEMPTS):
            r = run_once(RunConfig(seed=seed + 100 * n + attempt, base=base, certs=certs, kind="pyetcd",
                                   fault=_fault(bug, members),
                                   failpoints=bug.failpoints, members=members))
            print(f"  {name}: {r.line()}", flush=True)
            if r.verdict.failed:
                first = r.verdict.findings()[0]
                verdict = f"caught (attempt {attempt + 1}): {first[:300]}"
                shutil.rmtree(r.dir, ignore_errors=True)  # expected: nothing to look at
                break
            if r.error:
                print(f"    run error (not a catch): {r.error}", flush=True)
        caught += verdict.startswith("caught")
        print(f"bug {name} ({bug.what}): {verdict}", flush=True)
    print(f"robustness selftest: {caught} of {len(BUGS)} injected bugs caught", flush=True)
    return 0 if caught == len(BUGS) else 1
