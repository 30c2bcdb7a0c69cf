"""The API explainer and scorer end to end against a scripted OpenAI-compatible server on
127.0.0.1: 500s, timeouts, malformed replies and broken bodies must not crash the run or lose
answers, and a re-run asks nothing twice."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from autointerp.api import request_key
from autointerp.config import API_KEY_ENV, AutointerpConfig
from autointerp.prompts import Templates, explain_parts, parse_matches, score_parts
from autointerp.run import run
from interp.judge import ApiConfig
from interp.judge.testing import FakeJudgeServer, FakeReply, FakeRequest

EXPLAIN_SYSTEM = "You are an interpretability"


def _kind(req: FakeRequest) -> str:
    return "explain" if req.payload["messages"][0]["content"].startswith(EXPLAIN_SYSTEM) else "score"


def good_reply(req: FakeRequest) -> FakeReply:
    if _kind(req) == "explain":
        return FakeReply(content='Sure! {"label": "laughter in a female voice"}')
    n = int(re.search(r"each of the (\d+) examples", req.payload["messages"][1]["content"][-1]
                      ["text"]).group(1))
    return FakeReply(content=json.dumps({"matches": [1] * (n // 2) + [0] * (n - n // 2)}))


class Flaky:
    """Each distinct request fails once (500, timeout, malformed JSON, broken body, or fine),
    chosen by its hash, then succeeds."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, req: FakeRequest) -> FakeReply:
        key = request_key(req.payload)
        self.seen[key] += 1
        mode = int(key[:4], 16) % 5 if self.seen[key] == 1 else 4
        return [FakeReply(status=500), FakeReply(delay=1.2, content="late"),
                FakeReply(content="I think it is laughter."), FakeReply(broken_body=True),
                good_reply(req)][mode]


@pytest.fixture(scope="module")
def api_cfg(tiny_heldout_store, tiny_sae, tiny_corpus, tiny_tinycosy, tmp_path_factory):
    out = tmp_path_factory.mktemp("autointerp_api") / "layer_1"
    return AutointerpConfig(layer=1, store=str(tiny_heldout_store), sae=str(tiny_sae),
                            corpus=str(tiny_corpus), model=str(tiny_tinycosy[0]), out=str(out),
                            explainer="api", scorer="api", api_model="fake-omni", n_top=4,
                            n_quantile=2, n_random=2, n_score=3, n_clips=2, max_latents=5,
                            concurrency=4, timeout=0.5, backoff=0.01, max_attempts=5,
                            retries=2)


def test_flags_map_onto_the_judges_client_config(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "k")
    cfg = AutointerpConfig(base_url="http://h:1/v1", api_model="m", concurrency=3, retries=1,
                           max_attempts=4, timeout=9.0, backoff=45.0)
    assert cfg.api_config() == ApiConfig(
        base_urls=("http://h:1/v1",), model="m", concurrency=3, retries=1, max_attempts=4,
        timeout=9.0, backoff_base=45.0, backoff_max=45.0, api_key="k", max_tokens=512)
    monkeypatch.delenv(API_KEY_ENV)
    assert AutointerpConfig().api_config().backoff_max == 30.0
    assert AutointerpConfig().api_config().api_key is None


def test_api_run_survives_failures_and_never_asks_twice(api_cfg):
    # 1) a server that always fails: the run finishes, nothing is labelled, nothing cached
    with FakeJudgeServer(lambda r: FakeReply(status=500)) as dead:
        s0 = run(replace(api_cfg, base_url=dead.base_url, max_attempts=2))
    assert dead.requests and s0["auroc_by_modality"]["all"]["n"] == 0
    recs = [json.loads(x) for x in (api_cfg.out_dir / "latents.jsonl").read_text().splitlines()]
    asked = [r for r in recs if r["explanation"]]
    assert asked and all(r["label"] is None and r["explanation"].startswith("failed: HTTP 500")
                         for r in asked)
    # 2) a flaky server: every question answered after its one failure
    flaky = Flaky()
    with FakeJudgeServer(flaky) as srv:
        cfg = replace(api_cfg, base_url=srv.base_url)
        s1 = run(cfg)
        kinds = Counter(_kind(r) for r in srv.requests)
        assert kinds["explain"] > 0 and kinds["score"] > 0
        assert any(v == 2 for v in flaky.seen.values())  # failures happened and were retried
        recs = [json.loads(x) for x in (api_cfg.out_dir / "latents.jsonl").read_text()
                .splitlines()]
        live = [r for r in recs if r["evidence"]]
        assert live and all(r["label"] == "laughter in a female voice" for r in live)
        assert all(r["explainer"] == "api:fake-omni" and r["scores"]["scorer"] ==
                   "api:fake-omni" for r in live)
        scored = [r["scores"]["auroc"] for r in live if r["scores"]["auroc"] is not None]
        assert scored and all(0 <= a <= 1 for a in scored)
        # audio goes as base64 wav input_audio parts, 1 s at 16 kHz
        audio = [p for r in srv.requests for p in r.payload["messages"][1]["content"]
                 if p["type"] == "input_audio"]
        assert audio, "speech examples must go as audio"
        wav = sf.info(io.BytesIO(base64.b64decode(audio[0]["input_audio"]["data"])))
        assert audio[0]["input_audio"]["format"] == "wav" and wav.samplerate == 16000
        assert wav.frames == 16000
        # 3) the same run again asks nothing: every answer comes from api_cache.jsonl
        n_before = len(srv.requests)
        s2 = run(cfg)
        assert len(srv.requests) == n_before
    assert s2["auroc_by_modality"] == s1["auroc_by_modality"]
    assert s2["shuffled_control"] == s1["shuffled_control"]


@pytest.fixture()
def evidence_examples(tmp_path):
    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips/a.wav", np.zeros(16000, np.float32), 16000)
    text = {"tokens": [" the", " big", " dog"], "acts": [0.0, 2.5, 0.0], "center": 1}
    clip = {"wav": "clips/a.wav", "t0": 0.2, "t1": 1.2, "trace": [[0.48, 1.5], [0.52, 0.3]]}
    exs = [{"modality": "text", "act": 2.5, "text": text, "clip": None},
           {"modality": "speech", "act": 1.5, "text": text, "clip": clip}]
    return tmp_path, exs


@pytest.mark.parametrize("modality, n_audio, has_text", [("text", 0, True), ("audio", 1, False),
                                                          ("mixed", 1, True)])
def test_explain_prompt_follows_modality(evidence_examples, modality, n_audio, has_text):
    folder, exs = evidence_examples
    parts = explain_parts(Templates.load(), modality, exs, folder)
    assert sum(p["type"] == "input_audio" for p in parts) == n_audio
    texts = [p["text"] for p in parts if p["type"] == "text"]
    assert any("<<" in t and "(2.50)" in t for t in texts) == has_text
    if n_audio:
        assert any("1.50 at 0.48 s" in t for t in texts)


def test_score_prompt_hides_activations(evidence_examples):
    folder, exs = evidence_examples
    parts = score_parts(Templates.load(), "dogs", exs, folder)
    texts = " ".join(p["text"] for p in parts if p["type"] == "text")
    assert "[[ big]]" in texts and "2.50" not in texts and "Description: dogs" in texts
    assert sum(p["type"] == "input_audio" for p in parts) == 1
    assert parse_matches(2)('{"matches": [1, 0]}') == [1.0, 0.0]
    for bad in ('{"matches": [1]}', "no json", '{"matches": [2, 0]}'):
        with pytest.raises(ValueError):
            parse_matches(2)(bad)
