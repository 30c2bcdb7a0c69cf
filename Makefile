# The two set-up commands of the README: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := espeak-ng sox chromium
DEMO := runs/demo
DEMO_N ?= 1500
DEMO_TTS_N ?= 8
DEMO_SAE_TOKENS ?= 409600
# TinyCosy's ops are small: one thread each is as fast, and immune to oversubscribed cores
# (two-thread generation ran 10x slower while another job shared the machine).
demo: export OMP_NUM_THREADS ?= 1

.PHONY: demo test install system-deps lint clean-demo

## system-deps: Debian packages (espeak-ng and its library, sox); as root directly, else say how
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	ldconfig -p | grep -q libespeak-ng || missing="$$missing libespeak-ng1"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing — run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	fi

## install: .venv with torch==2.13.0 (CPU wheel) when no torch is present, then the project
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: system-deps $(STAMP)

lint: install
	$(BIN)/ruff check .

## test: lint, then the whole suite; pytest's "no tests collected" (exit 5) fails loudly
test: install lint
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$rc

## demo: the pipeline on the embedded default; resumes when run again
demo: install
	$(BIN)/python -m interp.corpus build --out $(DEMO)/corpus --n $(DEMO_N)
	@test -f $(DEMO)/codec/codec.safetensors || $(BIN)/python -m interp.audio fit --corpus $(DEMO)/corpus --out $(DEMO)/codec --max-utts 1000
	$(BIN)/python -m interp.audio roundtrip --corpus $(DEMO)/corpus --codec $(DEMO)/codec --out $(DEMO)/codec_roundtrip --max-utts 60
	$(BIN)/python -m interp.audio tokenize --corpus $(DEMO)/corpus --codec data/codec --out $(DEMO)/tokens
	$(BIN)/python -m interp.models.evaluate --corpus $(DEMO)/corpus --n $(DEMO_TTS_N) --out $(DEMO)/tinycosy
	$(BIN)/python -m interp.cache --layers 12 --max-utts 400 --corpus $(DEMO)/corpus --tokens $(DEMO)/tokens --out $(DEMO)/acts
	$(BIN)/python -m sae.train --layer 12 --store $(DEMO)/acts --out $(DEMO)/sae/layer_12 --corpus $(DEMO)/corpus --speech-tokens $(DEMO)/tokens --tokens $(DEMO_SAE_TOKENS) --eval-examples 32
	@echo; echo "demo results: $(DEMO)/"; \
	echo "  corpus table  $(DEMO)/corpus/utterances.parquet"; \
	echo "  codec         $(DEMO)/codec/  (the shipped one, fit on 24k utterances: data/codec/)"; \
	echo "  round trip    $(DEMO)/codec_roundtrip/roundtrip.json (plot: roundtrip.html, listen: examples/)"; \
	echo "  TinyCosy      $(DEMO)/tinycosy/eval.json (listen: examples/; shipped model: data/tinycosy/)"; \
	echo "  activations   $(DEMO)/acts/ (layer 12, hook_resid_post)"; \
	echo "  SAE layer 12  $(DEMO)/sae/layer_12/ (SAELens format; metrics.json)"

clean-demo:
	rm -rf $(DEMO)
