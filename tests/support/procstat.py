"""What /proc says about a member process: resident memory and CPU time (Linux only)."""

from __future__ import annotations

import os

_TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of pid in KiB (0 if /proc does not say)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time pid has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    """The pids of pid's child processes (a pyetcd member's: its HTTP front), [] if /proc says none."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def socket_owner(local_port: int, remote_port: int, pids: dict[int, str]) -> str | None:
    """Which of ``pids`` (pid -> label) holds the loopback TCP socket 127.0.0.1:local_port ->
    127.0.0.1:remote_port (None if none does): the kernel's socket table gives the inode, the
    processes' fd links name it. How a proxy tells which member dialled it."""
    want = f":{local_port:04X} "
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f:
                    fields = line.split()
                    if (len(fields) > 9 and (fields[1] + " ").endswith(want)
                            and fields[2].endswith(f":{remote_port:04X}")):
                        inode = fields[9]
                        break
        except OSError:
            continue
        if inode:
            break
    if not inode or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid, label in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return label
            except OSError:
                continue
    return None
