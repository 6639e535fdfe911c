# Flowdesk: `make demo` sets up and runs the demo; `make test` sets up and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo manage test lint format docs docs-build bench-engine vendor-bpmn-js clean messages

# The demo's own secret (made once, kept in var/) and plain HTTP on 127.0.0.1; production sets
# DJANGO_SECRET_KEY itself and keeps HTTPS on (docs/operations/production.md).
DEMO_ENV = DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$(cat var/demo-secret-key)}" \
	FLOWDESK_HTTPS="$${FLOWDESK_HTTPS:-0}" FLOWDESK_SIMULATORS=1

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $@

# Static files as production serves them (WhiteNoise: hashed names, gzip), collected once per install.
staticfiles/staticfiles.json: $(STAMP) $(shell find static -type f)
	$(BIN)/python manage.py collectstatic --noinput -v0 --clear

install: $(STAMP) staticfiles/staticfiles.json

var/demo-secret-key:
	@mkdir -p var
	@$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

demo: install var/demo-secret-key
	$(DEMO_ENV) $(BIN)/python manage.py demo --serve

# The translation catalogues (locale/fr, locale/de): collect the strings of the code into the .po
# files (translate the new ones there), then compile the .mo files, which are committed.
MESSAGES_SKIP := --ignore=.venv --ignore=staticfiles --ignore=tests --ignore=bench --ignore=docs \
	--ignore=site --ignore=var --ignore=examples --ignore=scripts
messages: $(STAMP)
	$(BIN)/python manage.py makemessages -l fr -l de --add-location=file $(MESSAGES_SKIP)
	$(BIN)/python manage.py compilemessages -l fr -l de $(MESSAGES_SKIP)

# Any manage.py command against the demo, e.g. make manage CMD="simulator bonus down"
manage: install var/demo-secret-key
	$(DEMO_ENV) $(BIN)/python manage.py $(CMD)

# The Viewflow peer's own venv (bench/peer.py: the suite runs every bench, that one too), made once.
PEER_VENV := var/peer-venv
$(PEER_VENV)/.installed: bench/peer.py
	$(BIN)/python bench/peer.py --setup-venv --vfenv $(PEER_VENV)
	@touch $@

# The whole suite, in parallel (scripts/test.sh): FLOWDESK_TEST_WORKERS=N or ARGS="-n N" to change
# the number of workers (0: in this process), ARGS="tests/api -x" to run part of it.
test: install $(PEER_VENV)/.installed
	@bash scripts/test.sh $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The docs site (mkdocs.yml, docs/): served on 127.0.0.1:8001 while you edit, or built into site/.
docs: install
	$(BIN)/mkdocs serve

docs-build: install
	$(BIN)/mkdocs build --strict

bench-engine: install
	$(BIN)/python bench/engine.py

# bpmn-js for the admin's diagrams, from its npm package at a pinned version: the built files the
# admin serves and the licence, under static/vendor/bpmn-js/<version>/ (committed; no CDN). Run
# on an upgrade, with BPMN_JS_VERSION and processes/admin/bpmn.py's BPMN_JS_VERSION changed.
BPMN_JS_VERSION := 18.31.1
vendor-bpmn-js:
	rm -rf static/vendor/bpmn-js && mkdir -p static/vendor/bpmn-js/$(BPMN_JS_VERSION)
	cd $$(mktemp -d) && npm pack -q bpmn-js@$(BPMN_JS_VERSION) && tar xzf bpmn-js-*.tgz && \
	  out=$(CURDIR)/static/vendor/bpmn-js/$(BPMN_JS_VERSION) && cp package/LICENSE $$out/ && \
	  cp package/dist/bpmn-navigated-viewer.production.min.js package/dist/bpmn-modeler.production.min.js $$out/ && \
	  mkdir -p $$out/assets/bpmn-font/css $$out/assets/bpmn-font/font && \
	  cp package/dist/assets/diagram-js.css package/dist/assets/bpmn-js.css $$out/assets/ && \
	  cp package/dist/assets/bpmn-font/css/bpmn.css $$out/assets/bpmn-font/css/ && \
	  cp package/dist/assets/bpmn-font/font/* $$out/assets/bpmn-font/font/

clean:
	rm -rf $(VENV) var tests/artifacts .pytest_cache site
