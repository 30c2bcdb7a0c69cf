"""Steering overhead: KV-cached generation unsteered vs with an SAE-latent edit (8 latents,
clamp, every speech position) and with a direction added, side by side in one run.

Every sequence is generated to a fixed length (the stop ids are masked until the maximum), so
all variants make the same number of tokens; the repeats are interleaved so that load changes
hit every variant alike, and the kept fraction is taken from process CPU time (1 thread), which a
busy shared machine disturbs far less than wall time (both are reported). Goal: steered generation keeps ≥ 90% of unsteered tokens/s.
`python -m benchmarks.steering` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import time
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


def run(n_seqs: int = 4, n_tokens: int = 120, repeats: int = 3) -> dict:
    if not (TINYCOSY_DIR / "model.safetensors").exists():
        return {"skipped": "no TinyCosy checkpoint"}
    engine = load_backbone("tinycosy", "cpu")
    model = engine.model
    d = model.cfg.hidden
    sae, sae_name = _sae(d)
    hook = f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"
    g = torch.Generator().manual_seed(0)
    n_text = 20
    reqs = [Request(torch.randint(0, 500, (n_text,), generator=g),
                    torch.randint(0, model.cfg.speech_codes, (60,), generator=g), n_text,
                    model.modality(n_text, 60, 0)) for _ in range(n_seqs)]
    ratio = n_tokens / n_text
    sampling = SamplingConfig(min_ratio=ratio, max_ratio=ratio)
    edit = LatentEdit(tuple(range(8)), (2.0,) * 8, "clamp")
    vec = torch.randn(d, generator=g)

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


def line(r: dict) -> str:
    if "skipped" in r:
        return f"steering: {r['skipped']}"
    return (f"steering: {r['tokens_per_cpu_s']} tokens per CPU-s ({r['tokens_per_s']} per wall-s);"
            f" kept vs unsteered {r['kept_vs_unsteered']} (goal ≥ 0.9 for sae_edit: "
            f"{r['goal_kept_ge_0.9']})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steering", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sequences (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    r = run(n_seqs=2, repeats=1) if args.quick else run()
    if args.out:
        args.out.write_text(json.dumps(r, indent=1))
    print(line(r))


if __name__ == "__main__":
    main()
