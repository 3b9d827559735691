# The two commands README.md opens with. Each installs what it needs, then builds.
.PHONY: up test deps bench-deps build lint check

deps:
	@scripts/install-deps.sh

# What the benchmarks run beside Rafter (etcd) and profile with (perf, jeprof).
bench-deps:
	@scripts/install-deps.sh bench

build: deps
	cargo build --bin rafter

# A private containerd under $(CONTAINERD_DIR) (packages, config, CNI, images), set up
# by scripts/containerd-setup.sh: the agents of `make up` and the node agent's tests run
# real containers in it.
CONTAINERD_DIR ?= /tmp/rafter-containerd

# The main job: a local cluster of three masters and two agents with the demo Deployment,
# in the foreground until Ctrl-C. Its data, logs and client config go to $(UP_DIR).
# Each agent gets a containerd of its own ($(CONTAINERD_DIR)-node-N, bridge rafter-nN),
# whose pod network takes the node's pod CIDR (10.244.N.0/24), as separate hosts would.
# If containerd cannot be set up here, the agents fall back to host processes and say so.
UP_DIR ?= $(CURDIR)/.rafter

up: build
	@sockets=""; ok=1; \
	for n in 1 2; do \
		if RAFTER_CNI_TEMPLATE=1 RAFTER_CNI_BRIDGE=rafter-n$$n scripts/containerd-setup.sh \
			$(CONTAINERD_DIR)-node-$$n >$(CONTAINERD_DIR)-node-$$n.setup.log 2>&1; then \
			sockets="$$sockets$${sockets:+,}$(CONTAINERD_DIR)-node-$$n/containerd.sock"; \
		else \
			ok=0; echo "containerd could not be set up (see $(CONTAINERD_DIR)-node-$$n.setup.log)"; \
		fi; \
	done; \
	if [ $$ok = 1 ]; then export RAFTER_CONTAINERD_SOCK=$$sockets; fi; \
	./target/debug/rafter up --demo --agents 2 --dir $(UP_DIR)

# The chaos tests' disk faults need the failpoints compiled into the rafter binary they
# run (raft-store's storage/failpoints.rs); both commands build with them, so the test run
# does not rebuild the binary without them. scripts/test.sh runs `cargo test` over the
# workspace and runs a failed test again on its own (twice at most), naming it as flaky.
test: deps
	scripts/containerd-setup.sh $(CONTAINERD_DIR)
	cargo build --workspace --all-targets --features rafter/failpoints
	RAFTER_CONTAINERD_SOCK=$(CONTAINERD_DIR)/containerd.sock scripts/test.sh --features rafter/failpoints

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The fast loop, no root and no containerd: formatting, lints, every crate's unit tests,
# and the integration tests that need neither (rafter-proto's; api-gateway's, which run
# gateways and clients on loopback over an in-memory store). `deps` installs nothing
# once the build packages are there.
check: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace --lib
	cargo test -p rafter-proto -p api-gateway -p rafter-client
