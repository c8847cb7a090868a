"""Whether the node loop waits for more work after a busy turn: chosen by measuring, not by rule.

A turn costs about the same whether it carries one entry or fifty (the raft log's write and the
store's commit, each with its fsync, a hop to the apply thread and back, the GIL changing hands
around each fsync), so fewer, larger turns save CPU. Waiting a few milliseconds after a busy
turn makes them larger. Measured on one member with etcd's benchmark tool (puts, 2 cores), a
fixed 6 ms wait raised puts/s by half at 100 clients and cut them by almost half at 16: with few
clients each of them waits out the window, with many the server was spending its time on turns.
Nothing seen from inside the server (batch sizes, the event loop's CPU) told the two apart
reliably, so this tries both: while turns are busy it alternates between waiting and not, for a
short trial each, keeps the setting that applied more entries per second, and tests again after
a while, as load changes.

On a cluster the trial cannot tell: members run their trials independently, and the rate each
one measures is set by the whole cluster, so it swings by a quarter between trials whatever the
member does. There the loop waits after a busy turn when the wait is small next to what a
request already spends in this member: by Little's law, its proposals in flight over their
arrival rate. Measured with etcd's benchmark tool on three members sharing 2 cores (same-run
A/B, puts): at 100 clients a 4 ms wait after every busy turn cut the cluster's CPU per put by a
fifth and raised puts/s by 4-12 % in each of 5 rounds, while at 16 clients (a request then
spends about 10 ms in a member) it cost a third of the puts/s; this rule waits in the first case
and not in the second. A single member keeps the trial: there a request at 100 clients spends
about 18 ms in the member, and the rule would not wait where the trial finds that it pays.

A lone client is never affected: its turns touch one or two entries (its put, and on a cluster
the previous one's apply), never a busy turn's four.

The other end of the same trade is ``LoneClient``: when nothing could join a turn, the hop to the
apply thread and back buys nothing, and the turn runs on the event loop itself; and the store's
transaction stays open from turn to turn, so that its commit (an fsync) leaves the path of every
answer (server/node_loop.py). Measured with etcd's benchmark tool, put at one client, same-run
ratios to etcd (medians of 3-5 rounds, ``--variant nohold:PYETCD_STORE_HOLD_MS=0``): one member
0.63-0.65 committing every turn, 0.82-0.86 holding; three members, the client at the leader,
0.45-0.51 and 0.51-0.54 (there the peer transport's gRPC messages cost most of a put).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BUSY_TURN_ENTRIES = 4  # entries a turn persisted or applied (each counted once) to count as busy
TRIAL_SECONDS = 0.2  # each setting is measured this long...
HOLD_SECONDS = 2.0  # ...and the better one kept this long before measuring again
IDLE_SECONDS = 1.0  # a pause this long means load changed: measure afresh
MARGIN = 1.05  # waiting must apply this much more per second to be kept (it costs latency)
INLINE_TURN_ENTRIES = 2  # a lone client's turn: its put, and on a cluster the previous one's apply
SHARED_QUIET_SECONDS = 0.5  # this long without two proposals in flight before turns run inline
# A cluster member waits this long after a busy turn (at most the window; 3, 4 and 6 ms were
# tried), when it is at most QUEUE_SHARE of a request's time in the member (0.3 was tried),
# with the arrival rate of the member's proposals measured over RATE_SECONDS.
CLUSTER_WAIT = 0.004
QUEUE_SHARE = 0.2
RATE_SECONDS = 0.25


class GroupCommit:
    """Call ``after_turn`` once per turn; wait the seconds it returns before the next one."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.waiting = False  # the setting in use
        self._phase = "trial-off"  # trial-off -> trial-on -> hold -> trial-off ...
        self._started = clock()
        self._entries = 0
        self._rate_off = 0.0
        self._last_turn = self._started
        self._rate_mark = (self._started, 0)  # (when, proposals arrived by then): see _time_in_member_now
        self._time_in_member = 0.0

    def after_turn(self, entries: int, members: int = 1, in_flight: int = 0, arrived: int = 0) -> float:
        """``entries``: the turn's (persisted or applied, each counted once); ``members``: the
        cluster's; ``in_flight`` and ``arrived``: this member's client proposals awaiting their
        result, and registered since it started (a running count)."""
        if not self.window:
            return 0.0
        now = self.clock()
        if members > 1:
            wait = min(self.window, CLUSTER_WAIT)
            queued_long = self._time_in_member_now(now, in_flight, arrived) * QUEUE_SHARE >= wait
            return wait if queued_long and entries >= BUSY_TURN_ENTRIES else 0.0
        if now - self._last_turn > IDLE_SECONDS:
            self._begin("trial-off", now)
        self._last_turn = now
        self._entries += entries
        if now - self._started >= (HOLD_SECONDS if self._phase == "hold" else TRIAL_SECONDS):
            self._next_phase(now)
        return self.window if self.waiting and entries >= BUSY_TURN_ENTRIES else 0.0

    def _time_in_member_now(self, now: float, in_flight: int, arrived: int) -> float:
        """What a request spends in this member, in seconds: in flight over arrival rate,
        re-estimated every RATE_SECONDS (0 until there is an estimate)."""
        since = now - self._rate_mark[0]
        if since > IDLE_SECONDS:  # the count spans a pause: start over
            self._rate_mark, self._time_in_member = (now, arrived), 0.0
        elif since >= RATE_SECONDS:
            rate = (arrived - self._rate_mark[1]) / since
            self._time_in_member = in_flight / rate if rate > 0 else 0.0
            self._rate_mark = (now, arrived)
        return self._time_in_member

    def _next_phase(self, now: float) -> None:
        rate = self._entries / (now - self._started)
        if self._phase == "trial-off":
            self._rate_off = rate
            self._begin("trial-on", now)
        elif self._phase == "trial-on":
            self._begin("hold", now)
            self.waiting = rate > self._rate_off * MARGIN
        else:
            self._begin("trial-off", now)

    def _begin(self, phase: str, now: float) -> None:
        self._phase = phase
        self._started = now
        self._entries = 0
        if phase != "hold":
            self.waiting = phase == "trial-on"


class LoneClient:
    """Whether a turn may run on the event loop instead of the apply thread: only where its peer
    messages need not wait for the loop (``inline``), only a small turn, and only after half a
    second in which this member never had two proposals in flight.

    The apply thread exists so that requests keep arriving, and join the next turn, while a turn
    waits for its fsyncs. A lone client has nothing to overlap with; for it the hop there and back
    (two thread wake-ups) is about 150 us of a 1 ms put: measured with etcd's benchmark tool on one
    member, a lone client's puts/s rose by 15 % running turns inline. The guard matters: run
    inline whenever a turn is small and the loop, blocked by the turn, lets no request in to
    make the next one larger, so every turn stays small; puts at 100 clients fell by two thirds
    that way, and with only "at most one proposal in flight right now" as the guard, 16 clients
    still lost up to 19 %. With the quiet period, 8 to 100 clients measured the same as before.
    ``PYETCD_INLINE_TURNS=0`` turns it off (for A/B runs in bench/kv.py)."""

    def __init__(self, enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._reads_waited = 0
        self._read_until = 0.0
        self.clock = clock
        self._shared_until = 0.0

    def inline(self, entries: int, in_flight: int, members: int, direct_sends: bool) -> bool:
        """``entries``: the turn's (persisted plus committed); ``in_flight``: proposals awaiting
        results; ``members``: the cluster's; ``direct_sends``: whether the peer transport puts a
        turn's messages on the wire from the turn itself (ports.PeerSender.sends_directly).

        A cluster's turns run inline only with direct sends. Otherwise an inline turn holds its
        messages (a leader's appends, which go out before its own log is durable) until its fsync
        ends and the event loop is free to send them: on three members with grpc.aio's peer
        streams a lone client's puts/s fell by 13 % with turns inline. With the native streams
        the appends leave at once, and a lone client's put skips the hop to the apply thread and
        back in three turns (the leader's two, a follower's one): puts/s at the leader rose from
        0.56 to 0.71 of etcd's, at a follower from 0.49 to 0.58, and 100 clients lost nothing.
        A follower serving no client counts no proposals in flight, so its turns run inline
        under any load at the leader: the appends that arrive meanwhile wait in the HTTP/2
        thread, and join the next turn as they would have joined it on the apply thread."""
        now = self.clock()
        if in_flight > 1:
            self._shared_until = now + SHARED_QUIET_SECONDS
        return (self.enabled and (members == 1 or direct_sends) and entries <= INLINE_TURN_ENTRIES
                and now >= self._shared_until)

    def hold(self, reads_waited: int) -> bool:
        """Whether a turn may leave the store's transaction open for the next (storage/deferred.py),
        on any member count (call after ``inline``): after the same quiet period, and after as
        long a period in which no read had to commit it first (``reads_waited``: a running count
        of those). Under load, or with reads coming in, holding buys nothing: every read would
        commit the transaction, on the event loop or waiting for the apply thread to."""
        now = self.clock()
        if reads_waited != self._reads_waited:
            self._reads_waited = reads_waited
            self._read_until = now + SHARED_QUIET_SECONDS
        return now >= self._shared_until and now >= self._read_until
