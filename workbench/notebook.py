"""What the notebooks share: find the repository, pick full or small settings, build what is missing.

Every notebook starts with `nb = notebook_run()` (and `wb = Workbench.load()` for the model). With `WORKBENCH_SMALL=1` in the environment (what
`make test` sets when it executes the notebooks) every stage runs at a toy size in
`runs/notebooks_small/`; otherwise the notebooks read and extend `make demo`'s `runs/demo/`, so
a researcher who ran the demo waits for nothing. Each `ensure_*` builds its artifact with the
same function the stage's CLI calls, and reuses it when it is already there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from interp.paths import CODEC_DIR, REPO, SAE_DIR

SMALL_ENV = "WORKBENCH_SMALL"
RUN_ENV = "WORKBENCH_RUN"  # another run folder (the test suite gives each session a fresh one)


@dataclass(frozen=True)
class NotebookRun:
    """Settings of one notebook session; paths are relative to the repository root."""

    small: bool
    run: Path
    n_utts: int  # corpus size (the demo's 1,500 in full mode)
    cache_utts: int  # utterances whose activations are cached
    sae_tokens: int  # SAE training samples
    layers: tuple[int, ...]  # layers cached for the sweep

    @property
    def corpus(self) -> Path:
        return self.run / "corpus"

    @property
    def tokens(self) -> Path:
        return self.run / "tokens"

    @property
    def acts(self) -> Path:
        return self.run / "acts"

    def sae_dir(self, layer: int) -> Path:
        return self.run / "sae" / f"layer_{layer}"

    def ensure_corpus(self) -> Path:
        from interp.corpus.build import build_corpus
        from interp.corpus.plan import CorpusConfig

        if not (self.corpus / "utterances.parquet").exists():
            build_corpus(CorpusConfig(n=self.n_utts), self.corpus)
        return self.corpus

    def ensure_tokens(self) -> Path:
        from interp.audio.tokenize_corpus import MANIFEST, tokenize_corpus

        if not (self.tokens / MANIFEST).exists():
            tokenize_corpus(self.ensure_corpus(), CODEC_DIR, self.tokens)
        return self.tokens

    def ensure_acts(self) -> Path:
        """Residuals of `layers` (one teacher-forced pass per utterance, train split)."""
        return self._ensure_cache("train", self.acts)

    @property
    def acts_heldout(self) -> Path:
        return self.run / "acts_heldout"

    def ensure_heldout_acts(self) -> Path:
        """Residuals of held-out utterances (both held-out splits), what auto-interp reads."""
        return self._ensure_cache("heldout_sentences,heldout_voices", self.acts_heldout)

    def _ensure_cache(self, split: str, out: Path) -> Path:
        """`python -m interp.cache` of `layers` over `split` into `out`, unless already there."""
        from interp.cache import CacheConfig, run_cache

        if not (out / "manifest.json").exists():
            run_cache(CacheConfig(
                layers=",".join(map(str, self.layers)), hook="resid_post", split=split,
                max_utts=self.cache_utts, shard_utts=64, model="tinycosy",
                corpus=self.ensure_corpus(), tokens=self.ensure_tokens(),
                out=out))
        return out

    @property
    def shipped_sae(self) -> Path:
        """The shipped layer-12 SAE of TinyCosy (k 32, 40k steps): what auto-interp and steering use,
        in both modes, because the model is the same whatever the corpus size."""
        return SAE_DIR / "layer_12"

    def sae_config(self, layer: int):  # noqa: ANN201 (sae.config imports sae_lens: keep it lazy)
        from sae.config import SAETrainConfig

        return SAETrainConfig(layer=layer, tokens=self.sae_tokens, store=str(self.ensure_acts()),
                              out=str(self.sae_dir(layer)), corpus=str(self.corpus),
                              speech_tokens=str(self.tokens),
                              eval_examples=8 if self.small else 32, ckpt_every=100)

    def ensure_sae(self, layer: int = 12) -> Path:
        from sae.train import train

        if not (self.sae_dir(layer) / "metrics.json").exists():
            train(self.sae_config(layer))
        return self.sae_dir(layer)


def notebook_run(small: bool | None = None) -> NotebookRun:
    """Change to the repository root and return the settings (small when WORKBENCH_SMALL=1)."""
    os.chdir(REPO)
    if small is None:
        small = os.environ.get(SMALL_ENV, "") not in ("", "0")
    run = os.environ.get(RUN_ENV)
    if small:
        return NotebookRun(True, Path(run or "runs/notebooks_small"), n_utts=120, cache_utts=40,
                         sae_tokens=60 * 1024, layers=(6, 12))
    return NotebookRun(False, Path(run or "runs/demo"), n_utts=1500, cache_utts=400,
                     sae_tokens=409_600, layers=(4, 8, 12, 16, 20))
