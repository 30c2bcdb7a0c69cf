"""The API judge against a real local HTTP server with scripted replies."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from interp.judge import ApiConfig, JudgeConfig, build_sample, judge, write_mmae_set
from interp.judge.records import read_results
from interp.judge.testing import FakeJudgeServer, FakeReply, FakeRequest, speechlike

SR = 16000


def rub(cat: str, question: str, right: str = "Right", wrong: tuple = ("Wrong", "None of the above")
        ) -> dict:
    return {"category": cat, "question": question, "right_choice": right,
            "wrong_choices": list(wrong)}


IF, CR = "Instruction Following", "Consistency"


def make_set(root: Path) -> tuple[Path, Path, list[str]]:
    """Four samples whose rubric questions tell the scripted server how to answer."""
    male, female = (speechlike(120), SR), (speechlike(220), SR)
    specs = [
        ("s1", [rub(IF, "[R] gender of <audio output>?"), rub(IF, "[W] q2"), rub(CR, "[R] q3")],
         "single", ["alteration"], male),
        ("s2", [rub(IF, "[2of3] q1"), rub(CR, "[1of3] q2")], "single",
         ["alteration", "removal"], male),
        ("s3", [rub(IF, "[R] only IF")], "multi-part", ["addition"], male),
        ("s4", [rub(IF, "[R] q1"), rub(CR, "[R] is <audio input2>[0.5:1.0] kept?"),
                rub(CR, "[BAD] q3")], "multi-audio", ["replacement"], [male, female]),
    ]
    pairs = []
    for name, rubrics, complexity, ops, inputs in specs:
        meta, pred = build_sample(root, f"instruction {name}", inputs, female, rubrics,
                                  complexity=complexity, operation=ops[0])
        for d in (meta, pred):
            d["operations"] = [{"granularity": "global", "operation": o} for o in ops]
        pairs.append((meta, pred))
    meta_p, pred_p = write_mmae_set(root, pairs)
    return meta_p, pred_p, [m["id"] for m, _ in pairs]


class Script:
    """Answers by the marker in the question; counts per question and per query."""

    def __init__(self) -> None:
        self.per_question: Counter = Counter()
        self.per_query: Counter = Counter()

    def __call__(self, req: FakeRequest) -> FakeReply:
        q = req.question
        self.per_question[q] += 1
        n = self.per_question[q]
        right, wrong = req.letter_of("Right"), req.other_letter("Right")
        if q.startswith("[BAD]"):
            return FakeReply(content="I think it is the second one")
        if q.startswith("[W]") or (q.startswith("[2of3]") and n == 3) or (
                q.startswith("[1of3]") and n != 1):
            return FakeReply(letter=wrong)
        return FakeReply(letter=right)


def cfg_for(root: Path, meta: Path, pred: Path, urls: list[str], out: str = "judge", **api
            ) -> JudgeConfig:
    kw = dict(concurrency=4, retries=2, max_attempts=10, timeout=5.0, backoff_base=0.01,
              backoff_max=0.05)
    api_cfg = ApiConfig(base_urls=tuple(urls), **{**kw, **api})
    return JudgeConfig(pred, meta, root, root / out, backend="api", api=api_cfg)


def test_metrics_by_hand_and_slices(tmp_path: Path) -> None:
    meta, pred, ids = make_set(tmp_path)
    script = Script()
    with FakeJudgeServer(script) as srv:
        summary = judge(cfg_for(tmp_path, meta, pred, [srv.base_url]))
        reqs = srv.requests
    ps = json.loads((tmp_path / "judge/per_sample.json").read_text())
    s1, s2, s3, s4 = (ps[i] for i in ids)
    assert (s1["IFR"], s1["CR"], s1["EMR"]) == (0.5, 1.0, 0)
    assert (s2["IFR"], s2["CR"], s2["EMR"]) == (1.0, 0.0, 0)
    assert (s3["IFR"], s3["CR"], s3["EMR"]) == (1.0, None, 1)
    assert (s4["IFR"], s4["CR"], s4["EMR"]) == (1.0, 0.5, 0)
    assert s4["failed_queries"] == 3
    o = summary["overall"]
    assert (o["IFR"], o["CR"], o["EMR"]) == (87.5, 50.0, 25.0)
    assert (o["n_IFR"], o["n_CR"]) == (4, 3)
    tax = json.loads((tmp_path / "judge/taxonomy.json").read_text())
    assert tax["complexity"]["single"]["IFR"] == 75.0 and tax["complexity"]["single"]["CR"] == 50.0
    assert tax["operation"]["removal"]["CR"] == 0.0 and tax["operation"]["alteration"]["IFR"] == 75.0
    assert tax["granularity"]["global"]["n_samples"] == 4
    # 8 well-behaved rubrics x 3 + the [BAD] rubric: 3 queries x (1 + 2 re-asks)
    assert len(reqs) == 8 * 3 + 9
    recs = read_results(tmp_path / "judge/results.jsonl")
    bad = [r for r in recs.values() if r["question"].startswith("[BAD]")]
    assert len(bad) == 3 and all(r["status"] == "failed" and "unparsable" in r["error"]
                                 and r["asks"] == 3 for r in bad)
    # three different shuffles per rubric, the right letter recorded each time
    r0 = [recs[(ids[0], 0, q)] for q in range(3)]
    assert len({tuple(r["options"]) for r in r0}) == 3
    assert all(r["options"][ord(r["right_letter"]) - 65] == "Right" for r in r0)
    # slice: the [0.5:1.0] part of input2 is sent as its own clip, cut to 0.5 s
    sliced = [r for r in reqs if "[0.5:1.0]" in r.question]
    labels = [lab for lab, _ in sliced[0].clips]
    assert labels == ["<audio output>", "<audio input1>", "<audio input2>",
                      "<audio input2>[0.5:1.0]"]
    assert abs(sliced[0].clips[-1][1] - 0.5) < 0.01
    assert sliced[0].audio_style == "input_audio" and sliced[0].model == "Qwen3Omni-Instruct"


def test_resume_asks_only_missing(tmp_path: Path) -> None:
    meta, pred, _ = make_set(tmp_path)
    with FakeJudgeServer(Script()) as srv:
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url]))
    res = tmp_path / "judge/results.jsonl"
    full_ps = (tmp_path / "judge/per_sample.json").read_text()
    lines = res.read_text().splitlines(keepends=True)
    kept = lines[:17]
    res.write_text("".join(kept) + lines[17][:40])  # killed in the middle of a write
    missing = {(r["id"], r["rubric_index"], r["query_index"])
               for r in map(json.loads, lines[17:])}
    with FakeJudgeServer(Script()) as srv:
        summary = judge(cfg_for(tmp_path, meta, pred, [srv.base_url]))
        n_missing_bad = sum("[BAD]" in json.loads(x)["question"] for x in lines[17:])
        assert len(srv.requests) == len(missing) + 2 * n_missing_bad
    assert summary["queries_resumed"] == 17 and summary["queries_asked"] == len(missing)
    assert len(read_results(res)) == 27
    again = json.loads((tmp_path / "judge/per_sample.json").read_text())
    assert {k: v["EMR"] for k, v in again.items()} == {
        k: v["EMR"] for k, v in json.loads(full_ps).items()}
    with FakeJudgeServer(Script()) as srv:  # a complete run asks nothing
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url]))
        assert srv.requests == []


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_round_robin_and_refused_connections(tmp_path: Path) -> None:
    meta, pred, _ = make_set(tmp_path)
    with FakeJudgeServer(Script(), "a") as a, FakeJudgeServer(Script(), "b") as b:
        judge(cfg_for(tmp_path, meta, pred, [a.base_url, b.base_url], out="rr"))
        assert abs(len(a.requests) - len(b.requests)) <= 1
        assert len(a.requests) + len(b.requests) == 33
        dead = _dead_url()
        s = judge(cfg_for(tmp_path, meta, pred, [a.base_url, dead], out="dead"))
    recs = read_results(tmp_path / "dead/results.jsonl")
    ok = [r for r in recs.values() if r["status"] == "ok"]
    assert len(ok) == 24 and s["queries_failed"] == 3
    assert any(r["attempts"] > 1 and r["servers"][-1].startswith(a.base_url) for r in ok)
    # a refused request is retried on the other server, never on the dead one again (with one
    # shared cycle, 27 queries in flight could send one query to the dead server ten times)
    assert all(r["attempts"] <= 2 for r in ok)


def test_transport_failures_are_retried_then_recorded(tmp_path: Path) -> None:
    meta, pred, ids = make_set(tmp_path)
    per_query: Counter = Counter()

    def flaky(req: FakeRequest) -> FakeReply:
        key = (req.question, tuple(req.options.values()))
        per_query[key] += 1
        n = per_query[key]
        steps = [FakeReply(status=500), FakeReply(letter="A", delay=3.0),
                 FakeReply(broken_body=True), FakeReply(letter="Z")]
        return steps[n - 1] if n <= len(steps) else FakeReply(letter=req.letter_of("Right"))

    # The timeout leaves room for 27 concurrent requests on 2 loaded cores (at 0.5 s the fast
    # replies timed out too); only the scripted 3-second reply should miss it.
    with FakeJudgeServer(flaky) as srv:
        cfg = cfg_for(tmp_path, meta, pred, [srv.base_url], timeout=2.0, concurrency=32)
        judge(cfg)
        recs = read_results(tmp_path / "judge/results.jsonl")
        good = [r for r in recs.values() if not r["question"].startswith("[BAD]")]
        assert all(r["status"] == "ok" and r["correct"] for r in good)
        # 500, timeout, broken body, invalid letter (re-asked), right; a slow machine may add
        # a spurious timeout, so at least 5 requests
        assert all(r["attempts"] >= 5 and r["asks"] == 2 for r in good)
        per_query.clear()
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url], out="short", timeout=2.0,
                      max_attempts=3, concurrency=32))
    recs = read_results(tmp_path / "short/results.jsonl")
    assert len(recs) == 27  # nothing lost: every query has a line
    assert all(r["status"] == "failed" and "3 request(s), 0 answer(s)" in r["error"]
               for r in recs.values())
    # the third request's broken body is the last error (a loaded machine may time it out)
    assert all("malformed response body" in r["error"] or "timeout" in r["error"]
               for r in recs.values())
    assert any("malformed response body" in r["error"] for r in recs.values())
    ps = json.loads((tmp_path / "short/per_sample.json").read_text())
    # no query got an answer: nothing was judged, so no sample gets a score (not a zero)
    assert set(ps) == set(ids) and all(v["EMR"] is None and not v["judged"] for v in ps.values())


def test_audio_url_style_and_fatal_4xx(tmp_path: Path) -> None:
    meta, pred, _ = make_set(tmp_path)
    with FakeJudgeServer(lambda r: FakeReply(letter=r.letter_of("Right"))) as srv:
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url], audio_style="audio_url"))
        assert {r.audio_style for r in srv.requests} == {"audio_url"}
    with FakeJudgeServer(lambda r: FakeReply(status=400)) as srv:
        s = judge(cfg_for(tmp_path, meta, pred, [srv.base_url], out="bad"))
        assert len(srv.requests) == 27  # a 400 is not retried
    assert s["queries_failed"] == 27
    with FakeJudgeServer(lambda r: FakeReply(letter=r.letter_of("Right"))) as srv:
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url], out="bad"))
        assert srv.requests == []  # failed queries are answered: not asked again by default
        cfg = cfg_for(tmp_path, meta, pred, [srv.base_url], out="bad")
        s = judge(dataclasses.replace(cfg, retry_failed=True))
        assert len(srv.requests) == 27 and s["queries_failed"] == 0
    assert s["overall"]["EMR"] == 100.0


@pytest.mark.parametrize("reply", ['{"reason": "x", "choice": "B"}', "```json\n{\"choice\": \"B\"}\n```",
                                   "<think>A? no.</think> B"])
def test_reply_forms_accepted(tmp_path: Path, reply: str) -> None:
    meta, pred, _ = make_set(tmp_path)
    with FakeJudgeServer(lambda r: FakeReply(content=reply)) as srv:
        s = judge(cfg_for(tmp_path, meta, pred, [srv.base_url]))
    assert s["queries_failed"] == 0
    recs = read_results(tmp_path / "judge/results.jsonl")
    assert {r["choice"] for r in recs.values()} == {"B"}
