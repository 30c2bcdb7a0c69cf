"""The settings of one SAE training run; every field is a `python -m sae.train` flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

MODALITIES = ("auto", "all", "speech", "text", "text+speech")
# Backbones whose special positions (sos, task_id) stay out of an SAE by default: in a real LM
# they are attention sinks, not speech or text, as SAELens's `exclude_special_tokens` keeps BOS
# out for text LMs. The embedded models keep them (their shipped SAEs were trained so).
REAL_BACKBONES = ("cosyvoice3:", "editing-lm:")
# Width-scaled defaults: d_sae = WIDTH_FACTOR × width, up to a power of two (TinyCosy 128 →
# 2048; CosyVoice3 896 → 16384, the paper's); k through TinyCosy's tuned 16 at 128 and the
# paper's 50 at 896, as a power law k = 16 · (width/128)^0.586.
WIDTH_FACTOR, K_AT_128, K_EXPONENT = 16, 16, 0.586
ENGINES = ("sparse", "saelens")
ARCHITECTURES = ("batchtopk", "matryoshka")
PRECISIONS = ("fp32", "tf32", "bf16")  # of the sparse engine's dense matmul

# Fields that define what is trained: a checkpoint is only resumed when they are unchanged.
RUN_IDENTITY = ("engine", "architecture", "matryoshka_widths", "layer", "hook", "modality", "d_sae", "k", "tokens", "batch_size", "lr",
                "warmup_frac", "decay_frac", "aux_coef", "dead_window", "threshold_lr", "seed",
                "buffer", "eval_frac")


@dataclass(frozen=True)
class SAETrainConfig:
    """A BatchTopK SAE on one layer's cached activations (SAELens architecture and format)."""

    engine: str = "sparse"
    """training step: sparse (ours, `sae.engine`: one dense matmul per step, the rest sparse)
    or saelens (SAELens's `SAETrainer.step`); both train SAELens's BatchTopK SAE and save its
    format"""
    architecture: str = "batchtopk"
    """batchtopk, or matryoshka: Matryoshka BatchTopK (SAELens's
    `MatryoshkaBatchTopKTrainingSAE` loss), where every prefix of the dictionary in
    --matryoshka-widths must also reconstruct the input alone, so that general concepts settle
    in the first latents and are not absorbed into specific ones. Both save the same SAELens
    JumpReLU SAE"""
    matryoshka_widths: str = ""
    """nested prefix widths of --architecture matryoshka, comma-separated and increasing, e.g.
    256,1024,4096 (d_sae ends the list, added when missing; '' = d_sae/16,d_sae/4,d_sae)"""
    layer: int = 12
    """layer whose activations are decomposed (12 is TinyCosy's middle, as in CosyVoice3)"""
    hook: str = "resid_post"
    """hook kind of `blocks.{layer}.hook_*`: resid_pre|resid_mid|resid_post|attn_out|mlp_out"""
    modality: str = "auto"
    """train on positions of this modality: all|speech|text|text+speech; auto = all for the
    embedded models, text+speech (no sos/task_id) for cosyvoice3:/editing-lm: backbones"""
    d_sae: int = 0
    """latents (0 = 16 × the backbone's width up to a power of two: 2048 for TinyCosy's 128,
    16384 for CosyVoice3's 896, the paper's)"""
    k: int = 0
    """mean active latents per position (0 = scaled from the width: 16 at TinyCosy's 128, where
    it reached explained variance 0.97 at d_sae 2048 in the prototype; 50 at 896, the paper's)"""
    tokens: int = 10_240_000
    """training samples (activation positions, with repeats); steps = tokens / batch_size"""
    batch_size: int = 1024
    """positions per step (BatchTopK keeps k × batch_size activations per batch)"""
    lr: float = 0.0
    """peak Adam learning rate (0 = the engine's default: 2e-3 sparse, 5e-4 saelens)"""
    warmup_frac: float = 0.05
    """fraction of the steps with a linear learning-rate warm-up"""
    decay_frac: float = 0.2
    """fraction of the steps, at the end, with a linear decay to zero"""
    aux_coef: float = 1.0
    """weight of the dead-latent auxiliary loss (dead latents reconstruct the residual; 0 = off)"""
    dead_window: int = 200
    """steps without firing after which a latent counts as dead (and enters the aux loss)"""
    threshold_lr: float = 0.01
    """EMA rate of the BatchTopK threshold that becomes the saved JumpReLU threshold"""
    seed: int = 0
    """seed of initialisation and data order"""
    buffer: int = 200_000
    """positions shuffled together (whole shards are read into a buffer of about this size)"""
    eval_frac: float = 0.05
    """fraction of the store's shards held out for evaluation (at least one when there are two)"""
    eval_rows: int = 50_000
    """held-out positions used for explained variance, L0, dead and dense fractions"""
    eval_examples: int = 64
    """heldout_sentences utterances for the spliced next-speech-token loss (0 = skip)"""
    ckpt_every: int = 250
    """steps between checkpoints (a killed run resumes from the last one)"""
    out: str = ""
    """output folder (default runs/tinycosy/sae/layer_{layer})"""
    store: str = "runs/tinycosy/acts"
    """activation store; built with interp.cache when missing"""
    model: str = "tinycosy"
    """backbone the activations come from (`interp.models.registry.load_backbone`: tinycosy,
    tinyedit, cosyvoice3:<dir>, editing-lm:<dir> or a model dir); checked against the store"""
    corpus: str = "runs/tinycosy/corpus"
    """corpus (for building the store and for the held-out loss)"""
    speech_tokens: str = "runs/tinycosy/tokens"
    """speech tokens of the corpus"""
    device: str = "auto"
    """auto (CUDA with bf16 autocast when present), cpu or cuda"""
    precision: str = "auto"
    """the sparse engine's dense matmul: fp32, tf32 (CUDA tensor cores, fp32 storage) or bf16
    (bf16 inputs, fp32 result and everything else); auto = bf16 on CUDA, fp32 on a CPU (where
    bf16 is slower)"""
    threads: int = 0
    """CPU threads (0 = all cores; 1 is faster when other jobs share the cores)"""

    def __post_init__(self) -> None:
        if self.modality == "auto":  # resolved here, so the run's identity names what it trains
            real = self.model.startswith(REAL_BACKBONES)
            object.__setattr__(self, "modality", "text+speech" if real else "all")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"--architecture {self.architecture!r}: use one of "
                             f"{', '.join(ARCHITECTURES)}")
        if self.matryoshka_widths and self.architecture != "matryoshka":
            raise ValueError("--matryoshka-widths needs --architecture matryoshka")
        if self.architecture == "matryoshka" and len(self.widths) < 2 and self.d_sae:
            raise ValueError(f"--matryoshka-widths {self.matryoshka_widths!r}: name at least "
                             f"one prefix narrower than --d-sae {self.d_sae}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"--precision {self.precision!r}: use auto or one of "
                             f"{', '.join(PRECISIONS)}")
        if self.modality not in MODALITIES:
            raise ValueError(f"--modality {self.modality!r}: use one of {', '.join(MODALITIES)}")
        if self.d_sae < 0 or self.k < 0:
            raise ValueError("--d-sae and --k are positive (0 = scaled from the model's width)")
        if self.d_sae and self.k and not self.k < self.d_sae:
            raise ValueError(f"--k {self.k} must be between 1 and --d-sae {self.d_sae}")
        if self.tokens < self.batch_size:
            raise ValueError(f"--tokens {self.tokens} is less than one batch ({self.batch_size})")
        if self.warmup_frac + self.decay_frac >= 1:
            raise ValueError("--warmup-frac + --decay-frac must leave some constant-rate steps")

    def sized(self, width: int) -> SAETrainConfig:
        """This config with d_sae and k (where 0) scaled from the backbone's residual width."""
        d_sae = self.d_sae or 1 << (WIDTH_FACTOR * width - 1).bit_length()
        k = self.k or max(1, round(K_AT_128 * (width / 128) ** K_EXPONENT))
        return replace(self, d_sae=d_sae, k=min(k, d_sae - 1))

    @property
    def widths(self) -> tuple[int, ...]:
        """The nested prefix widths, d_sae last: (d_sae,) for BatchTopK. Before d_sae is sized
        from the model (0), only the widths given, checked to increase."""
        if self.architecture != "matryoshka":
            return (self.d_sae,)
        text = self.matryoshka_widths.strip()
        if not text and not self.d_sae:
            return ()
        try:
            widths = [int(w) for w in text.split(",")] if text else [
                max(1, self.d_sae // 16), max(2, self.d_sae // 4)]
        except ValueError:
            raise ValueError(f"--matryoshka-widths {text!r}: write increasing integers, e.g. "
                             "128,512,2048") from None
        if self.d_sae and widths[-1] != self.d_sae:
            widths.append(self.d_sae)
        if widths[0] < 1 or any(b <= a for a, b in zip(widths, widths[1:], strict=False)):
            raise ValueError(f"--matryoshka-widths {text or widths!r}: widths must increase "
                             f"from 1 up to --d-sae {self.d_sae}")
        return tuple(widths)

    @property
    def peak_lr(self) -> float:
        # sparse: 2e-3. On benchmarks/sae_training.py (TinyCosy layer 12, 1M positions) it
        # reaches FVU 0.031 (sparsify 0.039); 5e-3 reaches 0.023 there, but over 3,000 steps
        # it leaves 15% of the latents dead against 0.7% at 2e-3.
        return self.lr or {"sparse": 2e-3, "saelens": 5e-4}[self.engine]

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_size

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/tinycosy/sae/layer_{self.layer}")

    @property
    def modality_filter(self) -> str | None:
        """The store's modality name(s) ('text+speech'), or None for every position."""
        return None if self.modality == "all" else self.modality

    def identity(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in RUN_IDENTITY}
