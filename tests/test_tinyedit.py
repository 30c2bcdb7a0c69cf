"""TinyEdit: edit-pair bookkeeping, fine-tuning from TinyCosy (with resume), an edit end to end,
the backbone behind the registry, and the evaluation's figures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from interp.audio.tokenize_corpus import load_tokens
from interp.corpus.table import load_table
from interp.corpus.voices import parse_voice
from interp.edit.build import PairsJob, load_pairs, run_build
from interp.edit.plan import OPERATIONS, EditPlanConfig, plan_pairs
from tests.conftest import ROOT, TINY_VOICES, make_commands

TINY_PLAN = dict(n_pairs=12, n_sentences=30, n_heldout_voices=2, heldout_frac=0.3,
                 voices=TINY_VOICES, seed=2)


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory, tiny_codec_dir) -> Path:
    out = tmp_path_factory.mktemp("pairs")
    run_build(PairsJob(out=out, codec=tiny_codec_dir, workers=1), EditPlanConfig(**TINY_PLAN))
    return out


@pytest.fixture(scope="module")
def tiny_tinyedit(tmp_path_factory, tiny_pairs, tiny_tinycosy) -> tuple[Path, dict, dict]:
    """Fine-tuned 3 steps, then resumed to 5: (export, first summary, second summary)."""
    from interp.edit.train import EditTrainConfig, train_edit

    run = tmp_path_factory.mktemp("tinyedit")
    cfg = dict(pairs=str(tiny_pairs), init=str(tiny_tinycosy[0]), out=str(run / "run"),
               export=str(run / "export"), batch_size=4, warmup=1, eval_every=4,
               eval_examples=4, ckpt_every=2, device="cpu")
    first = train_edit(EditTrainConfig(steps=3, **cfg))
    second = train_edit(EditTrainConfig(steps=5, **cfg))
    return run / "export", first, second


def test_plan_balanced_deterministic_and_split():
    voices = [parse_voice(v) for v in TINY_VOICES]
    cfg = EditPlanConfig(**{**TINY_PLAN, "n_pairs": 120})
    pairs = plan_pairs(cfg, voices, lambda v: True)
    assert [p.record() for p in pairs] == [p.record() for p in plan_pairs(cfg, voices,
                                                                          lambda v: True)]
    assert set(Counter(p.operation for p in pairs).values()) == {20}
    train = [p for p in pairs if p.split == "train"]
    held_v = [p for p in pairs if p.split == "heldout_voices"]
    held_s = [p for p in pairs if p.split != "train"]
    assert train and held_v and held_s
    train_voices = {p.source.voice.voice_id for p in train} | {
        p.target.voice.voice_id for p in train}
    assert not train_voices & {p.source.voice.voice_id for p in held_v}
    sources = {s: {p.source.voice.voice_id for p in pairs if (p.split == "heldout_voices") == h}
               for s, h in (("train", False), ("held", True))}
    for p in pairs:  # an accent edit's new voice never crosses to the other side
        assert p.target.voice.voice_id not in sources["held" if p.split != "heldout_voices"
                                                      else "train"]
    assert not {p.source.sentence_id for p in train} & {p.source.sentence_id for p in held_s}
    with pytest.raises(ValueError, match="unknown operations"):
        plan_pairs(EditPlanConfig(operations=("whisper",)), voices, lambda v: True)


def test_pairs_ground_truth(tiny_pairs):
    pairs = load_pairs(tiny_pairs)
    rows = {r["utt_id"]: r for r in load_table(tiny_pairs)}
    tokens = load_tokens(tiny_pairs / "tokens")
    assert len(pairs) == 12 and {p["operation"] for p in pairs} == set(OPERATIONS)
    for p in pairs:
        src, tgt = rows[p["source_id"]], rows[p["target_id"]]
        assert (p["mmae_operation"], p["granularity"]) == OPERATIONS[p["operation"]]
        assert src["text_plain"] == tgt["text_plain"] == p["text_plain"]
        assert p["source_id"] in tokens and p["target_id"] in tokens
        assert (tiny_pairs / src["path"]).exists() and src["split"] == p["split"]
        n_laugh = [sum(t["tag"] == "laughter" for t in r["tags"]) for r in (src, tgt)]
        op = p["operation"]
        if op == "gender":
            assert src["gender"] != tgt["gender"] == p["target_gender"]
            says_female = any(w in p["instruction"].lower() for w in ("female", "woman"))
            assert says_female == (p["target_gender"] == "female")
        elif op in ("faster", "slower"):
            assert src["voice_id"] == tgt["voice_id"] and src["rate_bin"] == "normal"
            assert tgt["rate_bin"] == ("fast" if op == "faster" else "slow")
        elif op == "add_laughter":
            assert n_laugh == [0, 1] and f"'{p['laughter_word']}'" in p["instruction"]
            assert f"{p['laughter_word']} [laughter]" in tgt["text"].replace(".", "")
        elif op == "remove_laughter":
            assert n_laugh == [1, 0] and p["mmae_operation"] == "removal"
        else:
            assert src["accent"] != tgt["accent"] and src["variant"] == tgt["variant"]
        if op not in ("faster", "slower"):
            assert src["rate"] == tgt["rate"]
    manifest = json.loads((tiny_pairs / "manifest.json").read_text())
    assert manifest["summary"]["pairs"] == 12


@pytest.mark.slow
def test_train_resumes_and_exports(tiny_tinyedit):
    export, first, second = tiny_tinyedit
    assert first["steps"] == 3 and second["steps"] == 5
    log = json.loads((export / "train.json").read_text())["log"]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "edit.json"):
        assert (export / name).exists(), name
    assert json.loads((export / "edit.json").read_text())["architecture"] == "tinyedit"


def test_backbone_via_registry(tiny_tinyedit, tiny_tinycosy):
    from interp.models.registry import load_backbone

    export = tiny_tinyedit[0]
    for name in (f"tinyedit:{export}", str(export)):
        bb = load_backbone(name, device="cpu")
        assert bb.name == "tinyedit" and "blocks.1.hook_resid_post" in bb.hook_points()
    out = bb.teacher_forced(torch.tensor([5, 6]), torch.tensor([1, 2, 3]), torch.tensor([4, 5]))
    assert out.logits.shape[0] == len(out.modality) == 9 and out.target_start == 6
    with pytest.raises(FileNotFoundError, match="no TinyEdit model"):
        load_backbone(f"tinyedit:{tiny_tinycosy[0]}", device="cpu")


def test_edit_wav_in_wav_out(tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir):
    from interp.edit.__main__ import main

    pair = load_pairs(tiny_pairs)[0]
    source = tiny_pairs / "wav" / f"{pair['source_id']}.wav"
    out = tmp_path / "edited.wav"
    main([pair["instruction"], "--source", str(source), "--out", str(out),
          "--model", str(tiny_tinyedit[0]), "--codec", str(tiny_codec_dir)])
    audio, sr = sf.read(out, dtype="float32")
    n_src = len(sf.read(source)[0]) / 640
    assert sr == 16000 and len(audio) % 640 == 0
    assert 0.4 * n_src - 1 <= len(audio) / 640 <= 2.5 * n_src + 1
    assert np.isfinite(audio).all()
    with pytest.raises(ValueError, match="empty instruction"):
        main(["  ", "--source", str(source), "--model", str(tiny_tinyedit[0]),
              "--codec", str(tiny_codec_dir)])


def test_run_edit_takes_a_config(tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir):
    """A notebook edits through EditConfig, no Namespace; the same seed gives the CLI's audio."""
    from interp.edit.__main__ import main
    from interp.edit.editor import EditConfig, run_edit

    pair = load_pairs(tiny_pairs)[0]
    cfg = EditConfig(pair["instruction"], tiny_pairs / "wav" / f"{pair['source_id']}.wav",
                     out=tmp_path / "a.wav", model=tiny_tinyedit[0], codec=tiny_codec_dir, seed=3)
    audio = run_edit(cfg)
    assert np.allclose(sf.read(cfg.out, dtype="float32")[0], audio, atol=1e-4)  # PCM16
    main([cfg.instruction, "--source", str(cfg.source), "--out", str(tmp_path / "b.wav"),
          "--model", str(cfg.model), "--codec", str(cfg.codec), "--seed", "3"])
    assert (tmp_path / "b.wav").read_bytes() == cfg.out.read_bytes()


def test_evaluate_figures_and_judge(tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir,
                                    tiny_tinycosy):
    from interp.edit.evaluate import SYSTEMS, EditEvalConfig, evaluate_edits

    r = evaluate_edits(EditEvalConfig(pairs=str(tiny_pairs), model=str(tiny_tinyedit[0]),
                                      codec=str(tiny_codec_dir), split="all", n=1,
                                      operations=("gender", "add_laughter", "remove_laughter"),
                                      out=str(tmp_path), judge_dir=str(tmp_path / "judge"),
                                      loss_pairs=2, baseline=str(tiny_tinycosy[0])))
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["n_pairs"] == r["n_pairs"] == len(saved["samples"]) == 3
    for op, d in r["by_operation"].items():
        assert set(SYSTEMS) <= set(d) and d["mmae_operation"] == OPERATIONS[op][0]
        if op in ("add_laughter", "remove_laughter"):  # the identity never does the edit
            assert d["identity"]["edit_done"] == 0.0
    judged = r["mmae_acoustic_judge"]
    assert set(judged) == {"tinyedit", "identity", "noise", "oracle", "codec_oracle"}
    assert judged["identity"]["overall"]["CR"] >= judged["noise"]["overall"]["CR"]
    assert list((tmp_path / "examples").glob("*_tinyedit.wav"))
    losses = r["heldout_loss_by_operation"]
    assert set(losses) == {"gender", "add_laughter", "remove_laughter"}
    assert all(set(d) == {"tinyedit", "baseline"} and d["tinyedit"] > 0 for d in losses.values())


def test_edit_done_rules_and_accent_rubric():
    from interp.edit.evaluate import judge_one
    from interp.judge.acoustic_backend import find_matcher
    from interp.judge.mmae_sets import edit_target, rubrics

    src = {"voiced": 2.0, "f0": 100.0, "p_male": 0.9, "laughter": 0.1}
    fast = {"voiced": 1.4, "f0": 104.0, "p_male": 0.9, "laughter": 0.1}
    assert judge_one({"operation": "faster"}, src, fast) == {
        "done": True, "speaker_kept": True, "duration_ratio": 0.7}
    assert judge_one({"operation": "slower"}, src, fast)["done"] is False
    female = {"voiced": 2.0, "f0": 190.0, "p_male": 0.1, "laughter": 0.1}
    r = judge_one({"operation": "gender", "target_gender": "female"}, src, female)
    assert r["done"] is True and r["speaker_kept"] is None
    accent = judge_one({"operation": "accent"}, src, fast)
    assert accent["done"] is None and accent["speaker_kept"] is True  # no accent instrument
    rub = rubrics(edit_target({"operation": "accent", "target_accent": "en-gb-scotland"}))
    assert rub[0]["right_choice"] == "Scottish" and find_matcher(rub[0]["question"]) is None
    # an edit is asked steering's questions: one rubric text per concept
    assert rubrics(edit_target({"operation": "faster"})) == rubrics("fast")
    assert rubrics(edit_target({"operation": "gender", "target_gender": "female"})) == \
        rubrics("female")
    removal = rubrics(edit_target({"operation": "remove_laughter"}))
    assert removal[0]["question"] == rubrics("laughter")[0]["question"]
    assert removal[0]["right_choice"] == "No" and find_matcher(removal[0]["question"]) is not None


def test_activations_cache_through_store_writer(tmp_path, tiny_tinyedit, tiny_pairs):
    from interp.edit.data import store_examples
    from interp.models.registry import load_backbone
    from interp.models.text_tokenizer import load_tokenizer
    from interp.store.writer import StoreSpec, write_store

    export = tiny_tinyedit[0]
    bb = load_backbone(f"tinyedit:{export}", device="cpu")
    pairs = load_pairs(tiny_pairs)[:4]
    triples = store_examples(pairs, load_table(tiny_pairs), load_tokens(tiny_pairs / "tokens"),
                             load_tokenizer(export))
    spec = StoreSpec(model="m", corpus="c", hook="hook_resid_post", layers=(1,),
                     d_model=bb.d_model, split="all", shard_utts=2)
    manifest = write_store(tmp_path / "acts", bb, spec, triples)
    assert manifest["complete"] and manifest["positions"] > 0


@pytest.fixture(scope="module")
def tiny_edit_sae(tmp_path_factory, tiny_tinyedit, tiny_pairs) -> tuple[Path, Path]:
    """(TinyEdit store, layer-1 SAE of TinyEdit) built by the real CLIs' code paths."""
    from sae.config import SAETrainConfig
    from sae.train import train

    root = tmp_path_factory.mktemp("edit_sae")
    cfg = SAETrainConfig(layer=1, d_sae=64, k=4, tokens=64 * 40, batch_size=64, lr=3e-3,
                         threshold_lr=0.3, dead_window=20, buffer=2000, eval_frac=0.34,
                         eval_rows=2000, eval_examples=0, ckpt_every=100,
                         out=str(root / "sae"), store=str(root / "acts"),
                         model=f"tinyedit:{tiny_tinyedit[0]}", corpus=str(tiny_pairs),
                         speech_tokens=str(tiny_pairs / "tokens"), device="cpu", threads=1)
    train(cfg)  # caches the store first
    return root / "acts", root / "sae"


def _compare_cfg(tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir, store, sae, **kw):
    from steering.edit_compare import EditSteerConfig

    return EditSteerConfig(**{**dict(
        sae=str(sae), layer=1, store=str(store), pairs=str(tiny_pairs),
        model=str(tiny_tinyedit[0]), split="train,heldout_sentences,"
        "heldout_voices", n=1, operations="gender,add_laughter", out=str(tmp_path / "cmp")),
        **kw})


@pytest.mark.slow
def test_steer_vs_instruct_table_resumes_and_refuses_other_saes(
        tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir, tiny_edit_sae, tiny_sae):
    from steering.edit_compare import METHODS, ROWS, compare

    cfg = _compare_cfg(tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir, *tiny_edit_sae)
    r = compare(cfg)
    assert set(r["summary"]) == {"gender", "add_laughter"}
    for by_method in r["summary"].values():
        assert set(by_method) == set(METHODS)
        assert all(s["edit_done"]["n"] <= 1 for s in by_method.values())
    assert {"none", "steer", "instruct", "identity", "noise", "oracle"} <= set(r["judge"])
    assert (tmp_path / "cmp" / "table.html").exists()
    lines = (tmp_path / "cmp" / ROWS).read_text().splitlines()
    assert len(lines) == 2 * len(METHODS)
    compare(cfg)  # a re-run only reports: nothing is edited again
    assert (tmp_path / "cmp" / ROWS).read_text().splitlines() == lines
    with pytest.raises(ValueError, match="chosen with another SAE or settings"):
        compare(dataclasses.replace(cfg, k=cfg.k + 1))  # would mix two latent selections
    with pytest.raises(ValueError, match="trained on model 'tinycosy'"):
        compare(_compare_cfg(tmp_path / "b", tiny_tinyedit, tiny_pairs, tiny_codec_dir,
                             tiny_edit_sae[0], tiny_sae))


def test_steering_the_editor_is_exact_at_zero_and_changes_tokens_when_strong(
        tiny_tinyedit, tiny_pairs, tiny_codec_dir, tiny_edit_sae):
    from interp.corpus.table import load_audio
    from interp.edit.editor import TinyEditor
    from sae.io import load_sae
    from steering.edit_items import EDIT_METHODS, EditItem, PairSource
    from steering.experiment import Steerer, Unit
    from steering.select import TargetSelection

    editor = TinyEditor(tiny_tinyedit[0], tiny_codec_dir)
    hook = "blocks.1.hook_resid_post"
    sae = load_sae(tiny_edit_sae[1], editor.backbone, hook)
    d = sae.cfg.d_in
    sel = TargetSelection("male", [0, 1, 2], [1.0, 1.0, 1.0], [1.0] * 3, 1.0, [0.0] * d,
                          [0.0] * d, [3, 4, 5], [1.0] * 3, [1.0] + [0.0] * (d - 1), [1, 1],
                          "contrastive")
    steerer = Steerer(editor.backbone, sae, hook, {"male": sel}, positions="speech", seed=7)
    pair = next(p for p in load_pairs(tiny_pairs) if p["operation"] == "gender"
                and p["target_gender"] == "male")
    row = next(r for r in load_table(tiny_pairs) if r["utt_id"] == pair["source_id"])
    item = EditItem(pair, PairSource(editor.backbone, lambda: load_audio(tiny_pairs, row)[0]))

    def edit(method: str, strength: float) -> list[int]:
        return steerer.tokens(Unit(item, EDIT_METHODS[method], "male", strength))

    plain = edit("instruct", 0.0)
    assert edit("instruct+steer", 0.0) == plain  # a zero-strength clamp is the identity
    assert edit("instruct+steer", 50.0) != plain
    assert edit("random_direction", 50.0) != edit("none", 0.0)


def _make_tinyedit(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-o", "install", "tinyedit", f"BIN={Path(sys.executable).parent}",
                           *overrides], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_make_tinyedit_trains_the_shipped_recipe_from_the_new_tinycosy(tmp_path):
    """`make tinyedit` trains data/tinyedit's recipe (its train.json config), from the TinyCosy
    `make tinycosy` exported when there is one, else from the shipped one."""
    cmds = make_commands("tinyedit", "TC=/nonexistent")
    train = next(c for c in cmds if "runs/tinyedit_open/export" in c and "train" in c)
    shipped = json.loads((ROOT / "data/tinyedit/train.json").read_text())["config"]
    flag = {w: train[i + 1] for i, w in enumerate(train[:-1]) if w.startswith("--")}
    for key in ("steps", "lr", "warmup", "eval_every", "eval_examples", "ckpt_every", "threads"):
        assert float(flag["--" + key.replace("_", "-")]) == float(shipped[key]), key
    assert flag["--precision"] == shipped["precision"] and "--compile" in train
    assert all(c[c.index("--init") + 1] == "data/tinycosy" for c in cmds if "--init" in c)
    evals = [c for c in cmds if "evaluate" in c]
    assert [c[c.index("--model") + 1] for c in evals] == ["runs/tinyedit_open/export",
                                                          "runs/tinyedit_open/untuned"]
    (tmp_path / "export").mkdir()  # once `make tinycosy` has exported, TinyEdit starts from it
    (tmp_path / "export" / "train.json").write_text("{}")
    assert {c[c.index("--init") + 1] for c in make_commands("tinyedit", f"TC={tmp_path}")
                                               if "--init" in c} == {
        f"{tmp_path}/export"}


@pytest.mark.slow
def test_make_tinyedit_at_toy_size(tmp_path, tiny_tinycosy, tiny_codec_dir):
    """Pairs → TinyEdit from a (toy) TinyCosy → evaluated, the untuned one beside it; run again,
    nothing is redone."""
    te = tmp_path / "te"
    plan = " ".join(f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, tuple | list) else v}"
                    for k, v in TINY_PLAN.items())
    args = [f"TE={te}", f"TE_INIT={tiny_tinycosy[0]}",
            f"TE_PAIRS={plan} --workers 1 --codec {tiny_codec_dir}",
            "TE_RECIPE=--steps 2 --batch-size 4 --warmup 1 --eval-every 2 --eval-examples 4 "
            "--ckpt-every 2 --threads 1", "TE_EVAL_N=1",
            f"TE_EVAL=--codec {tiny_codec_dir} --examples 0 --loss-pairs 2"]
    proc = _make_tinyedit(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"TinyEdit rebuilt from {tiny_tinycosy[0]}" in proc.stdout
    train = json.loads((te / "export" / "train.json").read_text())
    assert train["steps"] == 2 and train["init"] == str(tiny_tinycosy[0])
    for name in ("eval", "eval_untuned"):
        assert json.loads((te / name / "eval.json").read_text())["n_pairs"] > 0
    again = _make_tinyedit(*args)
    assert again.returncode == 0 and "params, from" not in again.stdout  # train's closing line
    assert json.loads((te / "export" / "train.json").read_text()) == train
