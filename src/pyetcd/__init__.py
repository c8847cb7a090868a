"""pyetcd: an etcd v3 server written in Python."""

__version__ = "0.1.0"
# The etcd version we serve: Maintenance.Status and /version report it, and clients decide
# features from it. At least 3.5.13: kube-apiserver (its etcd feature checker) sends watch
# progress requests (RequestWatchProgress, used by the consistent-reads-from-cache path)
# only to etcd >= 3.5.13 (or >= 3.4.31), the releases whose progress notifications are safe.
# pyetcd answers progress requests as those releases do, so it says so here, in one place.
ETCD_API_VERSION = "3.5.13"
