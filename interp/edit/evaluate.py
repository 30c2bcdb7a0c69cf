"""`python -m interp.edit evaluate`: does TinyEdit do what the instruction asks, and only that?

On held-out pairs (held-out sentences spoken by held-out voices by default), `n` per operation,
the source is edited by TinyEdit and measured with the listening instruments (through
`interp.models.evaluate.Listener`: `p_male`, `laughter_probability`, `transcribe`; Praat voiced
duration and median F0), beside three references measured the same way: the source itself
(`identity`), the espeak-ng target (`oracle`) and the target through the codec (`codec_oracle`).

- edit done: gender → P(male) > 0.5 agrees with the target gender; faster / slower → voiced
  duration ratio to the source < 0.85 / > 1.15; add / remove laughter → laughter probability
  above / below 0.5; accent → not measured (no accent instrument; null);
- consistency: recogniser WER against the source text; speaker kept (median-F0 ratio to the
  source within ±12%, the acoustic judge's proxy) where the edit should keep it.
Then the MMAE judge (acoustic backend) scores IFR / CR / EMR beside Identity and Noise controls.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.audio.pitch import median_f0, voiced_duration
from interp.audio.tokenize_corpus import load_tokens
from interp.corpus.table import load_audio, load_table
from interp.edit.build import TOKENS, load_pairs
from interp.edit.data import make_edit_examples
from interp.edit.editor import TinyEditor
from interp.edit.model import TINYEDIT_DIR
from interp.edit.plan import OPERATIONS
from interp.models.evaluate import Listener
from interp.models.loss import heldout_loss
from interp.models.text_tokenizer import load_tokenizer
from interp.models.tinycosy import TinyCosy
from interp.paths import CODEC_DIR, TINYCOSY_DIR

log = logging.getLogger(__name__)
SYSTEMS = ("tinyedit", "identity", "oracle", "codec_oracle")
SPEAKER_TOL = 0.12  # median-F0 ratio within ±12%: same speaker (the acoustic judge's proxy)
KEEPS_SPEAKER = ("faster", "slower", "add_laughter", "remove_laughter", "accent")


@dataclass(frozen=True)
class EditEvalConfig:
    """What to edit and measure."""

    pairs: str = "runs/tinyedit/pairs"
    """edit-pairs folder (python -m interp.edit build)"""
    model: str = str(TINYEDIT_DIR)
    """TinyEdit folder"""
    codec: str = str(CODEC_DIR)
    """codec folder"""
    split: str = "heldout_voices"
    """pairs split to evaluate on (heldout_voices: unseen voices and sentences; all: every one)"""
    n: int = 6
    """pairs per operation"""
    operations: tuple[str, ...] = ()
    """operations to evaluate (empty: all)"""
    transcript: bool = True
    """give TinyEdit the source transcript (as in training, for 80% of examples)"""
    judge: bool = True
    """also write an MMAE set and judge it (acoustic backend) with Identity / Noise controls"""
    seed: int = 0
    """sampling seed"""
    out: str = ""
    """where eval.json and example wavs go (default: the model folder)"""
    judge_dir: str = "runs/tinyedit/judge"
    """where the MMAE set and the judge's files go"""
    examples: int = 1
    """pairs per operation whose wavs are kept in <out>/examples"""
    loss_pairs: int = 40
    """pairs per operation for the teacher-forced held-out loss (0: skip)"""
    baseline: str = str(TINYCOSY_DIR)
    """model whose held-out loss is reported beside TinyEdit's (the untuned TinyCosy)"""


def measure(listen: Listener, audio: np.ndarray, text: str) -> dict:
    ok = len(audio) > 1600
    return {"seconds": round(len(audio) / SAMPLE_RATE, 3),
            "voiced": round(voiced_duration(audio, SAMPLE_RATE), 3) if ok else 0.0,
            "f0": round(median_f0(audio, SAMPLE_RATE), 1) if ok else None,
            "p_male": listen.p_male(audio), "laughter": round(listen.laughter(audio), 4),
            "wer": listen.wer(audio, text)}


def _male(m: dict) -> bool | None:
    if m["p_male"] is not None:
        return m["p_male"] > 0.5
    return None if m["f0"] is None or m["f0"] != m["f0"] else m["f0"] < 145.0


def judge_one(pair: dict, src: dict, m: dict) -> dict:
    """Edit done? Speaker kept? Duration ratio, for one system's measurement `m`."""
    op = pair["operation"]
    ratio = m["voiced"] / src["voiced"] if src["voiced"] else None
    done: bool | None = None
    if op == "gender":
        male = _male(m)
        done = None if male is None else male == (pair["target_gender"] == "male")
    elif op in ("faster", "slower") and ratio is not None:
        done = ratio < 0.85 if op == "faster" else ratio > 1.15
    elif op in ("add_laughter", "remove_laughter"):
        done = (m["laughter"] > 0.5) == (op == "add_laughter")
    f0_ok = m["f0"] is not None and src["f0"] is not None and m["f0"] == m["f0"]
    kept = (abs(np.log(m["f0"] / src["f0"])) <= np.log(1 + SPEAKER_TOL)) if f0_ok else False
    return {"done": done, "speaker_kept": bool(kept) if op in KEEPS_SPEAKER else None,
            "duration_ratio": round(ratio, 3) if ratio is not None else None}


def _pick(cfg: EditEvalConfig) -> list[dict]:
    pairs = load_pairs(cfg.pairs, None if cfg.split == "all" else cfg.split)
    if cfg.split == "heldout_voices":  # neither voice of the pair heard in training
        seen = {v for p in load_pairs(cfg.pairs, "train")
                for v in (p["source_voice"], p["target_voice"])}
        pairs = [p for p in pairs if not {p["source_voice"], p["target_voice"]} & seen]
    if not pairs:
        raise ValueError(f"no {cfg.split} pairs in {cfg.pairs}")
    ops = cfg.operations or tuple(OPERATIONS)
    return [p for op in ops for p in [q for q in pairs if q["operation"] == op][: cfg.n]]


def loss_by_operation(cfg: EditEvalConfig) -> dict:
    """Teacher-forced next-token loss (nats) of the target speech, per operation, of TinyEdit
    and of the baseline (the weights it started from) on the same held-out pairs."""
    pairs = _pick(EditEvalConfig(**{**asdict(cfg), "n": cfg.loss_pairs}))
    tokens = load_tokens(Path(cfg.pairs) / TOKENS)
    out: dict = {op: {} for op in dict.fromkeys(p["operation"] for p in pairs)}
    for name, folder in (("tinyedit", cfg.model), ("baseline", cfg.baseline)):
        model, tok = TinyCosy.load(folder), load_tokenizer(folder)
        for op in out:
            ex = make_edit_examples([p for p in pairs if p["operation"] == op], tokens, tok,
                                    0.0 if cfg.transcript else 1.0)
            out[op][name] = round(heldout_loss(model, ex, 16), 4)
    return out


def _mean(xs: list) -> float | None:
    xs = [float(x) for x in xs if x is not None]
    return round(float(np.mean(xs)), 4) if xs else None


def summarize(rows: list[dict]) -> dict:
    """Per operation and system: edit-done rate, speaker kept, WER, duration ratio, P(male),
    laughter probability."""
    out: dict = {}
    for op in OPERATIONS:
        rs = [r for r in rows if r["operation"] == op]
        if not rs:
            continue
        out[op] = {"n": len(rs), "mmae_operation": OPERATIONS[op][0]}
        for s in SYSTEMS:
            out[op][s] = {
                "edit_done": _mean([r[s]["done"] for r in rs]),
                "speaker_kept": _mean([r[s]["speaker_kept"] for r in rs]),
                "wer": _mean([r[s]["wer"] for r in rs]),
                "duration_ratio": _mean([r[s]["duration_ratio"] for r in rs]),
                "p_male": _mean([r[s]["p_male"] for r in rs]),
                "laughter": _mean([r[s]["laughter"] for r in rs])}
    return out


def evaluate_edits(cfg: EditEvalConfig) -> dict:
    editor = TinyEditor(cfg.model, cfg.codec)
    listen = Listener(Path(cfg.pairs), editor.codec)
    out = Path(cfg.out or cfg.model)
    (out / "examples").mkdir(parents=True, exist_ok=True)
    utts = {r["utt_id"]: r for r in load_table(cfg.pairs)}
    rows, items, kept = [], [], {}
    for i, pair in enumerate(tqdm(_pick(cfg), desc="edit")):
        src_audio = load_audio(cfg.pairs, utts[pair["source_id"]])[0]
        tgt_audio = load_audio(cfg.pairs, utts[pair["target_id"]])[0]
        text = pair["text_plain"]
        audio = {"tinyedit": editor(pair["instruction"], src_audio,
                                    text if cfg.transcript else "", cfg.seed + i),
                 "identity": src_audio, "oracle": tgt_audio,
                 "codec_oracle": editor.codec.decode(editor.codec.encode(tgt_audio))}
        meas = {s: measure(listen, a, text) for s, a in audio.items()}
        row = {"pair_id": pair["pair_id"], "operation": pair["operation"],
               "instruction": pair["instruction"], "text": text,
               "source_voice": pair["source_voice"], "target_voice": pair["target_voice"]}
        for s, m in meas.items():
            row[s] = m | judge_one(pair, meas["identity"], m)
        rows.append(row)
        items.append({"pair": pair, "source": Path(cfg.pairs) / utts[pair["source_id"]]["path"],
                      "target": Path(cfg.pairs) / utts[pair["target_id"]]["path"],
                      "target_codec": audio["codec_oracle"], "output": audio["tinyedit"]})
        if kept.get(pair["operation"], 0) < cfg.examples:
            kept[pair["operation"]] = kept.get(pair["operation"], 0) + 1
            for s in ("tinyedit", "identity", "oracle"):
                sf.write(out / "examples" / f"{pair['pair_id']}_{pair['operation']}_{s}.wav",
                         audio[s], SAMPLE_RATE)
    result = {"by_operation": summarize(rows), "measured_with": listen.kind,
              "n_pairs": len(rows), "config": asdict(cfg)}
    if cfg.loss_pairs:
        result["heldout_loss_by_operation"] = loss_by_operation(cfg)
    if cfg.judge:
        from interp.judge.mmae_sets import judge_edits

        result["mmae_acoustic_judge"] = judge_edits(items, Path(cfg.judge_dir), SAMPLE_RATE)
    (out / "eval.json").write_text(json.dumps(result | {"samples": rows}, indent=1))
    return result


def main_evaluate(cfg: EditEvalConfig) -> None:
    r = evaluate_edits(cfg)
    print(f"\nTinyEdit on {r['n_pairs']} {cfg.split} pairs ({r['measured_with']}):")
    print(f"  {'operation':16s} " + "  ".join(f"{s:>22s}" for s in SYSTEMS))
    print(f"  {'':16s} " + "  ".join(f"{'done/spk/WER':>22s}" for _ in SYSTEMS))
    for op, d in r["by_operation"].items():
        cells = [f"{_fmt(d[s]['edit_done'])}/{_fmt(d[s]['speaker_kept'])}/{_fmt(d[s]['wer'])}"
                 for s in SYSTEMS]
        print(f"  {op:16s} " + "  ".join(f"{c:>22s}" for c in cells))
    for op, d in r.get("heldout_loss_by_operation", {}).items():
        print(f"  held-out loss {op:16s} TinyEdit {d['tinyedit']:.3f}  (untuned TinyCosy "
              f"{d['baseline']:.3f})")
    for name, s in r.get("mmae_acoustic_judge", {}).items():
        o = s["overall"]
        print(f"  MMAE (acoustic) {name:13s} IFR {_fmt(o['IFR'])}  CR {_fmt(o['CR'])}  "
              f"EMR {_fmt(o['EMR'])}")
    print(f"  → {Path(cfg.out or cfg.model) / 'eval.json'}")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"
