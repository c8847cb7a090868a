"""EtcdServer: the node loop, propose-and-wait, reads, apply of committed entries."""
