"""The settings of one auto-interp run; every field is a CLI flag of `python -m autointerp.run`.

The chat-model flags (`--base-url`, `--api-model`, `--concurrency`, `--retries`, `--max-attempts`,
`--timeout`, `--backoff`) are the judge's client settings under autointerp's names and defaults;
`AutointerpConfig.api_config()` maps them onto the one client config, `interp.judge.ApiConfig`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from interp.judge.api_backend import ApiConfig
from interp.paths import default_sae
from sae.modality import AUDIO_MIN, TEXT_MAX

RUN = "runs/tinycosy"
API_KEY_ENV = "AUTOINTERP_API_KEY"  # then the judge's JUDGE_API_KEY / OPENAI_API_KEY
MAX_TOKENS = 512  # a label or a list of matches is short; the judge allows longer reasons
MIN_BACKOFF_MAX = 30.0  # the longest back-off, s, unless --backoff is longer still


@dataclass(frozen=True)
class AutointerpConfig:
    layer: int = 12
    """Residual-stream layer; picks the SAE and the store's layer."""
    store: str = f"{RUN}/acts_heldout"
    """Held-out activation store (built by `python -m interp.cache --split heldout_…`)."""
    sae: str = ""
    """SAE folder; empty means runs/tinycosy/sae/layer_{layer}, else the shipped data/sae one."""
    corpus: str = f"{RUN}/corpus"
    """Corpus folder with the ground-truth table and the wavs."""
    model: str = "tinycosy"
    """Backbone the store came from (`interp.models.registry.load_backbone`): its text tokenizer
    shows text windows, its final norm and speech head give the logit lens."""
    out: str = ""
    """Output folder; empty means runs/tinycosy/autointerp/layer_{layer}."""
    explainer: str = "offline"
    """`offline` (labels from the corpus annotations) or `api` (an audio chat model)."""
    scorer: str = "offline"
    """`offline` (the label's ground-truth predicate) or `api` (the chat model says yes/no)."""
    audio_threshold: float = AUDIO_MIN
    """A latent is audio-modal when more than this share of its top activations is speech."""
    text_threshold: float = TEXT_MAX
    """… and text-modal when less than this share is speech; mixed in between."""
    n_modality: int = 50
    """Top activations that decide a latent's modality."""
    n_top: int = 10
    """Top-activating examples per latent (explanation evidence)."""
    n_quantile: int = 10
    """Examples sampled across activation quantiles (explanation evidence)."""
    n_random: int = 10
    """Random non-activating examples kept as evidence."""
    n_score: int = 10
    """Held-out activating and as many non-activating examples per latent for scoring."""
    n_clips: int = 4
    """Audio clips written per latent for its evidence (the first speech examples)."""
    window: int = 8
    """Text-window tokens on each side of the activating token."""
    clip_s: float = 1.0
    """Clip length in seconds."""
    min_count: int = 5
    """Attributes (words, tokens) seen at fewer explain-split positions are not offered."""
    max_terms: int = 3
    """Offline labels may OR up to this many attributes (e.g. three speech codes)."""
    seed: int = 0
    """Seed of the explain/score utterance split and of every sample."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible endpoint of the api explainer/scorer (ApiConfig.base_urls); the key is
    read from $AUTOINTERP_API_KEY, else $JUDGE_API_KEY or $OPENAI_API_KEY (none is fine locally)."""
    api_model: str = "Qwen3-Omni-30B-A3B-Instruct"
    """Chat model name sent to the endpoint (ApiConfig.model; `--model` is the backbone)."""
    concurrency: int = 8
    """API requests in flight at once (ApiConfig.concurrency)."""
    retries: int = 2
    """Re-asks after a malformed answer (ApiConfig.retries)."""
    max_attempts: int = 6
    """HTTP requests per question in all, timeouts and 5xx included (ApiConfig.max_attempts)."""
    timeout: float = 120.0
    """Seconds allowed for one request (ApiConfig.timeout)."""
    backoff: float = 1.0
    """First back-off delay in seconds, doubling with jitter up to max(30 s, this)
    (ApiConfig.backoff_base, backoff_max)."""
    max_latents: int = 0
    """Explain and score only the first N live latents (0 = all); for quick looks."""
    n_output_wavs: int = 200
    """Render what the N densest latents with evidence promote and suppress (their top logit-lens
    codes, 0.8 s each, through the backbone) as wavs beside their clips; -1 = every latent with
    evidence, 0 = none. The output-side sentence itself is computed for every latent."""
    n_intervene: int = 0
    """Turn the N densest latents with evidence up one at a time during generation and listen:
    ΔF0, Δduration, laughter and WER against unsteered speech (`autointerp.intervention`); 0 =
    off. Slow: N × --intervene-sentences generations, each measured by the instruments."""
    intervene_singled_out: bool = False
    """Also intervene on the latents a person is pointed to (`autointerp.run.singled_out`):
    each planted concept's best latent, per position and per utterance, and the first three
    latents of every target in the SAE's steering selection (`concepts.json`, written by
    `python -m steering.select`); with --n-intervene 0, on those alone."""
    intervene_sentences: int = 3
    """Held-out sentences (in held-out voices) spoken per intervened latent."""
    intervene_strength: float = 4.0
    """Added decoder row = this × the latent's largest activation on the store."""

    @property
    def sae_dir(self) -> Path:
        return Path(self.sae) if self.sae else default_sae(self.layer)

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"{RUN}/autointerp/layer_{self.layer}")

    def api_config(self) -> ApiConfig:
        """The chat client's config: the one place the API flags above become `ApiConfig`."""
        return ApiConfig(base_urls=(self.base_url,), model=self.api_model,
                         concurrency=self.concurrency, retries=self.retries,
                         max_attempts=self.max_attempts, timeout=self.timeout,
                         backoff_base=self.backoff,
                         backoff_max=max(self.backoff, MIN_BACKOFF_MAX),
                         api_key=os.environ.get(API_KEY_ENV) or None, max_tokens=MAX_TOKENS)

    def check(self) -> None:
        if self.explainer not in ("offline", "api") or self.scorer not in ("offline", "api"):
            raise ValueError("--explainer and --scorer take `offline` or `api`")
        if not 0 <= self.text_threshold <= self.audio_threshold <= 1:
            raise ValueError("need 0 <= --text-threshold <= --audio-threshold <= 1")
        if self.n_intervene < 0 or ((self.n_intervene or self.intervene_singled_out)
                                    and self.intervene_sentences < 1):
            raise ValueError("--n-intervene must be >= 0, and --intervene-sentences >= 1")
        if min(self.n_top, self.n_score, self.n_modality, self.max_terms) < 1 or self.clip_s <= 0:
            raise ValueError("--n-top, --n-score, --n-modality, --max-terms and --clip-s must be "
                             "positive")

    def to_dict(self) -> dict:
        return asdict(self)
