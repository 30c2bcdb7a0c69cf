# The two set-up commands of the README: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := espeak-ng sox chromium
DEMO := runs/demo
DEMO_N ?= 1500
DEMO_TTS_N ?= 4
DEMO_SAE_TOKENS ?= 512000
DEMO_LAYERS ?= 4,8,12,16,20
# Auto-interp and steering read the shipped layer-12 SAE (10k steps on 1M positions): the demo's
# own 500-step sweep SAEs are trained on 67k positions: many of their latents never fire on the
# held-out slice. The demo's sizes (N) keep a fresh clone's `make demo` within 15 minutes, installs
# included; the figures at N = 50 are in docs/.
DEMO_SAE ?= data/sae/layer_12
# Steering at one strength per concept (0 reproduces the unsteered output exactly, a tested fact)
DEMO_STEER_N ?= 3
DEMO_STRENGTHS ?= 4
DEMO_GENDER_STRENGTHS ?= 8
# Rate broke generation at 4 on the stage-3 model: every edit, a random direction's too, babbled
# to 6.6-7.9 s voiced (from 2.7 s). At 2 (n 6, stage 8i): unsteered 2.72 s, SAE slow 3.56 s, fast 2.25 s,
# random direction 2.86 s (at n 6 that is noise: at N 50 it is 2.45 s from 2.40).
DEMO_RATE_STRENGTHS ?= 2
# The concept–content frontier of gender in the demo's gender steering folder (steering.frontier):
# the strength-8 outputs there are reused by key, strength 4 is new, and the two-sided sae_shift
# (a default method of the frontier) also at 14, where it flips male at N 50 (about 25 outputs,
# 20 s on one thread); N 3 is a smoke test of the figure, not a measurement.
DEMO_FRONTIER_STRENGTHS ?= 4,$(DEMO_GENDER_STRENGTHS);sae_shift:$(DEMO_GENDER_STRENGTHS),14
DEMO_STEER = --layer 12 --n $(DEMO_STEER_N) --sae $(DEMO_SAE) --store $(DEMO)/acts --corpus $(DEMO)/corpus \
	--autointerp $(DEMO)/autointerp/layer_12/latents.jsonl --judge acoustic --out $(DEMO)/steering
# Steps above skip what is already done; what was made with the shipped weights is redone when
# they change (corpus, codec and tokens do not depend on them), so the report never mixes models.
DEMO_MODELS := data/tinycosy/model.safetensors data/sae/layer_12/sae_weights.safetensors data/tinyedit/model.safetensors
DEMO_MODEL_OUTPUTS := tinycosy acts acts_heldout sae sweep probes autointerp steering tinyedit_edits \
	tinyedit_acts tinyedit_sae tinyedit_steer dashboard report.html report.json
# TinyCosy's ops are small: one thread each is as fast, and immune to oversubscribed cores
# (two-thread generation ran 10x slower while another job shared the machine).
demo: export OMP_NUM_THREADS ?= 1

# `make tinycosy`: TinyCosy from scratch on grammar and open-domain text (issue 34), one command.
# Defaults are the real run (~3 h on 2 cores: corpus ~8 min, tokens ~8, training 100, the two
# evaluations ~25 each); data/README.md has the toy-size invocation that checks the chain.
# the open-English sentence the demo ends by speaking (and transcribing)
DEMO_SENTENCE ?= Hello, how are you today?
TC ?= runs/tinycosy_open
TC_CORPUS ?= --n 24000 --open-frac 0.5
# the codec its speech tokens come from (the export names it in speech_codec.json)
TC_CODEC ?= data/codec
# The budget recipe (data/tinycosy/budget_2h_bf16_pad64.json: every in-grammar goal in 100 min).
# The phoneme front end (add --text-frontend phonemes) was tried first on this corpus and failed
# in the same budget (data/tinycosy/open_phonemes_2h.json: 4,506 steps, grammar WER 0.93); with
# --grammar-first-steps 4000 it did better but not well (open_curriculum_2h.json: grammar WER 0.79).
# With BPE and 6,000 grammar-first steps: the best so far, not the goals (open_bpe_curriculum_2h.json:
# grammar WER 0.43, open 0.95 against the shipped model's 1.11). Those 6,000 steps were the first
# 64% of its 100 minutes; the recipe switches there by the clock (--grammar-first-frac 0.64), so a
# slower machine, which does fewer steps in 100 minutes, still gets its 36% on every sentence.
TC_RECIPE ?= --steps 40000 --lr 1.5e-3 --warmup 200 --seed 30 --eval-every 2000 --max-minutes 100 \
	--threads 2 --speech-noise 0.15 --attn-guide 0.2 --attn-guide-layer 10 --attn-guide-head 0 \
	--precision bf16 --compile --pad-multiple 64 --grammar-first-frac 0.64
TC_EVAL_N ?= 50
TC_EVAL ?=
# the model the new one is paired against, on the same plan (empty: no pairing)
TC_BASELINE ?= data/tinycosy
TC_EVAL_ARGS = --corpus $(TC)/corpus --domain both --n $(TC_EVAL_N) $(TC_EVAL)
# the baseline's teacher-forced figures need the corpus in its own codes: another codec's tokens
# are refused, so with a TC_CODEC of its own the corpus is tokenized again by the baseline's codec
TC_BASE_TOKENS ?= $(if $(filter $(realpath data/codec),$(realpath $(TC_CODEC))),$(TC)/tokens,$(TC)/tokens_baseline)
# both evaluations heard again by the open-English ears (nothing generated): the letter ears the
# grammar figures are read with hear open English at ~80% WER whoever speaks it
TC_OPEN_EARS ?= data/instruments/asr_open

# `make tinyedit`: TinyEdit trained from a TinyCosy, one command (issue 34): by default from the one
# `make tinycosy` exported, else the shipped one. The recipe and pairs are the shipped TinyEdit's
# (data/README.md#tinyedit; ~10 min of training on 2 cores, the pairs ~10, the two evaluations ~15 each).
TE ?= runs/tinyedit_open
TE_INIT ?= $(if $(wildcard $(TC)/export/train.json),$(TC)/export,data/tinycosy)
TE_PAIRS ?= --n-pairs 4000 --n-sentences 1500
TE_RECIPE ?= --steps 700 --lr 7e-4 --warmup 30 --eval-every 150 --eval-examples 64 --ckpt-every 25 \
	--threads 2 --precision bf16 --compile
TE_EVAL_N ?= 20
TE_EVAL ?=

.PHONY: demo test install system-deps lint clean-demo tinycosy tinyedit

## system-deps: Debian packages (espeak-ng and its library, sox; chromium for the dashboard's browser test); as root directly, else say how
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

## lint: ruff, then the floors (import-linter contract in pyproject.toml: imports run downward only)
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

## test: lint, then the whole suite (slow tests included: CI runs everything); pytest's "no tests
## collected" (exit 5) fails loudly. Fast loop while editing, without the tests marked slow
## (notebooks, training runs, torchrun, the browser, the quick benchmark, CLI subprocesses):
##   .venv/bin/python -m pytest -m "not slow" -q        (and `-m slow` for just the heavy ones)
## Each test has a 600 s timeout (pytest-timeout, pyproject.toml; the two longest 1,500 s). The suite runs on TEST_WORKERS
## processes (pytest-xdist), a test file to a worker in file order (notebooks build on each other),
## files with slow tests first (tests/conftest.py; xdist's own reorder, by test count, is off); its
## tests run on one thread each, so CI's 2 cores take one worker each.
TEST_WORKERS ?= 2
test: install lint
	@$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$rc

## demo: the pipeline on the embedded default; every step resumes or is skipped when done
demo: install
	@fp=$$(cat $(DEMO_MODELS) | sha256sum | cut -c1-16); \
	if [ -d $(DEMO)/tinycosy ] && [ "$$(cat $(DEMO)/.models 2>/dev/null)" != "$$fp" ]; then \
	  echo "the shipped models changed since $(DEMO) was made (or it predates this check): redoing what was made with them"; \
	  rm -rf $(addprefix $(DEMO)/,$(DEMO_MODEL_OUTPUTS)); \
	fi; mkdir -p $(DEMO) && echo $$fp > $(DEMO)/.models
	$(BIN)/python -m interp.corpus build --out $(DEMO)/corpus --n $(DEMO_N)
	@test -f $(DEMO)/codec/codec.safetensors || $(BIN)/python -m interp.audio fit --corpus $(DEMO)/corpus --out $(DEMO)/codec --max-utts 400
	@test -f $(DEMO)/codec_roundtrip/roundtrip.json || $(BIN)/python -m interp.audio roundtrip --corpus $(DEMO)/corpus --codec $(DEMO)/codec --out $(DEMO)/codec_roundtrip --max-utts 30
	$(BIN)/python -m interp.audio tokenize --corpus $(DEMO)/corpus --codec data/codec --out $(DEMO)/tokens
	@test -f $(DEMO)/tinycosy/eval.json || $(BIN)/python -m interp.models.evaluate --corpus $(DEMO)/corpus --n $(DEMO_TTS_N) --n-conditioning 60 --n-reference 20 --out $(DEMO)/tinycosy
	$(BIN)/python -m interp.cache --layers $(DEMO_LAYERS) --max-utts 400 --corpus $(DEMO)/corpus --tokens $(DEMO)/tokens --out $(DEMO)/acts
	$(BIN)/python -m interp.cache --layers $(DEMO_LAYERS) --split heldout_sentences,heldout_voices --corpus $(DEMO)/corpus --tokens $(DEMO)/tokens --out $(DEMO)/acts_heldout
	$(BIN)/python -m sae.sweep --layers $(DEMO_LAYERS) --store $(DEMO)/acts --sae-root $(DEMO)/sae --out $(DEMO)/sweep --corpus $(DEMO)/corpus --speech-tokens $(DEMO)/tokens --tokens $(DEMO_SAE_TOKENS) --eval-examples 32
	@test -f $(DEMO)/probes/probes.json || $(BIN)/python -m sae.probes --store $(DEMO)/acts --test-store $(DEMO)/acts_heldout --corpus $(DEMO)/corpus --sae-root $(DEMO)/sae --saes 12=$(DEMO_SAE) --max-train 2000 --max-test 2000 --out $(DEMO)/probes
	$(BIN)/python -m autointerp.run --layer 12 --store $(DEMO)/acts_heldout --sae $(DEMO_SAE) --corpus $(DEMO)/corpus --out $(DEMO)/autointerp/layer_12
	$(BIN)/python -m steering.run --concept laughter --strength $(DEMO_STRENGTHS) --positions window $(DEMO_STEER)/laughter
	$(BIN)/python -m steering.run --concept gender --strength $(DEMO_GENDER_STRENGTHS) $(DEMO_STEER)/gender
	$(BIN)/python -m steering.run --concept rate --strength $(DEMO_RATE_STRENGTHS) $(DEMO_STEER)/rate
	$(BIN)/python -m steering.frontier --concept gender --strengths "$(DEMO_FRONTIER_STRENGTHS)" --layer 12 --n $(DEMO_STEER_N) --sae $(DEMO_SAE) --store $(DEMO)/acts --corpus $(DEMO)/corpus --out $(DEMO)/steering/gender
	$(BIN)/python -m interp.edit build --out $(DEMO)/edit_pairs --n-pairs 200
	@test -f $(DEMO)/tinyedit_edits/eval.json || $(BIN)/python -m interp.edit evaluate --pairs $(DEMO)/edit_pairs --n 1 --examples 1 --loss-pairs 0 --out $(DEMO)/tinyedit_edits --judge-dir $(DEMO)/tinyedit_edits/judge
	$(BIN)/python -m interp.cache --model tinyedit --layers 12 --corpus $(DEMO)/edit_pairs --tokens $(DEMO)/edit_pairs/tokens --out $(DEMO)/tinyedit_acts
	$(BIN)/python -m sae.train --model tinyedit --layer 12 --store $(DEMO)/tinyedit_acts --corpus $(DEMO)/edit_pairs --speech-tokens $(DEMO)/edit_pairs/tokens --out $(DEMO)/tinyedit_sae/layer_12 --tokens 1024000 --eval-examples 16
	$(BIN)/python -m steering.edit_compare --sae $(DEMO)/tinyedit_sae/layer_12 --store $(DEMO)/tinyedit_acts --pairs $(DEMO)/edit_pairs --n 1 --out $(DEMO)/tinyedit_steer
	$(BIN)/python -m autointerp.dashboard build --layer 12 --autointerp $(DEMO)/autointerp --steering $(DEMO)/steering --out $(DEMO)/dashboard
	$(BIN)/python -m workbench.report --run $(DEMO)
	$(BIN)/python -m interp.models "$(DEMO_SENTENCE)" --out $(DEMO)/hello.wav --listen > $(DEMO)/hello.txt
	@echo; echo "demo results: $(DEMO)/"; \
	echo "  report        $(DEMO)/report.html  (every headline figure next to the paper's; report.json)"; \
	echo "  dashboard     $(BIN)/python -m autointerp.dashboard serve --site $(DEMO)/dashboard   (then open the URL it prints)"; \
	echo "  corpus table  $(DEMO)/corpus/utterances.parquet"; \
	echo "  round trip    $(DEMO)/codec_roundtrip/roundtrip.json (plot: roundtrip.html, listen: examples/)"; \
	echo "  TinyCosy      $(DEMO)/tinycosy/eval.json (listen: examples/; shipped model: data/tinycosy/)"; \
	echo "  activations   $(DEMO)/acts/ (train), $(DEMO)/acts_heldout/ (held out); layers $(DEMO_LAYERS)"; \
	echo "  SAE sweep     $(DEMO)/sweep/sweep.html; SAEs in $(DEMO)/sae/layer_L/ (SAELens format)"; \
	echo "  probes        $(DEMO)/probes/probes.html"; \
	echo "  auto-interp   $(DEMO)/autointerp/layer_12/ (latents.jsonl, summary.json, figures.html)"; \
	echo "  steering      $(DEMO)/steering/{laughter,gender,rate}/ (summary.json, dose_response.html, wav/)"; \
	echo "  frontier      $(DEMO)/steering/gender/frontier.html (concept success vs WER rise per method; frontier.json)"; \
	echo "  TinyEdit      $(DEMO)/tinyedit_edits/eval.json (one edit per operation, judged; listen: examples/)"; \
	echo "  steer vs ask  $(DEMO)/tinyedit_steer/table.html (TinyEdit steered through SAE latents vs instructed; summary.json)"; \
	echo "  your sentence $(DEMO)/hello.wav: TinyCosy says \"$(DEMO_SENTENCE)\" (open English);"; \
	echo "                $$(tail -1 $(DEMO)/hello.txt)"

clean-demo:
	rm -rf $(DEMO)

## tinycosy: corpus (24k utterances, half open English) → speech tokens ($(TC_CODEC)) →
## TinyCosy trained from scratch with the budget recipe → evaluated on held-out grammar and open
## sentences (--domain both), paired against the shipped model on the same plan. It exports to
## $(TC)/export: to ship it, copy that to data/tinycosy and rebuild what stands on it
## (data/README.md). Every step resumes or is skipped when done.
tinycosy: install
	$(BIN)/python -m interp.corpus build --out $(TC)/corpus $(TC_CORPUS)
	$(BIN)/python -m interp.audio tokenize --corpus $(TC)/corpus --codec $(TC_CODEC) --out $(TC)/tokens
	@test -f $(TC)/export/train.json || $(BIN)/python -m interp.models.train --corpus $(TC)/corpus \
	  --tokens $(TC)/tokens --out $(TC)/model --export $(TC)/export $(TC_RECIPE)
	@test -z "$(TC_BASELINE)" || test -f $(TC)/eval_baseline/eval.json || { \
	  test -f $(TC_BASE_TOKENS)/manifest.json || $(BIN)/python -m interp.audio tokenize \
	    --model $(TC_BASELINE) --corpus $(TC)/corpus --out $(TC_BASE_TOKENS) ; } && $(BIN)/python -m \
	  interp.models.evaluate --model $(TC_BASELINE) $(TC_EVAL_ARGS) --tokens $(TC_BASE_TOKENS) \
	  --out $(TC)/eval_baseline
	@test -f $(TC)/eval/eval.json || $(BIN)/python -m interp.models.evaluate --model $(TC)/export \
	  $(TC_EVAL_ARGS) --tokens $(TC)/tokens --out $(TC)/eval \
	  $(if $(TC_BASELINE),--baseline $(TC)/eval_baseline/eval.json)
	@test -z "$(TC_BASELINE)" || test -f $(TC)/eval_baseline_open_ears/eval.json || $(BIN)/python -m \
	  interp.models.evaluate --rescore $(TC)/eval_baseline --asr $(TC_OPEN_EARS) --out $(TC)/eval_baseline_open_ears
	@test -f $(TC)/eval_open_ears/eval.json || $(BIN)/python -m interp.models.evaluate --rescore $(TC)/eval \
	  --asr $(TC_OPEN_EARS) --out $(TC)/eval_open_ears \
	  $(if $(TC_BASELINE),--baseline $(TC)/eval_baseline_open_ears/eval.json)
	@echo; echo "TinyCosy rebuilt: $(TC)/export (train.json: the run)"; \
	echo "  held-out figures, both domains: $(TC)/eval/eval.json (by_domain; vs_baseline: paired against $(TC_BASELINE))"; \
	echo "  the same outputs heard by the open-English ears ($(TC_OPEN_EARS)): $(TC)/eval_open_ears/eval.json"

## tinyedit: edit pairs → TinyEdit trained from $(TE_INIT) → evaluated on held-out voices (judged),
## with the untuned TinyCosy (its weights in TinyEdit's format) evaluated beside it. Exports to
## $(TE)/export: to ship it, copy that to data/tinyedit. Every step resumes or is skipped when done.
tinyedit: install
	$(BIN)/python -m interp.edit build --out $(TE)/pairs $(TE_PAIRS)
	@test -f $(TE)/export/train.json || $(BIN)/python -m interp.edit train --pairs $(TE)/pairs \
	  --init $(TE_INIT) --out $(TE)/model --export $(TE)/export $(TE_RECIPE)
	@test -f $(TE)/eval/eval.json || $(BIN)/python -m interp.edit evaluate --pairs $(TE)/pairs \
	  --model $(TE)/export --baseline $(TE_INIT) --n $(TE_EVAL_N) --out $(TE)/eval --judge-dir $(TE)/eval/judge $(TE_EVAL)
	@test -f $(TE)/untuned/train.json || $(BIN)/python -m interp.edit train --pairs $(TE)/pairs \
	  --init $(TE_INIT) --out $(TE)/untuned_run --export $(TE)/untuned --steps 0 --eval-examples 64
	@test -f $(TE)/eval_untuned/eval.json || $(BIN)/python -m interp.edit evaluate --pairs $(TE)/pairs \
	  --model $(TE)/untuned --baseline $(TE_INIT) --n $(TE_EVAL_N) --loss-pairs 0 --out $(TE)/eval_untuned \
	  --judge-dir $(TE)/eval_untuned/judge $(TE_EVAL)
	@echo; echo "TinyEdit rebuilt from $(TE_INIT): $(TE)/export (train.json: the run)"; \
	echo "  held-out figures: $(TE)/eval/eval.json; the untuned TinyCosy's: $(TE)/eval_untuned/eval.json"
