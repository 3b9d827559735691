# The two commands README.md opens with. Each installs what it needs, then builds.
.PHONY: up test deps build lint check

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --bin rafter

# A private containerd under $(CONTAINERD_DIR) (packages, config, CNI, images), set up
# by scripts/containerd-setup.sh: the agents of `make up` and the node agent's tests run
# real containers in it.
CONTAINERD_DIR ?= /tmp/rafter-containerd

# The main job: a local cluster of three masters and two agents with the demo Deployment,
# in the foreground until Ctrl-C. Its data, logs and client config go to $(UP_DIR).
# If containerd cannot be set up here, the agents fall back to host processes and say so.
UP_DIR ?= $(CURDIR)/.rafter

up: build
	@if scripts/containerd-setup.sh $(CONTAINERD_DIR) >$(CONTAINERD_DIR).setup.log 2>&1; then \
		export RAFTER_CONTAINERD_SOCK=$(CONTAINERD_DIR)/containerd.sock; \
	else \
		echo "containerd could not be set up (see $(CONTAINERD_DIR).setup.log)"; \
	fi; \
	./target/debug/rafter up --demo --dir $(UP_DIR)

test: deps
	scripts/containerd-setup.sh $(CONTAINERD_DIR)
	cargo build --workspace --all-targets
	RAFTER_CONTAINERD_SOCK=$(CONTAINERD_DIR)/containerd.sock cargo test --workspace --no-fail-fast

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
