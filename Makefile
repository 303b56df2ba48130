# room-chat: thin wrappers over cargo and npm. `make run` and `make test` are all a new machine
# needs (after the tools in README's "Requirements").

CARGO ?= cargo
# Where `make generate` writes a readable copy of the generated protocol.
GENERATED_COPY ?= target/generated

.PHONY: run test check generate docs bench fmt clippy spec-check node-deps help

help:
	@echo "make run       - run the service on http://127.0.0.1:8000 (in-memory layers unless REDIS_URL is set)"
	@echo "make test      - every test: generator, protocol, layers (real redis-server), end to end"
	@echo "make check     - formatting, clippy -D warnings, docs, and the official AsyncAPI parser"
	@echo "make generate  - write the generated Rust to $(GENERATED_COPY) and refresh the snapshots"
	@echo "make docs      - API docs of every crate (target/doc)"
	@echo "make bench     - layer benchmarks, then the service vs a reference server on every layer (target/bench/report.md; needs redis-server)"

run:
	$(CARGO) run --release -p room-chat -- $(ARGS)

test: node-deps
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

check: node-deps fmt clippy spec-check docs

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

spec-check:
	node scripts/validate-spec.mjs asyncapi.yaml

docs:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

generate:
	$(CARGO) run -q -p asyncapi-codegen -- --spec asyncapi.yaml --target rust --out $(GENERATED_COPY)
	INSTA_UPDATE=always $(CARGO) test -q -p asyncapi-codegen --test snapshots

# The service next to a reference broadcast server, on every layer (see bench/src/bin/bench-matrix.rs):
# builds release binaries, starts its own redis-server, writes target/bench/report.md (~10 min on
# 2 cores). Thousands of sockets per process need a higher open-file limit (root may raise it).
BENCH_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

bench:
	$(CARGO) bench -p room-chat-layers --bench layers
	$(CARGO) build --release -p room-chat -p room-chat-bench
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	$(BENCH_TARGET_DIR)/release/bench-matrix \
		--service-bin $(BENCH_TARGET_DIR)/release/room-chat \
		--reference-bin $(BENCH_TARGET_DIR)/release/reference-server \
		--out target/bench $(BENCH_ARGS)

# The official AsyncAPI parser (and later the client tooling) come from npm.
node-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
