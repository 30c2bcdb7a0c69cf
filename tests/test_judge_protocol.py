"""Shuffles, prompts, reply parsing, majority vote, option mapping, metrics arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interp.judge import options as opt
from interp.judge.audio import AudioPart, clear_caches
from interp.judge.format import AudioRef, JudgeItem, Operation, Rubric, Sample, question_refs
from interp.judge.metrics import per_sample, rubric_result, taxonomy
from interp.judge.protocol import (
    build_messages,
    load_prompts,
    majority,
    parse_reply,
    plan_queries,
    shuffles,
)


def test_shuffles_seeded_distinct_and_prefix_stable() -> None:
    opts = ["right", "w1", "w2", "None of the above"]
    a = shuffles(opts, 3, 0, "id", 1)
    assert a == shuffles(opts, 3, 0, "id", 1)
    assert len(set(a)) == 3 and all(sorted(p) == [0, 1, 2, 3] for p in a)
    assert shuffles(opts, 5, 0, "id", 1)[:3] == a  # asking more keeps the first ones
    assert a != shuffles(opts, 3, 1, "id", 1) or a != shuffles(opts, 3, 0, "id", 2)
    assert len(shuffles(["a", "b"], 3, 0, "x")) == 3  # fewer permutations than queries: repeats


def test_majority_two_of_three() -> None:
    assert majority([True, True, False]) and majority([True, False, True])
    assert not majority([True, False, False]) and not majority([False, False, False])
    assert majority([True, True, True])


@pytest.mark.parametrize(("text", "n", "choice"), [
    ('{"reason": "high pitch", "choice": "B"}', 3, "B"),
    ('Sure!\n```json\n{"reason": "r", "choice": "c"}\n```', 3, "C"),
    ("<think>maybe {\"choice\": \"A\"}</think>{\"reason\": \"x\", \"choice\": \"B\"}", 3, "B"),
    ("B", 2, "B"),
    ("(A)", 2, "A"),
    ('"choice": "A"', 2, "A"),
    ('{"reason": "r", "choice": "D"}', 3, None),  # outside the options
    ("I would say the second one", 3, None),
    ("", 3, None),
    ('{"reason": "no choice key"}', 3, None),
])
def test_parse_reply(text: str, n: int, choice: str | None) -> None:
    r = parse_reply(text, n)
    assert r.choice == choice
    assert (r.error is None) == (choice is not None)


def test_question_refs_and_slices() -> None:
    refs = question_refs("Does <audio output>[1.5:3] match <audio input2> [0:2.0s]? And [4:5]?")
    assert [r.label for r in refs] == ["<audio output>", "<audio output>[1.5:3]",
                                       "<audio input2>", "<audio input2>[0:2.0]",
                                       "<audio input2>[4:5]"]
    assert refs[1] == AudioRef(0, 1.5, 3.0)
    assert question_refs("bare [1:2] slice")[0].index == 0
    assert question_refs("<audio input>")[0].index == 1


def _item(tmp_path: Path, question: str) -> JudgeItem:
    paths = []
    for name, dur in (("out", 2.0), ("in1", 3.0)):
        p = tmp_path / f"{name}.wav"
        sf.write(p, np.zeros(int(16000 * dur), dtype=np.float32), 16000)
        paths.append(str(p))
    clear_caches()
    rubric = Rubric("Consistency", question, "yes", ("no", "None of the above"))
    s = Sample("a" * 24, "single", "speech", ("global",), (Operation("global", "alteration"),),
               (rubric,), ("in1.wav",))
    return JudgeItem(s, paths[0], (paths[1],))


def test_prompt_has_labels_options_and_cut_slice(tmp_path: Path) -> None:
    item = _item(tmp_path, "Is <audio input1>[0.5:1.5] the same as <audio output>?")
    queries = plan_queries(item, 3, seed=0)
    assert len(queries) == 3 and {q.right_letter for q in queries} <= {"A", "B", "C"}
    q = queries[0]
    msgs = build_messages(load_prompts(), q)
    assert msgs[0]["role"] == "system" and "audio analysis assistant" in msgs[0]["content"]
    content = msgs[1]["content"]
    texts = [c["text"] for c in content if c["type"] == "text"]
    assert texts[:3] == ["<audio output>:", "<audio input1>:", "<audio input1>[0.5:1.5]:"]
    audios = [c for c in content if c["type"] == "input_audio"]
    assert len(audios) == 3 and audios[0]["input_audio"]["format"] == "wav"
    import base64
    import io
    info = sf.info(io.BytesIO(base64.b64decode(audios[2]["input_audio"]["data"])))
    assert abs(info.frames / info.samplerate - 1.0) < 1e-3
    assert "A. " in texts[-1] and "A, B, C" in texts[-1] and q.question in texts[-1]
    url = build_messages(load_prompts(), q, "audio_url")[1]["content"][1]
    assert url["type"] == "audio_url" and url["audio_url"]["url"].startswith("data:audio/wav;")


def test_prompt_loader_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_prompts().source.endswith("data/judge")
    (tmp_path / "system.txt").write_text("SYS")
    (tmp_path / "user.txt").write_text("Q=$question O=$options {\"choice\": \"X\"}")
    p = load_prompts(tmp_path)
    assert p.system == "SYS" and "{\"choice\"" in p.user.safe_substitute(question="q", options="o")
    with pytest.raises(FileNotFoundError):
        load_prompts(tmp_path / "nope")
    monkeypatch.setenv("STEERING_JUDGE_PROMPTS", str(tmp_path))
    assert load_prompts().system == "SYS"


def test_content_part_cut_outside_is_silence(tmp_path: Path) -> None:
    item = _item(tmp_path, "q")
    from interp.judge.audio import part_samples
    x, sr = part_samples(AudioPart("<audio output>[5:6]", item.output_path, 5.0, 6.0))
    assert len(x) == int(0.1 * sr) and not x.any()


@pytest.mark.parametrize(("label", "question", "options", "idx"), [
    ("female", "Gender of the speaker?", ["Male", "Female", "None of the above"], 1),
    ("male", "Is the speaker female?", ["No", "Yes"], 0),
    ("female", "Is the speaker a woman?", ["Yes", "No"], 0),
    ("male", "Is the speaker male or female?", ["Yes", "No"], None),  # ambiguous
    (opt.NONE, "Gender?", ["Male", "Female", "None of the above"], 2),
    (opt.NONE, "Gender?", ["Male", "Female"], None),
    ("faster", "Rate?", ["Slower than the input", "Faster than the input", "About the same"], 1),
    ("same", "Is the speaking rate unchanged?", ["Yes", "No"], 0),
    (opt.PRESENT, "Does it contain laughter?", ["No", "Yes"], 1),
    (opt.ABSENT, "Laughter?", ["The speaker laughs", "There is no laughter"], 1),
])
def test_map_verdict(label: str, question: str, options: list[str], idx: int | None) -> None:
    classes = {"female": opt.GENDER, "male": opt.GENDER, opt.NONE: opt.GENDER,
               "faster": opt.RATE, "same": opt.RATE, opt.PRESENT: opt.PRESENCE,
               opt.ABSENT: opt.PRESENCE}[label]
    assert opt.map_verdict(label, question, options, classes) == idx


def test_wer() -> None:
    assert opt.wer("the cat sat", "the cat sat") == 0
    assert opt.wer("the cat sat", "the dog sat") == pytest.approx(1 / 3)
    assert opt.closest_text("hello world", ["None of the above", "goodbye", "Hello, world!"],
                            0.5) == 2


def _rec(sid: str, r: int, q: int, correct: bool, status: str = "ok") -> dict:
    return {"id": sid, "rubric_index": r, "query_index": q, "correct": correct, "status": status}


def test_metrics_hand_computed() -> None:
    def sample(sid: str, cats: list[str], complexity: str, ops: list[str]) -> JudgeItem:
        rubrics = tuple(Rubric(c, "q", "r", ("w",)) for c in cats)
        s = Sample(sid, complexity, "speech", ("local", "global"),
                   tuple(Operation("local", o) for o in ops), rubrics, ("a.wav",))
        return JudgeItem(s, "o.wav", ("a.wav",))

    IF, CR = "Instruction Following", "Consistency"
    items = [sample("a", [IF, IF, CR], "single", ["addition"]),
             sample("b", [IF], "multi-hop", ["addition", "removal"])]
    votes = {("a", 0): [1, 1, 0], ("a", 1): [0, 0, 1], ("a", 2): [1, 1, 1], ("b", 0): [1, 0, 1]}
    res = {}
    for (sid, r), v in votes.items():
        for q, c in enumerate(v):
            res[(sid, r, q)] = _rec(sid, r, q, bool(c))
    ps = per_sample(items, res)
    assert (ps["a"]["IFR"], ps["a"]["CR"], ps["a"]["EMR"]) == (0.5, 1.0, 0)
    assert (ps["b"]["IFR"], ps["b"]["CR"], ps["b"]["EMR"]) == (1.0, None, 1)
    tax = taxonomy(ps)
    assert tax["overall"]["IFR"] == 75.0 and tax["overall"]["CR"] == 100.0
    assert tax["overall"]["EMR"] == 50.0 and tax["overall"]["n_CR"] == 1
    assert tax["granularity"]["local+global"]["n_samples"] == 2
    assert tax["operation"]["addition"]["n_samples"] == 2 and tax["operation"]["removal"]["IFR"] == 100.0
    json.dumps(tax)  # serialisable
    # unsupported: not a pass, counted separately; missing query: not a pass
    unsup = [_rec("a", 0, q, False, "unsupported") for q in range(3)]
    assert rubric_result(0, IF, unsup, 2).status == "unsupported"
    assert rubric_result(0, IF, [unsup[0], None, None], 2).status == "missing"
    assert rubric_result(0, IF, [_rec("a", 0, 0, True), _rec("a", 0, 1, True), None], 2).passed
    res2 = {**res, **{(r["id"], 0, r["query_index"]): r for r in unsup}}
    ps2 = per_sample(items, res2)
    assert ps2["a"]["IFR"] == 0.0 and ps2["a"]["unsupported_IFR"] == 1
    assert ps2["a"]["IFR_supported"] == 0.0 and ps2["a"]["unsupported"] == 1


def test_chat_url_and_bad_base_url() -> None:
    from interp.judge.api_backend import ApiBackend, ApiConfig, chat_url

    want = "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000") == chat_url("http://h:8000/v1/") == chat_url(want) == want
    with pytest.raises(ValueError, match="http"):
        ApiBackend(ApiConfig(base_urls=("h:8000",)))
