"""Steering overhead: KV-cached generation unsteered vs with an SAE-latent edit (8 latents,
clamp, every speech position) and with a direction added, side by side in one run.

Every sequence is generated to a fixed length (the stop ids are masked until the maximum), so
all variants make the same number of tokens; the repeats are interleaved so that load changes
hit every variant alike, and the kept fraction is taken from process CPU time (1 thread), which a
busy shared machine disturbs far less than wall time (both are reported). Goal: steered generation keeps ≥ 90% of unsteered tokens/s.

Batched (`run_batched`, issue 36): the same SAE-latent edit at a different strength in every row
(a strength sweep), made one by one (`generate_steered`) and in batches of 8
(`generate_steered_batch`), beside batched unsteered and batched direction-edit generation, on
prompts of different lengths (padding included). Goals: batched steered ≥ 3× the one-by-one
steered tokens per CPU-second, and ≥ 0.9× batched unsteered; the batched tokens must equal the
one-by-one tokens (`same_tokens`).
`python -m benchmarks.steering` runs both alone.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.models.backbone import Request
from interp.models.generate import SamplingConfig
from interp.models.registry import load_backbone
from interp.paths import TINYCOSY_DIR
from steering.steer import (
    LatentEdit,
    direction_intervention,
    generate_steered,
    generate_steered_batch,
    position_mask,
    sae_intervention,
)

SAE_DIRS = (Path("runs/tinycosy/sae/layer_12"), Path("runs/demo/sae/layer_12"))


def _sae(d_in: int, d_sae: int = 2048):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    for folder in SAE_DIRS:
        if (folder / "cfg.json").exists():
            from sae.io import load_sae

            sae = load_sae(folder)
            if sae.cfg.d_in == d_in:
                return sae, str(folder)
    torch.manual_seed(0)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, d_in ** -0.5)
        sae.threshold.fill_(0.1)
    return sae, "random JumpReLU (no trained SAE found)"


@dataclass
class Setup:
    """What both parts share: the engine, an SAE at the middle layer's residual, random prompts
    of `n_text` text tokens, sampling to a fixed length, an 8-latent clamp and a direction."""

    engine: object
    sae: object
    sae_name: str
    hook: str
    reqs: list[Request]
    sampling: SamplingConfig
    edit: LatentEdit
    vec: torch.Tensor


def _setup(prompt_lengths: list[int], n_tokens: int, n_text: int = 20) -> Setup:
    engine = load_backbone("tinycosy", "cpu")
    model = engine.model
    d = model.cfg.hidden
    sae, sae_name = _sae(d)
    g = torch.Generator().manual_seed(0)
    reqs = [Request(torch.randint(0, 500, (n_text,), generator=g),
                    torch.randint(0, model.cfg.speech_codes, (n,), generator=g), n_text,
                    model.modality(n_text, n, 0)) for n in prompt_lengths]
    ratio = n_tokens / n_text
    return Setup(engine, sae, sae_name, f"blocks.{model.cfg.n_layers // 2}.hook_resid_post", reqs,
                 SamplingConfig(min_ratio=ratio, max_ratio=ratio),
                 LatentEdit(tuple(range(8)), (2.0,) * 8, "clamp"), torch.randn(d, generator=g))


def run(n_seqs: int = 4, n_tokens: int = 120, repeats: int = 3, batch: int = 8) -> dict:
    if not (TINYCOSY_DIR / "model.safetensors").exists():
        return {"skipped": "no TinyCosy checkpoint"}
    out = run_unbatched(n_seqs, n_tokens, repeats)
    out["batched"] = run_batched(max(n_seqs, batch), n_tokens, repeats, batch)
    return out


def run_unbatched(n_seqs: int = 4, n_tokens: int = 120, repeats: int = 3) -> dict:
    su = _setup([60] * n_seqs, n_tokens)
    engine, sae, hook, reqs, sampling, edit, vec = (su.engine, su.sae, su.hook, su.reqs,
                                                   su.sampling, su.edit, su.vec)
    sae_name = su.sae_name

    def ivs(kind: str, req: Request) -> list:
        mask = position_mask("speech", req.modality)
        if kind == "sae_edit":
            return [sae_intervention(sae, hook, edit, 4.0, mask)]
        if kind == "direction":
            return [direction_intervention(hook, vec, mask)]
        return []

    best: dict[str, float] = {}  # wall seconds
    cpu: dict[str, float] = {}  # process CPU seconds: steadier on a shared machine
    tokens: dict[str, int] = {}
    with torch.no_grad():
        generate_steered(engine, reqs[0], ivs("sae_edit", reqs[0]), seed=0, sampling=sampling)
        for _ in range(repeats):
            for kind in ("unsteered", "sae_edit", "direction"):
                start, c0, n = time.perf_counter(), time.process_time(), 0
                for i, req in enumerate(reqs):
                    n += len(generate_steered(engine, req, ivs(kind, req), seed=i,
                                              sampling=sampling))
                best[kind] = min(best.get(kind, float("inf")), time.perf_counter() - start)
                cpu[kind] = min(cpu.get(kind, float("inf")), time.process_time() - c0)
                tokens[kind] = n
    tps = {k: round(tokens[k] / v, 1) for k, v in best.items()}
    tps_cpu = {k: round(tokens[k] / v, 1) for k, v in cpu.items()}
    kept = {k: round(tps_cpu[k] / tps_cpu["unsteered"], 3) for k in ("sae_edit", "direction")}
    kept_wall = {k: round(tps[k] / tps["unsteered"], 3) for k in ("sae_edit", "direction")}
    return {"tokens_per_s": tps, "tokens_per_cpu_s": tps_cpu, "kept_vs_unsteered": kept,
            "kept_vs_unsteered_wall": kept_wall, "tokens": tokens,
            "goal_kept_ge_0.9": kept["sae_edit"] >= 0.9, "sae": sae_name, "hook": hook,
            "threads": torch.get_num_threads(), "n_seqs": n_seqs, "repeats": repeats}


def run_batched(n_seqs: int = 8, n_tokens: int = 120, repeats: int = 3, batch: int = 8) -> dict:
    """Steered tokens per CPU-second one by one vs in batches of `batch`, and batched steered vs
    batched unsteered; `n_seqs` sequences of `n_tokens` each, best of `repeats` (interleaved)."""
    if not (TINYCOSY_DIR / "model.safetensors").exists():
        return {"skipped": "no TinyCosy checkpoint"}
    lengths = [40 + (35 * i) // max(n_seqs - 1, 1) for i in range(n_seqs)]  # 40..75: padding
    su = _setup(lengths, n_tokens)
    engine, sae, hook, reqs, sampling, edit, vec = (su.engine, su.sae, su.hook, su.reqs,
                                                   su.sampling, su.edit, su.vec)
    sae_name = su.sae_name
    strengths = [1.0 + 7.0 * i / max(n_seqs - 1, 1) for i in range(n_seqs)]  # a strength sweep
    seeds = list(range(n_seqs))

    def ivs(kind: str) -> list[list]:
        rows = zip(strengths, [position_mask("speech", r.modality) for r in reqs], strict=True)
        if kind == "sae_edit":
            return [[sae_intervention(sae, hook, edit, s, m)] for s, m in rows]
        if kind == "direction":
            return [[direction_intervention(hook, s * vec, m)] for s, m in rows]
        return [[] for _ in reqs]

    def one_by_one(kind: str) -> list[list[int]]:
        return [generate_steered(engine, r, iv, s, sampling)
                for r, iv, s in zip(reqs, ivs(kind), seeds, strict=True)]

    def batched(kind: str) -> list[list[int]]:
        all_ivs, out = ivs(kind), []
        for i in range(0, n_seqs, batch):
            out += generate_steered_batch(engine, reqs[i : i + batch], all_ivs[i : i + batch],
                                          seeds[i : i + batch], sampling)
        return out

    variants = {"one_by_one_sae_edit": lambda: one_by_one("sae_edit"),
                "batched_sae_edit": lambda: batched("sae_edit"),
                "batched_direction": lambda: batched("direction"),
                "batched_unsteered": lambda: batched("unsteered")}
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    tokens: dict[str, list[list[int]]] = {}
    with torch.no_grad():
        batched("sae_edit")  # warm-up
        for _ in range(repeats):
            for kind, fn in variants.items():
                start, c0 = time.perf_counter(), time.process_time()
                tokens[kind] = fn()
                best[kind] = min(best.get(kind, float("inf")), time.perf_counter() - start)
                cpu[kind] = min(cpu.get(kind, float("inf")), time.process_time() - c0)
    n = {k: sum(map(len, v)) for k, v in tokens.items()}
    tps = {k: round(n[k] / v, 1) for k, v in best.items()}
    tps_cpu = {k: round(n[k] / v, 1) for k, v in cpu.items()}
    speedup = round(tps_cpu["batched_sae_edit"] / tps_cpu["one_by_one_sae_edit"], 2)
    kept = {k: round(tps_cpu[f"batched_{k}"] / tps_cpu["batched_unsteered"], 3)
            for k in ("sae_edit", "direction")}
    return {"tokens_per_cpu_s": tps_cpu, "tokens_per_s": tps, "tokens": n,
            "speedup_batched_vs_one_by_one": speedup, "kept_vs_batched_unsteered": kept,
            "same_tokens": tokens["batched_sae_edit"] == tokens["one_by_one_sae_edit"],
            "goal_speedup_ge_3": speedup >= 3, "goal_kept_ge_0.9": kept["sae_edit"] >= 0.9,
            "batch": batch, "n_seqs": n_seqs, "n_tokens": n_tokens, "repeats": repeats,
            "sae": sae_name, "hook": hook, "threads": torch.get_num_threads()}


def line(r: dict) -> str:
    if "skipped" in r:
        return f"steering: {r['skipped']}"
    out = (f"steering: {r['tokens_per_cpu_s']} tokens per CPU-s ({r['tokens_per_s']} per "
           f"wall-s); kept vs unsteered {r['kept_vs_unsteered']} (goal ≥ 0.9 for sae_edit: "
           f"{r['goal_kept_ge_0.9']})")
    return out + ("\n" + batched_line(r["batched"]) if "batched" in r else "")


def batched_line(r: dict) -> str:
    if "skipped" in r:
        return f"steering, batched: {r['skipped']}"
    return (f"steering, batched ({r['batch']} rows): {r['tokens_per_cpu_s']} tokens per CPU-s; "
            f"batched/one-by-one steered {r['speedup_batched_vs_one_by_one']}× (goal ≥ 3: "
            f"{r['goal_speedup_ge_3']}), steered/unsteered {r['kept_vs_batched_unsteered']} "
            f"(goal ≥ 0.9: {r['goal_kept_ge_0.9']}), same tokens as one by one: "
            f"{r['same_tokens']}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steering", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sequences (a smoke run)")
    parser.add_argument("--tokens", type=int, default=120, help="speech tokens per sequence")
    parser.add_argument("--batch", type=int, default=8, help="rows per batch (batched part)")
    parser.add_argument("--only", choices=("all", "unbatched", "batched"), default="all",
                        help="run one part only")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = ({"n_seqs": 2, "repeats": 1} if args.quick else {}) | {"n_tokens": args.tokens}
    if args.only == "batched":
        r = run_batched(**{**size, "n_seqs": max(size.get("n_seqs", 8), args.batch)},
                        batch=args.batch)
    elif args.only == "unbatched":
        r = run_unbatched(**size)
    else:
        r = run(**size, batch=args.batch)
    if args.out:
        args.out.write_text(json.dumps(r, indent=1))
    print(batched_line(r) if args.only == "batched" else line(r))


if __name__ == "__main__":
    main()
