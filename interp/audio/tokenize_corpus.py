"""Speech tokens for every utterance of a corpus, in resumable shards (what TinyCosy trains on).

Output folder:
    manifest.json            the tokenizer's checksum (`codec`), corpus folder, shard list; tokens
                             of a backbone's own speech tokenizer (`write_tokens`, e.g.
                             CosyVoice3's) also name it (`tokenizer`, `model`)
    shard_00000.npz          utt_ids (S,), offsets (S+1,), tokens (sum of lengths,) int16
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from interp.atomic import atomic_save
from interp.audio.codec import CONFIG, WEIGHTS, SpeechCodec
from interp.corpus.table import load_audio, load_table

SHARD = 256
MANIFEST = "manifest.json"


def codec_checksum(folder: str | Path) -> str:
    h = hashlib.sha256()
    for name in (WEIGHTS, CONFIG):
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=2)
def _codec(folder: str) -> SpeechCodec:
    return SpeechCodec.load(folder)


def _tokenize_shard(args: tuple[str, str, list[dict], str]) -> int:
    corpus, codec_dir, rows, path = args
    codec = _codec(codec_dir)
    toks = [codec.encode(*load_audio(corpus, r)).astype(np.int16) for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in toks])])
    atomic_save(Path(path), lambda p: np.savez(p, utt_ids=np.array([r["utt_id"] for r in rows]),
                                               offsets=offsets, tokens=np.concatenate(toks)))
    return len(rows)


def tokenize_corpus(corpus: Path, codec_dir: Path, out: Path, workers: int | None = None) -> dict:
    """Encode every utterance not yet in a finished shard; returns the manifest."""
    rows = load_table(corpus)
    out.mkdir(parents=True, exist_ok=True)
    checksum = codec_checksum(codec_dir)
    manifest_path = out / MANIFEST
    if manifest_path.exists() and json.loads(manifest_path.read_text())["codec"] != checksum:
        raise ValueError(f"{out} holds tokens of another codec; use a new --out or delete it")
    shards = [rows[i : i + SHARD] for i in range(0, len(rows), SHARD)]
    names = [f"shard_{i:05d}.npz" for i in range(len(shards))]
    todo = [(str(corpus), str(codec_dir), s, str(out / n))
            for s, n in zip(shards, names, strict=True) if not (out / n).exists()]
    with tqdm(total=len(rows), initial=len(rows) - sum(len(t[2]) for t in todo),
              desc="tokenize", unit="utt") as bar:
        if (workers or os.cpu_count() or 1) == 1:
            for t in todo:
                bar.update(_tokenize_shard(t))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for n in pool.map(_tokenize_shard, todo):
                    bar.update(n)
    manifest = {"codec": checksum, "codec_dir": str(codec_dir), "n_codes": _codec(str(codec_dir)).n_codes,
                "corpus": str(corpus),
                "utterances": len(rows), "shards": names}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def write_tokens(corpus: Path, out: Path, encode: Callable[[np.ndarray, int], np.ndarray],
                 source: dict) -> dict:
    """Tokens of every utterance not yet in a finished shard by `encode(audio, sr)` (one
    process: a backbone's own speech tokenizer), the same folder layout as `tokenize_corpus`.
    `source` names the tokenizer: `codec` (its checksum, checked on resume), `tokenizer`,
    `model` and `n_codes`; returns the manifest."""
    rows = load_table(corpus)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists() and json.loads(manifest_path.read_text())["codec"] != source["codec"]:
        raise ValueError(f"{out} holds tokens of another speech tokenizer; use a new --out or "
                         "delete it")
    shards = [rows[i : i + SHARD] for i in range(0, len(rows), SHARD)]
    names = [f"shard_{i:05d}.npz" for i in range(len(shards))]
    todo = [(s, out / n) for s, n in zip(shards, names, strict=True) if not (out / n).exists()]
    with tqdm(total=len(rows), initial=len(rows) - sum(len(s) for s, _ in todo),
              desc="tokenize", unit="utt") as bar:
        for shard, path in todo:
            toks = []
            for r in shard:
                try:
                    toks.append(np.asarray(encode(*load_audio(corpus, r))).astype(np.int16))
                except ValueError as exc:
                    raise ValueError(f"utterance {r['utt_id']} ({r.get('source') or r['path']}): "
                                     f"{exc}") from exc
                bar.update(1)
            offsets = np.concatenate([[0], np.cumsum([len(t) for t in toks])])
            atomic_save(path, lambda p, toks=toks, offsets=offsets, shard=shard: np.savez(
                p, utt_ids=np.array([r["utt_id"] for r in shard]), offsets=offsets,
                tokens=np.concatenate(toks)))
    manifest = {**source, "corpus": str(corpus), "utterances": len(rows), "shards": names}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def load_token_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no speech tokens in {folder}; make them with "
                                "`python -m interp.audio tokenize`")
    return json.loads(path.read_text())


def load_tokens(folder: str | Path) -> dict[str, np.ndarray]:
    """utt_id → (N,) int64 speech tokens, from a finished token folder."""
    folder = Path(folder)
    out: dict[str, np.ndarray] = {}
    for name in load_token_manifest(folder)["shards"]:
        with np.load(folder / name) as z:
            off = z["offsets"]
            for i, u in enumerate(z["utt_ids"]):
                out[str(u)] = z["tokens"][off[i] : off[i + 1]].astype(np.int64)
    return out
