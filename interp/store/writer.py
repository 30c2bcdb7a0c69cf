"""Write residual-stream activations of teacher-forced corpus passes into sharded .npy files.

Folder layout (`runs/<model>/acts/`):
    manifest.json                 model and corpus fingerprints, hook, layers, shards
    meta/shard_00000.npz          per position: utt, src_utt, position, token, modality, t0, t1
    layer_12/shard_00000.npy      (N, d_model) float16, memory-mappable
A shard is complete when its meta file exists (written last, atomically), so a killed run resumes
at the first incomplete shard with no position lost or duplicated. SIGINT/SIGTERM stop the run
after the shard in progress. Several sequences go through one forward pass (right-padded,
sorted by length inside a shard; `write_store(batch_size=…)`), the padding never stored. The
manifest records what defines the content (model and corpus fingerprints, hook, layers, split,
the forward's precision, the utterance selection), not the batch size; a re-run with a larger selection
extends the store (rewriting the short last shard), any other difference is refused in one line
(`interp.store.check`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_json
from interp.cli import StageInterrupted, stop_requests
from interp.device import forward_precision
from interp.hooks import capture
from interp.models.backbone import rows_per_forward
from interp.models.data import Example
from interp.store.check import plan_shards, selection_digest, shard_name

MANIFEST = "manifest.json"
MODALITY_CODES = {"text": 0, "speech": 1, "special": 2}
TOKEN_RATE = 25.0


def fingerprint(path: str | Path) -> str:
    """sha256 prefix of a file (model weights, corpus table)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class StoreSpec:
    """What a store holds; two runs with different specs never share a folder."""

    model: str  # model fingerprint
    corpus: str  # corpus fingerprint
    hook: str  # e.g. "hook_resid_post"
    layers: tuple[int, ...]
    d_model: int
    split: str
    shard_utts: int
    dtype: str = "fp32"  # precision of the forward passes (a store made before it had fp32)


def position_meta(ex: Example, utt_index: int, prompt_index: int, modality: list[str],
                  eos: int) -> dict[str, np.ndarray]:
    """Per-position bookkeeping of [sos] text [task_id] prompt target: the token at each
    position, its modality and, for speech, the utterance and seconds it sounds in."""
    n_t, n_p, n_g = len(ex.text_ids), len(ex.prompt), len(ex.target)
    T = len(modality)
    token = np.concatenate([[-1], ex.text_ids.numpy(), [-1], ex.prompt.numpy(), ex.target.numpy()])
    src = np.full(T, utt_index, np.int32)
    j = np.full(T, -1.0)
    p0, g0 = 2 + n_t, 2 + n_t + n_p
    src[p0:g0] = prompt_index
    j[p0:g0] = np.arange(n_p)
    j[g0:] = np.arange(n_g)
    t0 = np.where(j >= 0, j / TOKEN_RATE, np.nan).astype(np.float32)
    return {"utt": np.full(T, utt_index, np.int32), "src_utt": src,
            "position": np.arange(T, dtype=np.int32), "token": token.astype(np.int32),
            "modality": np.array([MODALITY_CODES[m] for m in modality], np.int8),
            "t0": t0, "t1": (t0 + 1 / TOKEN_RATE).astype(np.float32)}


def length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indices grouped `size` at a time in order of length (longest first), so that rows padded
    to the longest of their batch carry little padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def capture_examples(backbone, names: list[str], examples: list[tuple[Example, int, int]],
                     batch_size: int = 1, dtype: str = "fp32",
                     store_dtype: torch.dtype = torch.float16, stop: bool = True
                     ) -> list[tuple[dict[str, np.ndarray], list[str]]]:
    """Per example, in the order given: ({hook name: (T, D) activations}, modality of its T
    positions). Teacher-forced `batch_size` rows per forward pass (1 where the backbone cannot
    batch), sorted by length into batches; a row's padding positions are never returned. `dtype`
    is the forward's precision (`interp.device.forward_precision`), `store_dtype` what the
    activations are kept in; `stop` cuts each forward after the deepest layer in `names`."""
    size = rows_per_forward(backbone, batch_size)
    device = next(backbone.model.parameters()).device
    seqs = [(ex.text_ids, ex.prompt, ex.target) for ex, _, _ in examples]
    # a cut forward returns nothing: each row's modality then comes from the module
    stop = stop and hasattr(backbone.model, "modality")
    out: list = [None] * len(examples)
    for group in length_batches([sum(len(x) for x in s) for s in seqs], size):
        tfs = None
        with (torch.no_grad(), capture(backbone.model, names, dtype=store_dtype,
                                       stop=stop) as cache,
              forward_precision(device, dtype)):
            if len(group) == 1:
                tfs = [backbone.teacher_forced(*seqs[group[0]])]
            else:
                tfs = backbone.teacher_forced_batch([seqs[i] for i in group])
        for row, i in enumerate(group):
            modality = (backbone.model.modality(*(len(x) for x in seqs[i])) if tfs is None
                        else tfs[row].modality)
            n = len(modality)
            out[i] = ({name: cache[name][row, :n].numpy() for name in names}, modality)
    return out


def write_shard(out: Path, index: int, backbone, hook: str, layers: tuple[int, ...],
                examples: list[tuple[Example, int, int]], batch_size: int = 1,
                dtype: str = "fp32", stop: bool = True) -> int:
    """Capture `layers` for `examples` [(example, utt index, prompt utt index)], `batch_size` per
    forward pass, in the order given (each forward cut after the deepest of `layers` unless
    `stop=False`); returns positions."""
    names = [f"blocks.{layer}.{hook}" for layer in layers]
    captured = capture_examples(backbone, names, examples, batch_size, dtype, stop=stop)
    metas = [position_meta(ex, ui, pi, modality, backbone.model.eos)
             for (ex, ui, pi), (_, modality) in zip(examples, captured, strict=True)]
    name = shard_name(index)
    (out / "meta" / f"{name}.npz").unlink(missing_ok=True)  # rewriting: not done until re-marked
    for layer, n in zip(layers, names, strict=True):
        folder = out / f"layer_{layer}"
        folder.mkdir(parents=True, exist_ok=True)
        block = np.concatenate([acts[n] for acts, _ in captured])
        atomic_save(folder / f"{name}.npy", lambda p, a=block: np.save(p, a))
    meta = {k: np.concatenate([m[k] for m in metas]) for k in metas[0]}
    (out / "meta").mkdir(parents=True, exist_ok=True)
    atomic_save(out / "meta" / f"{name}.npz", lambda p: np.savez(p, **meta))  # last: "done"
    return len(meta["utt"])


def open_store(out: Path, spec: StoreSpec) -> dict:
    """Create the manifest, or check that an existing store was built from the same things."""
    path = out / MANIFEST
    if path.exists():
        try:
            manifest = json.loads(path.read_text())
            old = {"dtype": "fp32", **manifest["spec"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is corrupt ({exc}); delete the folder or use another "
                             "--out") from None
        if (old["model"], old["corpus"]) != (spec.model, spec.corpus):
            raise ValueError(f"{out} was cached from another model or corpus "
                             f"(model {old['model']}, corpus {old['corpus']}); delete it or "
                             "use another --out")
        new = {**asdict(spec), "layers": list(spec.layers)}
        if old != new:
            diff = ", ".join(f"{k} {old.get(k)!r} here, {v!r} asked" for k, v in new.items()
                             if old.get(k) != v)
            raise ValueError(f"{out} holds another cache ({diff}); use another --out")
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"spec": {**asdict(spec), "layers": list(spec.layers)}, "shards": {}}
    atomic_write_json(path, manifest)
    return manifest


def _finalize(out: Path, manifest: dict, chunks: list[list[int]], n_layers: int) -> dict:
    """Count the positions of every finished shard (its meta file is its completion mark) and
    record the utterance selection the store holds."""
    shards = {}
    for i in range(len(chunks)):
        meta = out / "meta" / f"{shard_name(i)}.npz"
        if meta.exists():
            with np.load(meta) as z:
                shards[meta.stem] = len(z["utt"])
    utts = [u for c in chunks for u in c]
    manifest |= {"shards": shards, "complete": len(shards) == len(chunks),
                 "positions": int(sum(shards.values())), "model_layers": n_layers,
                 "selection": {"n_utts": len(utts), "digest": selection_digest(utts)}}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def _write_mine(out: Path, backbone, spec: StoreSpec, chunks: list, todo: list[int],
                done: int, desc: str, quiet: bool, batch_size: int) -> None:
    """Write the shards `todo` (`done` others are finished); on SIGINT/SIGTERM finish the shard
    in progress, then stop."""
    with stop_requests() as stop:
        for i in tqdm(todo, desc=desc, unit="shard", disable=quiet):
            write_shard(out, i, backbone, spec.hook, spec.layers, chunks[i], batch_size,
                        spec.dtype)
            done += 1
            if stop.requested and done < len(chunks):
                raise StageInterrupted(f"{done} of {len(chunks)} shards of {out} are written and "
                                       "kept; run the same command again to finish")


def write_store(out: Path, backbone, spec: StoreSpec, examples: list[tuple[Example, int, int]],
                rank: int = 0, world: int = 1, barrier=None, batch_size: int = 1) -> dict:
    """Cache every shard not yet complete; returns the manifest with per-shard position counts.

    `batch_size` sequences go through each forward pass, sorted by length inside a shard (the
    unit of resuming); the shard holds them in the order given, so the store is the same for
    any batch size (to fp16 rounding of float differences ~1e-6).

    With `world` > 1 (torchrun), rank r writes shards r, r + world, …; rank 0 opens the store
    first and writes the final manifest after everyone is done (`barrier` synchronises)."""
    if not spec.layers or not examples:
        raise ValueError(f"nothing to cache into {out}: "
                         + ("no layer given" if not spec.layers else "no utterance selected"))
    if rank == 0:
        open_store(out, spec)
    if barrier:
        barrier()
    manifest = open_store(out, spec)  # every rank checks the fingerprints
    chunks = [examples[i : i + spec.shard_utts] for i in range(0, len(examples), spec.shard_utts)]
    utts = [[ui for _, ui, _ in c] for c in chunks]
    todo = plan_shards(out, utts, spec.layers, spec.d_model)  # every rank: same files, same answer
    mine = [i for i in todo if i % world == rank]
    desc = f"cache {spec.hook} {list(spec.layers)}" + (f" rank {rank}" if world > 1 else "")
    _write_mine(out, backbone, spec, chunks, mine, len(chunks) - len(todo), desc, quiet=rank > 0,
                batch_size=batch_size)
    if barrier:
        barrier()
    if rank == 0:
        manifest = _finalize(out, manifest, utts, backbone.n_layers)
    if barrier:
        barrier()
    return json.loads((out / MANIFEST).read_text())
