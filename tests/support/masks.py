"""Masking what legitimately differs between real etcd's and pyetcd's etcdctl output: member and
cluster ids, ports, timings, table padding — so the rest can be compared character for character."""

from __future__ import annotations

import re

_MASKS = [
    (re.compile(r"https://127\.0\.0\.1:\d+"), "https://127.0.0.1:PORT"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:PORT"),
    (re.compile(r"\b[0-9a-f]{12,16}\b"), "<ID>"),
    (re.compile(r'"(cluster_id|member_id|raft_term)":\d+'), r'"\1":<N>'),
    (re.compile(r"took = [0-9.]+[µnm]?s"), "took = <T>"),
    (re.compile(r"\bm-(etcd|pyet)\b"), "m-NAME"),  # the two members' names (same length: same tables)
]
_TABLE_PADDING = [(re.compile(r"-{2,}"), "--"), (re.compile(r" {2,}"), " ")]


def mask(text: str, *extra: tuple[re.Pattern[str], str]) -> str:
    """Hide what legitimately differs (and ``extra`` patterns); tables lose their column padding."""
    for pattern, repl in [*_MASKS, *extra, *_TABLE_PADDING]:
        text = pattern.sub(repl, text)
    return text
