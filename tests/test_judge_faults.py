"""The judge against a loopback server that refuses, times out, answers 500 and answers garbage:
it reports how many queries got no answer, scores nothing from them, exits non-zero, detects a
dead server in about a second, and resumes after a kill without asking twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interp.judge import judge
from interp.judge.__main__ import main as judge_main
from interp.judge.records import read_results
from interp.judge.testing import FakeJudgeServer, FakeReply, FakeRequest
from tests.test_judge_api import _dead_url, cfg_for, make_set

# make_set's questions (4 samples, 9 rubrics, 27 queries); s1 holds the first three rubrics.
FAULTS = {"[R] gender of <audio output>?": FakeReply(status=500),
          "[W] q2": FakeReply(letter="A", delay=2.0),  # slower than the 0.5 s timeout
          "[R] q3": FakeReply(broken_body=True),
          "[BAD] q3": FakeReply(content="I think it is the second one")}  # answered, no letter


def faulty(req: FakeRequest) -> FakeReply:
    return FAULTS.get(req.question) or FakeReply(letter=req.letter_of("Right"))


def error_lines(stderr: str) -> list[str]:
    """The CLI's own message lines (log records may precede them when logging goes to stderr)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def cli_args(root: Path, meta: Path, pred: Path, url: str, out: str, *extra: str) -> list[str]:
    return ["--predictions", str(pred), "--metadata", str(meta), "--audio_root", str(root),
            "--output_dir", str(root / out), "--base_urls", url, "--no_progress",
            "--timeout", "0.5", "--max_attempts", "2", "--backoff_base", "0.01",
            "--backoff_max", "0.02", "--retries", "1", *extra]


def test_dead_server_fails_fast_and_scores_nothing(tmp_path: Path, capsys) -> None:
    meta, pred, ids = make_set(tmp_path)
    start = time.time()
    # default back-off (1 s doubling to 60 s, 10 attempts): minutes if refusals were retried
    s = judge(cfg_for(tmp_path, meta, pred, [_dead_url()], backoff_base=1.0, backoff_max=60.0))
    assert time.time() - start < 10
    assert s["queries_unanswered"] == s["queries_failed"] == 27
    assert s["samples_unjudged"] == 4 and s["samples_judged"] == 0
    assert "no judge server is reachable" in s["errors"][0][0] or "refused" in s["errors"][0][0]
    o = s["overall"]
    assert o["IFR"] is None and o["CR"] is None and o["EMR"] is None and o["unjudged"] == 4
    rc = judge_main(cli_args(tmp_path, meta, pred, _dead_url(), "cli"))
    out, err = capsys.readouterr()
    assert rc == 3
    assert error_lines(err) == [err.strip().splitlines()[-1]]  # one line, the last one
    assert error_lines(err)[0].startswith("error: 4 of 4 samples could not be judged")
    assert "IFR" not in out and "27 queries" not in out and "no answer 27" in out


def test_faults_are_counted_and_never_scored(tmp_path: Path, capsys) -> None:
    meta, pred, ids = make_set(tmp_path)
    with FakeJudgeServer(faulty) as srv:
        s = judge(cfg_for(tmp_path, meta, pred, [srv.base_url], timeout=0.5, max_attempts=2,
                          retries=1))
        rc = judge_main(cli_args(tmp_path, meta, pred, srv.base_url, "judge"))
        # the failed queries are asked again only when told; then everything is judged
        rc_partial = judge_main(cli_args(tmp_path, meta, pred, srv.base_url, "judge",
                                         "--accept_partial"))
    out, err = capsys.readouterr()
    # 3 rubrics x 3 asks got no answer (500, timeout, garbage); [BAD]'s 3 answered nonsense,
    # which MMAE counts as wrong: failed, but judged
    assert s["queries_unanswered"] == 9 and s["queries_failed"] == 12
    assert s["samples_unjudged"] == 1 and s["samples_judged"] == 3
    kinds = " ".join(e for e, _ in s["errors"])
    assert "HTTP 500" in kinds and "timeout" in kinds and "malformed response body" in kinds
    assert sum(n for _, n in s["errors"]) == 9
    ps = json.loads((tmp_path / "judge/per_sample.json").read_text())
    s1 = ps[ids[0]]
    assert not s1["judged"] and s1["IFR"] is None and s1["CR"] is None and s1["EMR"] is None
    assert s1["undecided"] == 3
    # the judged samples keep their scores; the overall means are over them only
    assert s["overall"]["n_IFR"] == 3 and s["overall"]["unjudged"] == 1
    assert rc == 3 and rc_partial == 0
    assert "over the 3 judged samples" in out
    with FakeJudgeServer(lambda r: FakeReply(letter=r.letter_of("Right"))) as srv:
        rc = judge_main(cli_args(tmp_path, meta, pred, srv.base_url, "judge", "--retry_failed"))
        assert len(srv.requests) == 12  # the 12 failed queries, each answered at once
    assert rc == 0
    assert len(read_results(tmp_path / "judge/results.jsonl")) == 27


def test_retries_are_logged_with_the_servers_answer(tmp_path: Path, caplog) -> None:
    meta, pred, _ = make_set(tmp_path)
    with FakeJudgeServer(faulty) as srv, caplog.at_level("INFO"):
        judge(cfg_for(tmp_path, meta, pred, [srv.base_url], timeout=0.5, max_attempts=2,
                      retries=1))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("HTTP 500" in m and "scripted" in m and "retrying" in m for m in warned)
    assert any("malformed response body" in m and "{not json" in m for m in warned)
    asked_again = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("second one" in m and "asking again" in m for m in asked_again)


def test_killed_judge_resumes_without_asking_twice(tmp_path: Path) -> None:
    meta, pred, _ = make_set(tmp_path)
    slow = FakeJudgeServer(lambda r: FakeReply(letter=r.letter_of("Right"), delay=0.3))
    results = tmp_path / "judge/results.jsonl"
    with slow:
        cmd = [sys.executable, "-m", "interp.judge",
               *cli_args(tmp_path, meta, pred, slow.base_url, "judge"),
               "--timeout", "5", "--concurrency", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and (
                not results.exists() or len(results.read_text().splitlines()) < 4):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        done_before = len(read_results(results))
        assert 4 <= done_before < 27
        n_before = len(slow.requests)
    with FakeJudgeServer(lambda r: FakeReply(letter=r.letter_of("Right"))) as srv:
        rc = judge_main(cli_args(tmp_path, meta, pred, srv.base_url, "judge"))
        assert rc == 0
        # only what had no line is asked: the killed run's finished queries are not asked again
        assert len(srv.requests) == 27 - done_before
    lines = [ln for ln in results.read_text().splitlines() if ln.strip()]
    keys = [tuple(json.loads(ln)[k] for k in ("id", "rubric_index", "query_index"))
            for ln in lines if ln.startswith("{") and ln.endswith("}")]
    assert len(set(keys)) == 27 and n_before >= done_before


@pytest.mark.parametrize("flag", ["--refused_limit", "--max_attempts"])
def test_bad_limits_are_one_line(tmp_path: Path, flag: str, capsys) -> None:
    meta, pred, _ = make_set(tmp_path)
    rc = judge_main(cli_args(tmp_path, meta, pred, _dead_url(), "x") + [flag, "0"])
    err = capsys.readouterr().err
    assert rc == 2 and len(error_lines(err)) == 1 and err.strip().splitlines()[-1].startswith("error:")


def test_a_set_that_is_not_there_is_one_line(tmp_path: Path, capsys) -> None:
    """What `steering.run` did not write (it stopped before measuring) is said in one line."""
    s = tmp_path / "steer" / "mmae" / "whisper_s2"
    rc = judge_main(["--predictions", str(s / "predictions.json"), "--metadata",
                     str(s / "MMAE-meta.json"), "--audio_root", str(s), "--output_dir",
                     str(tmp_path / "judge"), "--backend", "acoustic"])
    errors = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(errors) == 1
    assert "no such file: --predictions" in errors[0] and "steering.run" in errors[0]
    assert not (tmp_path / "judge").exists()
