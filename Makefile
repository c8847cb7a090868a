# pyetcd — see README.md. `make run` starts a single mutual-TLS member; `make test` runs every check.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 2379
PEER_PORT ?= 2380
DATA_DIR ?= default.etcd
PROTOS := $(wildcard proto/*.proto)

.PHONY: all install proto run cluster certs test lint typecheck unit soak cluster-soak packaging bench bench-snapshot deps e2e clean etcd3gw robustness robustness-selftest bench-memory

all: install

$(BIN)/python:
	$(PY) -m venv $(VENV)

# pip install is cheap once satisfied; the stamp keeps repeated runs quiet. It also compiles
# gateway/_pump.c, _tlsend.c and h2/_h2.c in place (setup.py), so an edit of the C source reinstalls.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard src/pyetcd/gateway/_*.[ch] src/pyetcd/h2/_*.[ch]) | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Real etcd, etcdctl and etcd's own sources (protos, e2e tests) from Debian: the tests compare against them.
# Go and bbolt's source build the `bbolt check` the snapshot tests run on every file we write.
deps:
	@command -v etcd >/dev/null && command -v etcdctl >/dev/null && test -d /usr/share/gocode/src/go.etcd.io/etcd && \
	  command -v go >/dev/null && test -d /usr/share/gocode/src/go.etcd.io/bbolt || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client \
	    golang-etcd-server-dev golang-go golang-github-coreos-bbolt-dev >/dev/null; }

proto: install
	$(BIN)/python -m pyetcd.tools.genproto

# SANs for `make run`, `make cluster` and docker-compose.yml's containers (infra1..3)
certs/ca.pem: | install
	$(BIN)/pyetcdutl certs --dir certs --hosts localhost,127.0.0.1,$(HOST),infra1,infra2,infra3

certs: certs/ca.pem

run: install certs/ca.pem
	@echo "pyetcd on https://$(HOST):$(PORT) (mutual TLS). Reach it with:"
	@echo "  ETCDCTL_API=3 etcdctl --endpoints=https://$(HOST):$(PORT) --cacert=certs/ca.pem --cert=certs/client.pem --key=certs/client-key.pem member list -w table"
	$(BIN)/pyetcd --name default --data-dir $(DATA_DIR) \
	  --listen-client-urls https://$(HOST):$(PORT) --advertise-client-urls https://$(HOST):$(PORT) \
	  --listen-peer-urls https://$(HOST):$(PEER_PORT) --initial-advertise-peer-urls https://$(HOST):$(PEER_PORT) \
	  --cert-file certs/server.pem --key-file certs/server-key.pem --trusted-ca-file certs/ca.pem --client-cert-auth \
	  --peer-cert-file certs/peer.pem --peer-key-file certs/peer-key.pem --peer-trusted-ca-file certs/ca.pem \
	  --peer-client-cert-auth

# The three members of docker-compose.yml as local processes (127.0.0.1: 2379/2380, 22379/22380, 32379/32380).
cluster: install certs/ca.pem
	$(BIN)/python -m pyetcd.cli.localcluster --certs certs --data cluster.data

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

unit: install deps
	$(BIN)/pytest -q

test: lint typecheck unit

soak: install
	$(BIN)/pytest -q -m soak tests

# long multi-member fault runs (5-member failover, ...): not part of make test
cluster-soak: install deps
	$(BIN)/pytest -q -m cluster_soak tests

# pip install . of the checkout into a fresh venv, then a user's test file with the etcd fixture
packaging: install deps
	$(BIN)/pytest -q -m packaging tests/test_packaging.py

# etcd3gw's own integration tests (its PyPI sdist) against pyetcd and real etcd over the JSON gateway
etcd3gw: install deps
	$(BIN)/pytest -q -s -m etcd3gw tests/test_etcd3gw.py

bench: install deps
	$(BIN)/python bench/kv.py

# Snapshot save/restore of a 1 GiB store beside real etcd (minutes, ~10 GiB of temporary disk).
bench-snapshot: install deps
	$(BIN)/python bench/snapshot.py

# Recorded client histories under injected faults, checked for linearizability and etcd's watch
# guarantees (tests/robustness). A failing run prints its seed and keeps its history and logs.
RUNS ?= 10
SEED ?= 1
KIND ?= pyetcd
MEMBERS ?= 1
FAULT ?= random
robustness: install deps
	PYTHONPATH=tests $(BIN)/python -m robustness run --runs $(RUNS) --seed $(SEED) --kind $(KIND) --members $(MEMBERS) --fault $(FAULT)

# The same suite against servers with bugs switched on deliberately: each must be caught.
robustness-selftest: install deps
	PYTHONPATH=tests $(BIN)/python -m robustness selftest --seed $(SEED) --members $(MEMBERS)

# A million keys in real etcd and pyetcd: memory and restart-to-healthy (fill takes minutes).
bench-memory: install deps
	$(BIN)/python bench/memory.py

# etcd's own e2e tests (TestCtlV3*) against pyetcd; the single-member KV subset by default.
E2E_RUN ?= ^TestCtlV3(Compact|CompactPhysical|Put|PutNoTLS|PutClientTLS|PutClientAutoTLS|PutPeerTLS|PutTimeout|PutClientTLSFlagByEnv|PutIgnoreValue|PutIgnoreLease|Get|GetNoTLS|GetClientTLS|GetClientAutoTLS|GetPeerTLS|GetTimeout|GetFormat|GetRev|GetKeysOnly|Del|DelNoTLS|DelClientTLS|DelPeerTLS|DelTimeout|GetRevokedCRL|MemberList|MemberListNoTLS|MemberListClientTLS|MemberListClientAutoTLS|MemberListPeerTLS|Version|DialWithHTTPScheme|TxnInteractiveSuccess|TxnInteractiveSuccessNoTLS|TxnInteractiveSuccessClientTLS|TxnInteractiveSuccessPeerTLS|TxnInteractiveFail|Snapshot|SnapshotCorrupt|SnapshotStatusBeforeRestore|AuthSnapshot|AuthSnapshotJWT)$$
e2e: install deps
	SERVER_CMD=$(CURDIR)/$(BIN)/pyetcd ../shared/tools/etcd-e2e clone -run '$(E2E_RUN)'

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
