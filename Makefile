# The two commands README.md opens with. Each installs what it needs, then builds.
.PHONY: up test deps build lint

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --bin rafter

# The main job. Until `rafter up` lands (the CLI issue), this checks the demo
# manifests locally with the client-side dry run and prints the normalised objects.
up: build
	./target/debug/rafter apply --dry-run=client -f examples/demo.yaml -o yaml

# The node agent's tests run real containers: a private containerd under
# $(CONTAINERD_DIR), set up (packages, config, images) by scripts/containerd-setup.sh.
CONTAINERD_DIR ?= /tmp/rafter-containerd

test: deps
	scripts/containerd-setup.sh $(CONTAINERD_DIR)
	cargo build --workspace --all-targets
	RAFTER_CONTAINERD_SOCK=$(CONTAINERD_DIR)/containerd.sock cargo test --workspace --no-fail-fast

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
