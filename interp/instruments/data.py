"""Training and evaluation audio for the instruments: corpus utterances, their codec round trips
(decode(encode(x)), what TinyCosy outputs), and light augmentation.

Round trips are slow (~0.2 s an utterance on one core), so they are computed once for a seeded,
split-wise prefix of the corpus and cached in shards under `<corpus>/../instruments/roundtrip/`:
asking for more utterances later reuses the finished shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.audio.codec import SpeechCodec
from interp.corpus.table import load_audio, load_table

SHARD = 128
MANIFEST = "manifest.json"


def default_cache_dir(corpus: str | Path) -> Path:
    return Path(corpus).resolve().parent / "instruments" / "roundtrip"


def codec_fingerprint(codec: SpeechCodec) -> str:
    h = hashlib.sha256(codec.centroids.tobytes())
    h.update(json.dumps(codec.cfg.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def split_order(corpus: str | Path, split: str, seed: int = 0) -> list[dict]:
    """The rows of a split in a seeded order: 'the first n' of it is a fixed random subset."""
    rows = load_table(corpus, split)
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


def to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def roundtrip(codec: SpeechCodec, audio: np.ndarray) -> np.ndarray:
    """decode(encode(audio)), cut to the original length (times stay aligned)."""
    y = codec.decode(codec.encode(audio, SAMPLE_RATE))
    return np.pad(y, (0, max(0, len(audio) - len(y))))[: len(audio)].astype(np.float32)


@dataclass
class RoundTripCache:
    """Round-trip audio for the first n rows of each split's seeded order, built on demand."""

    corpus: Path
    codec: SpeechCodec
    folder: Path
    seed: int = 0

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        fp = codec_fingerprint(self.codec)
        path = self.folder / MANIFEST
        if path.exists() and json.loads(path.read_text())["codec"] != fp:
            raise ValueError(f"{self.folder} holds round trips of another codec; delete it or "
                             "pass another --roundtrip-cache")
        path.write_text(json.dumps({"codec": fp, "corpus": str(self.corpus), "seed": self.seed,
                                    "shard": SHARD}, indent=1))

    def get(self, split: str, n: int) -> tuple[list[dict], dict[str, np.ndarray]]:
        """(rows, utt_id → int16 round-trip audio) for the first n rows of `split`."""
        full = split_order(self.corpus, split, self.seed)
        rows = full[:n]
        out: dict[str, np.ndarray] = {}
        shards = range(0, len(rows), SHARD)
        todo = [i for i in shards if not self._path(split, i).exists()]
        bar = tqdm(total=sum(len(full[i: i + SHARD]) for i in todo), unit="utt",
                   desc=f"round trip {split}", disable=not todo)
        for i in shards:  # a shard always holds a full SHARD-sized slice of the order
            path = self._path(split, i)
            if not path.exists():
                self._build(full[i: i + SHARD], path, bar)
            with np.load(path) as z:
                ids, offs, audio = list(z["utt_ids"]), z["offsets"], z["audio"]
            for k, uid in enumerate(ids):
                out[str(uid)] = audio[offs[k]: offs[k + 1]]
        bar.close()
        keep = [r for r in rows if r["utt_id"] in out]
        return keep, out

    def _path(self, split: str, start: int) -> Path:
        return self.folder / f"{split}_{start // SHARD:05d}.npz"

    def _build(self, rows: list[dict], path: Path, bar: tqdm) -> None:
        audios = []
        for r in rows:
            audios.append(to_int16(roundtrip(self.codec, load_audio(self.corpus, r)[0])))
            bar.update(1)
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in audios])])
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, utt_ids=np.array([r["utt_id"] for r in rows]), offsets=offsets,
                 audio=np.concatenate(audios))
        os.replace(tmp, path)


@dataclass(frozen=True)
class Clip:
    """One training/evaluation waveform with its corpus row."""

    audio: np.ndarray  # (T,) float32 at 16 kHz
    row: dict
    roundtrip: bool


class ClipPool:
    """Draws clips: original corpus audio (read from disk) or a cached round trip."""

    def __init__(self, corpus: str | Path, rows: list[dict], rt: dict[str, np.ndarray],
                 roundtrip_frac: float):
        self.corpus = Path(corpus)
        self.rows = rows
        self.rt = rt
        self.rt_rows = [r for r in rows if r["utt_id"] in rt]
        self.roundtrip_frac = roundtrip_frac if self.rt_rows else 0.0
        self.subsets: dict[str, tuple[list[dict], list[dict]]] = {}

    def add_subset(self, name: str, keep: Callable[[dict], bool]) -> None:
        """A named subset of rows (and of round-trip rows) that `draw(subset=name)` samples."""
        rows = [r for r in self.rows if keep(r)]
        if not rows:
            raise ValueError(f"no training rows for subset {name!r}")
        self.subsets[name] = (rows, [r for r in self.rt_rows if keep(r)])

    def audio(self, row: dict, roundtrip: bool) -> np.ndarray:
        """Float32 audio of a row: the cached round trip, or the original read from disk."""
        if roundtrip:
            return self.rt[row["utt_id"]].astype(np.float32) / 32767
        return load_audio(self.corpus, row)[0]

    def draw(self, rng: np.random.Generator, subset: str | None = None) -> Clip:
        rows, rt_rows = self.subsets[subset] if subset else (self.rows, self.rt_rows)
        if rt_rows and rng.random() < self.roundtrip_frac:
            row = rt_rows[rng.integers(len(rt_rows))]
            return Clip(self.audio(row, True), row, True)
        row = rows[rng.integers(len(rows))]
        return Clip(self.audio(row, False), row, False)


@dataclass(frozen=True)
class Augment:
    """Light, label-preserving augmentation."""

    gain_db: float = 6.0
    """random gain within ± this (dB)"""
    noise_prob: float = 0.5
    """chance of adding white noise"""
    snr_db: tuple[float, float] = (15.0, 40.0)
    """signal-to-noise range of that noise (dB)"""
    speed: float = 0.0
    """random speed factor within 1 ± this (resampling; shifts pitch too); 0 = off"""


def augment(x: np.ndarray, rng: np.random.Generator, aug: Augment) -> tuple[np.ndarray, float]:
    """(augmented audio, speed factor); times in the result are original times / speed."""
    speed = 1.0
    if aug.speed > 0:
        speed = float(rng.uniform(1 - aug.speed, 1 + aug.speed))
        n = max(1, int(round(len(x) / speed)))
        x = np.interp(np.arange(n) * speed, np.arange(len(x)), x).astype(np.float32)
    x = x * np.float32(10 ** (rng.uniform(-aug.gain_db, aug.gain_db) / 20))
    if rng.random() < aug.noise_prob:
        power = float(np.mean(x**2)) + 1e-10
        snr = rng.uniform(*aug.snr_db)
        x = x + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), len(x)).astype(np.float32)
    return x.astype(np.float32), speed


def pad_batch(audios: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(B, T_max) zero-padded float32 and (B,) lengths."""
    lens = np.array([len(a) for a in audios])
    out = np.zeros((len(audios), lens.max()), np.float32)
    for i, a in enumerate(audios):
        out[i, : len(a)] = a
    return out, lens


def random_crop(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(a window of n samples, its start); shorter audio is zero-padded at the end."""
    if len(x) <= n:
        return np.pad(x, (0, n - len(x))), 0
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start: start + n], start


def eval_clips(corpus: str | Path, cache: RoundTripCache, split: str, n: int,
               n_rt: int) -> tuple[list[tuple[np.ndarray, dict]], list[tuple[np.ndarray, dict]]]:
    """(original, round-trip) (audio, row) pairs: the first n (0 = all) and n_rt rows of the
    split's seeded order."""
    rows = split_order(corpus, split, cache.seed)
    orig = [(load_audio(corpus, r)[0], r) for r in (rows[:n] if n > 0 else rows)]
    rt_rows, rt = cache.get(split, n_rt) if n_rt > 0 else ([], {})
    return orig, [(rt[r["utt_id"]].astype(np.float32) / 32767, r) for r in rt_rows]


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-9)


def distractor(rng: np.random.Generator, n: int) -> np.ndarray:
    """A non-speech clip of n samples (label: no laughter, no speech): coloured noise, noise
    bursts at a laughter-like 3–7 Hz, a steady or pulsed tone, or near-silence; random level."""
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.integers(5)
    if kind == 0:
        x = _colored_noise(rng, n, float(rng.choice([0.0, 1.0, 2.0])))
    elif kind == 1:  # pulsed (unvoiced) noise: breath-like, must not count as laughter
        x = _colored_noise(rng, n, 1.0) * (np.sin(2 * np.pi * rng.uniform(3, 7) * t) > 0)
    elif kind == 2:
        x = np.sin(2 * np.pi * rng.uniform(80, 1000) * t)
    elif kind == 3:  # pulsed tone
        x = np.sin(2 * np.pi * rng.uniform(80, 400) * t) * (
            np.sin(2 * np.pi * rng.uniform(3, 7) * t) > 0)
    else:
        x = rng.normal(0, 1e-3, n)
    return (x * 10 ** rng.uniform(-2.5, -0.5)).astype(np.float32)
