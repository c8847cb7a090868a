"""pyetcd: an etcd v3 server written in Python."""

__version__ = "0.1.0"
# The etcd API version we serve (what `etcdctl version` and Status report).
ETCD_API_VERSION = "3.5.0"
