# vaxrecon: one-command set-up. Needs only Python 3.11, make and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: install demo test lint bench sample clean serve dashboard

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Four nights on the sample: night 0 as generated, then snapshots in which officers fixed part of the
# errors, so the dashboard's deadline view has a curve. Exit 3 is expected: the sample carries two
# unreadable files on purpose.
DEMO_NIGHTS := 2022-05-25 2022-05-26 2022-05-27 2022-05-28
demo: $(STAMP)
	rm -rf out/demo
	$(BIN)/vaxrecon synth --from data/sample --out out/demo --nights 4
	@k=0; for night in $(DEMO_NIGHTS); do \
	  exports=$$( [ $$k -eq 0 ] && echo data/sample/exports || echo out/demo/nights/$$k/exports ); \
	  echo "== night $$k ($$night): $$exports"; \
	  $(BIN)/vaxrecon run --registry data/sample/registry.parquet --exports $$exports --out out/demo --run-date $$night; \
	  rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 3 ] || exit $$rc; k=$$((k+1)); done
	@echo ""
	@echo "Corrected records : out/demo/corrected/<PP>.parquet"
	@echo "Error reports     : out/demo/reports/<PP>/bao_cao_<PP>.xlsx (and one CSV per list)"
	@echo "Review queues     : out/demo/review/<PP>.xlsx  (answer, then: .venv/bin/vaxrecon review apply FILE --by NAME)"
	@echo "Validation pages  : out/demo/validation/index.html"
	@echo "Quarantined files : out/demo/quarantine/ (each with a .reason.txt)"
	@echo "Run summary       : out/demo/run.json; run history and decisions: out/demo/state.sqlite"
	@echo "Dashboard         : .venv/bin/vaxrecon dashboard --state sqlite:///$(CURDIR)/out/demo/state.sqlite"

# A local Prefect server (UI at http://127.0.0.1:4200) and the nightly deployment of flows/prefect.yaml,
# served from this terminal until Ctrl+C. Runs go to the folders named in flows/nightly.yaml.
PREFECT_PORT ?= 4200
serve: $(STAMP)
	@$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) > .prefect-server.log 2>&1 & \
	  server=$$!; trap "kill $$server 2>/dev/null" EXIT INT TERM; \
	  for i in $$(seq 1 120); do \
	    $(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(PREFECT_PORT)/api/health')" 2>/dev/null && break; \
	    kill -0 $$server 2>/dev/null || { cat .prefect-server.log; exit 1; }; sleep 0.5; done; \
	  echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)  (server log: .prefect-server.log)"; \
	  PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/vaxrecon serve

dashboard: $(STAMP)
	$(BIN)/vaxrecon dashboard --state sqlite:///$(CURDIR)/out/demo/state.sqlite

lint: $(STAMP)
	$(BIN)/ruff check pipeline flows tests bench
	$(BIN)/mypy

# The dashboard's browser test needs Debian's chromium: installed here where missing (as root, with apt).
test: lint
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.normalize
	$(BIN)/python -m bench.accuracy
	$(BIN)/python -m bench.startup

sample: $(STAMP)
	rm -rf data/sample && $(BIN)/vaxrecon synth --out data/sample --people 8000 --doses 4000 --provinces 01,79,66 --seed 7

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .hypothesis
