"""Evidence files: text windows, 1-second audio clips with activation traces, histograms, the
logit lens and the output side (what the promoted codes sound like) of each latent, as
`evidence/latent_XXXXX.json` + `clips/*.wav` in the layer folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from autointerp.examples import Examples
from interp.atomic import atomic_save, atomic_write_json
from interp.audio import SAMPLE_RATE
from interp.corpus.table import load_audio
from sae.latent_stats import LatentStats

MODALITY_NAMES = ("text", "speech", "special")


def evidence_path(latent: int) -> str:
    return f"evidence/latent_{latent:05d}.json"


class Renderer:
    """Turns positions into the example dicts of the evidence contract (and API prompts)."""

    def __init__(self, stats: LatentStats, rows: list[dict], corpus: Path,
                 token_text: dict[int, str], out: Path, window: int, clip_s: float) -> None:
        self.stats, self.rows, self.corpus, self.out = stats, rows, corpus, out
        self.token_text, self.window, self.clip_s = token_text, window, clip_s
        meta = stats.meta
        # sequence boundaries: positions of sequence s are [starts[s], starts[s + 1])
        self.starts = np.concatenate([np.flatnonzero(meta["position"] == 0), [len(meta["seq"])]])
        self._audio = lru_cache(maxsize=256)(self._load)

    def _load(self, row: int) -> np.ndarray:
        audio, sr = load_audio(self.corpus, self.rows[row])
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        if sr != SAMPLE_RATE:  # linear resampling is enough for 1-second listening clips
            t = np.arange(int(len(audio) * SAMPLE_RATE / sr)) / SAMPLE_RATE
            audio = np.interp(t, np.arange(len(audio)) / sr, audio).astype(np.float32)
        return audio

    def token_str(self, p: int) -> str:
        meta = self.stats.meta
        m, tok = int(meta["modality"][p]), int(meta["token"][p])
        if m == 0:
            return self.token_text.get(tok, f"<t{tok}>")
        if m == 1:
            return f"<s{tok}>"
        return "<sos>" if meta["position"][p] == 0 else "<task_id>"

    def text_window(self, p: int, acts: np.ndarray) -> dict:
        s = self.stats.meta["seq"][p]
        lo = max(self.starts[s], p - self.window)
        hi = min(self.starts[s + 1], p + self.window + 1)
        return {"tokens": [self.token_str(q) for q in range(lo, hi)],
                "acts": [round(float(acts[q]), 4) for q in range(lo, hi)], "center": int(p - lo)}

    def clip(self, p: int, acts: np.ndarray, wav_name: str | None) -> dict:
        """The clip around speech position p; written to `wav_name` (under out) when given."""
        meta = self.stats.meta
        src = int(meta["src_utt"][p])
        audio = self._audio(src)
        dur = len(audio) / SAMPLE_RATE
        mid = float(meta["t0"][p] + meta["t1"][p]) / 2
        t0 = min(max(0.0, mid - self.clip_s / 2), max(0.0, dur - self.clip_s))
        t1 = t0 + self.clip_s
        s = meta["seq"][p]
        seq = np.arange(self.starts[s], self.starts[s + 1])
        seq = seq[(meta["modality"][seq] == 1) & (meta["src_utt"][seq] == src)]
        tm = (meta["t0"][seq] + meta["t1"][seq]) / 2
        keep = (tm >= t0) & (tm < t1)
        trace = [[round(float(t - t0), 3), round(float(acts[q]), 4)]
                 for t, q in zip(tm[keep], seq[keep], strict=True)]
        if wav_name is not None:
            seg = np.zeros(int(round(self.clip_s * SAMPLE_RATE)), np.float32)
            piece = audio[int(t0 * SAMPLE_RATE) : int(t0 * SAMPLE_RATE) + len(seg)]
            seg[: len(piece)] = piece
            path = self.out / wav_name
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(path, lambda f: sf.write(f, seg, SAMPLE_RATE, subtype="PCM_16"))
        return {"wav": wav_name, "t0": round(t0, 3), "t1": round(t1, 3), "trace": trace}

    def example(self, p: int, acts: np.ndarray, modality: str, wav_name: str | None) -> dict:
        """One example: text window for text/special positions (and every position of a
        mixed latent), clip for speech positions."""
        meta = self.stats.meta
        m = int(meta["modality"][p])
        want_text = m != 1 or modality == "mixed"
        return {"utt_id": self.rows[int(meta["utt"][p])]["utt_id"],
                "src_utt_id": self.rows[int(meta["src_utt"][p])]["utt_id"],
                "position": int(meta["position"][p]), "modality": MODALITY_NAMES[m],
                "act": round(float(acts[p]), 4),
                "text": self.text_window(p, acts) if want_text else None,
                "clip": self.clip(p, acts, wav_name) if m == 1 else None}

    def examples(self, positions: np.ndarray, acts: np.ndarray, modality: str, prefix: str,
                 n_wavs: int) -> list[dict]:
        """Examples in order; the first `n_wavs` speech ones get a wav `clips/{prefix}_NN.wav`."""
        out, wavs = [], 0
        for i, p in enumerate(positions):
            name = None
            if self.stats.meta["modality"][p] == 1 and wavs < n_wavs:
                name, wavs = f"clips/{prefix}_{i:02d}.wav", wavs + 1
            out.append(self.example(int(p), acts, modality, name))
        return out


def histogram(values: np.ndarray, bins: int = 20) -> dict:
    if len(values) == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(values, bins=bins, range=(0.0, float(values.max())))
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}


@torch.no_grad()
def logit_lens(backbone, w_dec: torch.Tensor, k: int = 10) -> list[dict]:
    """Per latent, the speech codes (and specials: sos/eos/task_id follow the codes) that its
    decoder direction promotes/suppresses when read straight out through the final norm and the
    speech head (`Backbone.logit_lens`): a direct effect on the next speech token, ignoring the
    layers in between."""
    return lens_entries(backbone.logit_lens(w_dec).cpu(), k)


def lens_entries(logits: torch.Tensor, k: int = 10) -> list[dict]:
    """The logit-lens entries of (d_sae, n_speech) logit-lens logits (see `logit_lens`)."""
    k = min(k, logits.shape[1])
    up, down = logits.topk(k, dim=1), (-logits).topk(k, dim=1)
    return [{"promoted": [[int(c), round(float(v), 4)] for c, v in
                          zip(up.indices[i], up.values[i], strict=True)],
             "suppressed": [[int(c), round(float(-v), 4)] for c, v in
                            zip(down.indices[i], down.values[i], strict=True)]}
            for i in range(len(logits))]


def write_evidence(renderer: Renderer, latent: int, ex: Examples, modality: str,
                   lens: dict | None, n_clips: int, output: dict | None = None) -> dict:
    """Write `evidence/latent_XXXXX.json` (and its clips); returns the evidence dict.
    `output` is the latent's output side (`autointerp.output_side`), None where the backbone
    has no code profile."""
    stats = renderer.stats
    acts = stats.dense(latent)
    prefix = f"latent_{latent:05d}"
    top = renderer.examples(ex.top, acts, modality, prefix, n_clips)
    n_left = max(0, n_clips - sum(e["clip"] is not None and e["clip"]["wav"] is not None
                                  for e in top))
    quant = renderer.examples(ex.quantiles, acts, modality, f"{prefix}_q", n_left)
    evidence = {"latent": latent, "histogram": histogram(stats.column(latent)[1]),
                "top": top, "quantiles": quant,
                "random": renderer.examples(ex.random, acts, modality, prefix, 0),
                "logit_lens": lens, "output_side": output}
    path = renderer.out / evidence_path(latent)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, evidence)
    return evidence
