# room-chat: thin wrappers over cargo and npm. `make run` and `make test` are all a new machine
# needs (after the tools in README's "Requirements").

CARGO ?= cargo
# Where `make generate` writes a readable copy of the generated protocol.
GENERATED_COPY ?= target/generated

.PHONY: run test check generate docs bench fmt clippy spec-check client-types node-test node-deps tool-deps help

help:
	@echo "make run       - run the service on http://127.0.0.1:8000 (in-memory layers unless REDIS_URL is set)"
	@echo "make test      - the official AsyncAPI parser, then every test: generator, protocol, layers"
	@echo "                 (real redis-server), end to end,"
	@echo "                 then the Node tests: generated client, chat page in headless Chromium, Modelina"
	@echo "                 (TypeScript, Java, Python), chanx's and the AsyncAPI CLI's clients"
	@echo "make tool-deps - the pinned Python tools of those tests (target/tools/venv), javac, Jackson jars"
	@echo "make check     - formatting, clippy -D warnings, docs, the official AsyncAPI parser, and"
	@echo "                 tsc --strict on the generated clients"
	@echo "make generate  - write the generated Rust to $(GENERATED_COPY) and refresh the checked-in"
	@echo "                 output (codegen/tests/output/src) and snapshots"
	@echo "make docs      - API docs of every crate (target/doc)"
	@echo "make bench     - layer benchmarks, then the service vs a reference server on every layer (target/bench/report.md; needs redis-server)"

run:
	$(CARGO) run --release -p room-chat -- $(ARGS)

test: node-deps tool-deps spec-check
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(MAKE) node-test

# The generated client against the live service binary (alone, and two processes on a Redis of
# the test's own), the chat page in headless Chromium
# (/usr/bin/chromium, or $$CHROMIUM), Modelina's models of the spec (TypeScript under
# tsc --strict, Java with Jackson, plain Python), and other people's client generators (chanx,
# the AsyncAPI CLI) on the served document against the live binary.
node-test: node-deps tool-deps
	$(CARGO) build -p room-chat
	ROOM_CHAT_TOOLS_VENV=$(TOOLS_VENV) node --test clients/client.test.mjs clients/fleet.test.mjs \
	  clients/browser.test.mjs clients/modelina.test.mjs clients/generators.test.mjs

check: node-deps fmt clippy spec-check docs client-types

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The official AsyncAPI parser on the spec and on every generator fixture; part of `test` too.
spec-check: node-deps
	node scripts/validate-spec.mjs asyncapi.yaml codegen/tests/fixtures/*.yaml

docs:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# tsc --strict over the generated client of asyncapi.yaml and of every codegen fixture, and over
# clients/typecheck.ts, which uses the room chat client as an application would.
client-types: node-deps
	$(CARGO) run -q -p asyncapi-codegen -- --spec asyncapi.yaml --target client --out target/client/room_chat
	for spec in codegen/tests/fixtures/*.yaml; do \
	  $(CARGO) run -q -p asyncapi-codegen -- --spec $$spec --target client --out target/client/$$(basename $$spec .yaml) || exit 1; \
	done
	node_modules/.bin/tsc -p clients/tsconfig.json

# The checked-in output (codegen/tests/output/src/*.rs, compiled by the workspace) and the docs
# and client snapshots are rewritten from the generator; review them with `git diff`.
generate:
	$(CARGO) run -q -p asyncapi-codegen -- --spec asyncapi.yaml --target rust --out $(GENERATED_COPY)
	INSTA_UPDATE=always $(CARGO) test -q -p asyncapi-codegen --test snapshots

# The service next to a reference broadcast server, on every layer (see bench/src/bin/bench-matrix.rs):
# builds release binaries, starts its own redis-server, writes target/bench/report.md (~10 min on
# 2 cores). Thousands of sockets per process need a higher open-file limit (root may raise it).
BENCH_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# BENCH_LAYERS=no skips the layer micro-benchmarks: `make bench BENCH_LAYERS=no BENCH_ARGS="--only cpu"`
# runs just the CPU-per-delivery cells (~1-2 min).
BENCH_LAYERS ?= yes

bench:
	$(if $(filter yes,$(BENCH_LAYERS)),$(CARGO) bench -p room-chat-layers --bench layers)
	$(CARGO) build --release -p room-chat -p room-chat-bench
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	$(BENCH_TARGET_DIR)/release/bench-matrix \
		--service-bin $(BENCH_TARGET_DIR)/release/room-chat \
		--reference-bin $(BENCH_TARGET_DIR)/release/reference-server \
		--out target/bench $(BENCH_ARGS)

# Python tools for clients/generators.test.mjs, pinned, in a virtualenv made once and reused:
# chanx's client generator (the `core` extra brings pyhumps, which `cli` alone lacks), and the
# packages the AsyncAPI CLI's Python client imports (its requirements.txt). Java's side
# (javac, Debian's Jackson jars) is checked here so a missing piece fails before any test runs.
TOOLS_VENV ?= target/tools/venv
TOOLS_PIP = 'chanx[cli,client,core]==2.13.0' 'websocket-client==1.8.0' 'certifi==2025.1.31'

tool-deps: node-deps $(TOOLS_VENV)/.installed
	@command -v javac >/dev/null || { echo "javac is missing (apt-get install default-jdk-headless)"; exit 1; }
	@for jar in databind core annotations; do \
	  [ -e /usr/share/java/jackson-$$jar.jar ] || [ -n "$$JACKSON_JARS" ] || \
	    { echo "/usr/share/java/jackson-$$jar.jar is missing (apt-get install libjackson2-databind-java)"; exit 1; }; \
	done

$(TOOLS_VENV)/.installed: Makefile
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check $(TOOLS_PIP)
	touch $@

# The official AsyncAPI parser, TypeScript, Modelina, ws and playwright-core come from npm
# (playwright-core drives the system's Chromium; it never downloads a browser).
node-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
