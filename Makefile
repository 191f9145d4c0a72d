# The two commands: `make run` (whole stack, foreground, Ctrl-C stops it) and `make test`.
# Both install what is missing first (scripts/setup-toolchain.sh, idempotent, cached outside the repo).
.PHONY: run test wipe-data setup build-worker bench bench-assign bench-edge bench-ingest bench-stats fmt clippy

run:
	scripts/run.sh

test:
	scripts/test.sh

# Stops and deletes the Postgres cluster `make run` keeps between runs (its path: `make run` prints it).
wipe-data:
	scripts/wipe-data.sh

setup:
	scripts/setup-toolchain.sh

build-worker: setup
	scripts/build-worker.sh

bench: bench-assign bench-edge bench-ingest bench-stats

bench-assign:
	cargo bench -p litmus-shared --bench assign

bench-edge: setup
	scripts/bench-edge.sh

# HTTP ingest (loadgen) vs a raw COPY of the same rows (scripts/bench-ingest.sh).
bench-ingest: setup
	scripts/bench-ingest.sh

fmt:
	cargo fmt --all

clippy:
	cargo clippy --all-targets -- -D warnings

# Results endpoint vs a bare count(*) over 10 million events (scripts/bench-stats.sh).
bench-stats: setup
	scripts/bench-stats.sh
