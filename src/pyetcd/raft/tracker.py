"""The membership as the core applies it, with each member's Progress and this term's votes."""

from __future__ import annotations

from collections.abc import Iterator

from . import quorum
from .progress import Inflights, Progress
from .types import ConfState


class ProgressTracker:
    def __init__(self, max_inflight: int, max_inflight_bytes: int) -> None:
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def restore(self, cs: ConfState, next_index: int) -> None:
        """Rebuild the membership from a ConfState (boot or snapshot); progress starts over."""
        self.voters = set(cs.voters)
        self.learners = set(cs.learners) - self.voters
        self.progress = {}
        for i in self.voters:
            self.init_progress(i, 0, next_index, learner=False)
        for i in self.learners:
            self.init_progress(i, 0, next_index, learner=True)

    def init_progress(self, id_: int, match: int, next_: int, learner: bool) -> Progress:
        pr = Progress(match, next_, Inflights(self.max_inflight, self.max_inflight_bytes), learner)
        self.progress[id_] = pr
        return pr

    def is_voter(self, id_: int) -> bool:
        return id_ in self.voters

    def peers(self, self_id: int) -> Iterator[tuple[int, Progress]]:
        """Every member but ourselves, in id order so runs are reproducible."""
        for i in sorted(self.progress):
            if i != self_id:
                yield i, self.progress[i]

    def committed(self) -> int:
        return quorum.committed_index(self.voters, {i: self.progress[i].match for i in self.voters})

    def quorum_active(self, self_id: int) -> bool:
        active = {i for i, pr in self.progress.items() if pr.recent_active or i == self_id}
        return quorum.has_quorum(self.voters, active)

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, id_: int, granted: bool) -> None:
        self.votes.setdefault(id_, granted)

    def vote_result(self) -> quorum.VoteResult:
        return quorum.vote_result(self.voters, self.votes)

    def has_quorum(self, ids: set[int]) -> bool:
        return quorum.has_quorum(self.voters, ids)
