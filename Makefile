# The everyday commands. Each one installs the system packages it needs first (Debian/Ubuntu, as root or
# through sudo), so they work on a fresh machine.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT_BUILD_FLAGS ?=

.PHONY: deps browser-deps run test test-heavy build lint format docs bench-storage bench-objects bench-resident bench-compare bench-cost bench-load bench-rebalance bench-replication chaos-failover clean

## Install the system libraries the build links against (and what the C interop test builds with), when missing.
deps:
	@if ! pkg-config --exists rocksdb libprotobuf-c 2>/dev/null || ! command -v protoc-c >/dev/null || ! command -v cc >/dev/null || ! command -v etcd >/dev/null || ! command -v ip >/dev/null; then \
		echo "installing librocksdb-dev, protobuf-c, a C compiler, etcd (the tests start real etcd members) and iproute2 (test hosts in network namespaces) from Debian"; \
		$(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y \
			librocksdb-dev pkg-config gcc protobuf-c-compiler libprotobuf-c-dev etcd-server iproute2; \
	fi

## The main job: `durable dev`, a local gateway and storage node serving the example app on
## http://127.0.0.1:8787 (RPC on 7070), data kept in .durable/. Extra flags: make run ARGS="--nodes 3".
run: deps
	swift run durable dev $(ARGS)

BROWSER_VENV := .build-browser/venv

## Headless Chromium and its driver (Debian) and Selenium (PyPI, in a virtual environment) for the browser test.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then \
		echo "installing chromium, chromium-driver and python3-venv from Debian"; \
		$(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver python3-venv; \
	fi
	@if ! $(BROWSER_VENV)/bin/python -c 'import selenium' 2>/dev/null; then \
		echo "installing selenium from PyPI into $(BROWSER_VENV)"; \
		python3 -m venv $(BROWSER_VENV) && $(BROWSER_VENV)/bin/pip install -q selenium; \
	fi

## Every test, in three passes (Tests/README.md): the main pass (in-process tests in parallel, the tests that start
## processes one at a time beside them); the heavy pass (tests that load the whole machine: clusters of processes,
## floods, fuzzing a live server, the load generator, the chat page in headless Chromium, whose screenshot lands in
## test-output/), one at a time and alone; then the build of a user's app made by `durable init` against this
## checkout, its test and its worker (the first time in a checkout it compiles every dependency again: several
## minutes; SKIP_APP_BUILD=1 leaves it out). Each pass prints its wall time.
test: deps browser-deps
	@echo "== main pass: in-process tests in parallel, process tests one at a time"
	@start=$$(date +%s); swift test $(SWIFT_BUILD_FLAGS) --skip HeavyTests; status=$$?; \
		echo "== main pass: $$(( $$(date +%s) - start )) s"; exit $$status
	@echo "== heavy pass: whole-machine tests, one at a time"
	@start=$$(date +%s); DURABLE_HEAVY_TESTS=1 DURABLE_BROWSER_PYTHON=$(CURDIR)/$(BROWSER_VENV)/bin/python \
		swift test $(SWIFT_BUILD_FLAGS) --skip-build --filter HeavyTests.WholeMachineTests; status=$$?; \
		echo "== heavy pass: $$(( $$(date +%s) - start )) s"; exit $$status
	@if [ "$(SKIP_APP_BUILD)" != 1 ]; then \
		echo "== scaffolded app: durable init, build, test, serve"; start=$$(date +%s); \
		DURABLE_SCAFFOLD_BUILD=1 swift test $(SWIFT_BUILD_FLAGS) --skip-build --filter HeavyTests.ScaffoldBuildTests; \
		status=$$?; echo "== scaffolded app: $$(( $$(date +%s) - start )) s"; exit $$status; fi

## Only the heavy pass (after a build).
test-heavy: deps browser-deps
	DURABLE_HEAVY_TESTS=1 DURABLE_BROWSER_PYTHON=$(CURDIR)/$(BROWSER_VENV)/bin/python \
		swift test $(SWIFT_BUILD_FLAGS) --filter HeavyTests.WholeMachineTests

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

## Check formatting the way CI does.
lint:
	swift format lint --strict --recursive --parallel Package.swift Sources Tests benchmarks

## The libraries whose DocC catalogues (Sources/<Module>/Documentation.docc) `make docs` builds.
DOCS_TARGETS := DurableObjects DurableObjectsTesting DurableClient DurableStorage DurableApp DurableExamples

## Build the documentation of every library as one combined archive (links between modules resolve), with every
## DocC warning (an unresolved symbol link, in a doc comment or an article) treated as an error. The archive lands
## in .build/plugins/Swift-DocC/outputs/swift-durable-objects.doccarchive.
docs: deps
	swift package --disable-sandbox generate-documentation $(addprefix --target ,$(DOCS_TARGETS)) \
		--enable-experimental-combined-documentation --warnings-as-errors

## Rewrite the sources in the house format.
format:
	swift format format --in-place --recursive --parallel Package.swift Sources Tests benchmarks

## Group commit against one fsync per write, with 1, 8 and 64 writers.
bench-storage: deps
	swift run -c release storage-benchmark

clean:
	rm -rf .build

## Durable increments in process (one hot object, 1,000 objects) beside the raw synced-write rate.
bench-objects: deps
	swift run -c release objects-benchmark

## What resident objects cost: 1,000,000 objects made resident in process, then the resident memory per object and
## the idle runtime's CPU over 10 s (about 1 minute, 4 GiB of memory).
bench-resident: deps
	swift run -c release objects-benchmark --resident 1000000 --seconds 10

## The load generator against a running gateway or node (see benchmarks/README.md), e.g.
## make bench-load ARGS="--rpc 127.0.0.1:7070 --workload hot --callers 64".
bench-load: deps
	swift build -c release --product durable-load
	.build/release/durable-load $(ARGS)

## A gateway and three nodes with 20,000 objects; a fourth node joins and `durable rebalance` runs under load. Prints
## the refusal time per moved slot by slot size (p50/p99/max) and checks the shares (about 3 minutes).
bench-rebalance: deps
	DURABLE_REBALANCE_BENCHMARK=1 swift test $(SWIFT_BUILD_FLAGS) --filter HeavyTests.RebalanceBenchmark

## Replication's cost: increments through a gateway to one node, then to a node with a standby (sync) on this disk,
## then in memory, in one run, on the release build; prints each and their ratios (about 3 minutes).
bench-replication: deps
	swift build -c release --product durable
	swift build -c release --product durable-load
	DURABLE_REPLICATION_BENCHMARK=1 DURABLE_REPLICATION_BIN=$(CURDIR)/.build/release \
		swift test $(SWIFT_BUILD_FLAGS) --filter HeavyTests.ReplicationBenchmark

## A long fault run: FAULTS faults (default 100) on a primary and its standby under load (a 3-member etcd, a gateway,
## two nodes; as root, each on a network namespace of its own): the primary killed with its data deleted, paused past
## its lease, cut off from etcd, cut off from its standby, the gateway cut off from it, the standby killed, the etcd
## leader killed, in turn (the three partitions need the namespaces). Checks that no acknowledged increment is lost,
## that a replaced primary acknowledges nothing, that its WebSockets close with 1012, and that the registers'
## histories are linearizable.
FAULTS ?= 100
chaos-failover: deps
	DURABLE_HEAVY_TESTS=1 DURABLE_FAILOVER_FAULTS=$(FAULTS) swift test $(SWIFT_BUILD_FLAGS) --filter FailoverTests

## durable (a gateway and a node) beside Redis (appendfsync always) and PostgreSQL (synchronous_commit on), all on
## loopback (Redis and PostgreSQL one at a time): increments over 1,000 keys, one hot key and a no-op call at 1, 16 and
## 64 callers, 5 s each (about 4 minutes). Installs redis and postgresql from Debian when missing; prints a Markdown
## table and writes it to benchmarks/results/latest.md (raw figures in latest.json). Durable runs a second time with
## tracing on at 1% sampling to an OTLP sink on loopback (durable-traced), and a second table gives the ratio. Options:
## make bench-compare ARGS="--systems durable,durable-traced --callers 64 --seconds 10 --rounds 5 --baseline-build-dir
## DIR" (DIR: a release build of the commit before tracing, run untraced; --rounds: the median of alternating rounds, as
## throughput here swings by ±15 % from one minute to the next). ARGS="--systems durable,durable-tls --rounds 10"
## measures TLS on every RPC port against plaintext (certificates made with openssl).
bench-compare: deps
	swift build -c release --product durable
	swift build -c release --product durable-load
	python3 benchmarks/compare.py $(ARGS)

## CPU microseconds and heap allocations per call in each process a call crosses (durable-load, the gateway, the
## node), from a release build: benchmarks/cost-per-call/cost.py. Options: make bench-cost ARGS="--workloads increment"
## (and "--traced" or "--tls").
bench-cost: deps
	swift build -c release --product durable
	swift build -c release --product durable-load
	python3 benchmarks/cost-per-call/cost.py $(ARGS)
