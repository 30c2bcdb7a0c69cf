"""`python -m interp.corpus import`: your own recordings as a corpus folder every stage reads.

Input, either
  * a manifest, `.csv` (a header row) or `.jsonl` (one JSON object a line): one row per
    recording with its audio path (relative to the manifest's folder, or absolute), transcript
    and speaker; optional `instruction` and `tags` (tag spans: a JSON list of
    {"tag", "start", "end"} in seconds, or `laughter:1.2-1.8;breath:3.0-3.4`); every other
    column (`style`, `emotion`, `age`, ...) is a label, kept as a column of the table; or
  * a folder of recordings, each with its transcript beside it (`x.wav` + `x.txt` or `x.lab`);
    the speaker is the name of the folder the recording lies in.

Output: the corpus layout of `interp.corpus build` (`table.py`), so `interp.audio tokenize`,
`interp.cache`, the probes and steering read it as they read the synthetic corpus:

    manifest.json        config (with the source's digest), label columns, summary
    wav/<utt_id>.wav     16 kHz mono PCM16 (any rate and channel count is converted)
    chunks/*.jsonl       per-chunk records and skipped rows (the resume points)
    utterances.parquet   one row per kept recording: the fixed columns, then the labels
    import_report.json   every skipped row with its reason, rows whose words got estimated times

`utt_id` is `u` + the row's number in the manifest (from 0; in a folder, in sorted path order),
so an id names its source row. Splits are those of the synthetic corpus: `heldout_voices` (a
seeded share of the speakers), `heldout_sentences` (a seeded share of the distinct transcripts,
spoken by training speakers) and `train`; by default every transcript a held-out speaker reads is
held out too, so nothing in `heldout_voices` was heard in training. Word timings come from CTC
forced alignment of the transcript with the recogniser (`--timings ctc`), or are spread over the
clip's sound by letter count (`--timings whole`). Bad rows (missing, unreadable, empty or
silence-only audio, clips over `--max-seconds`, no transcript or speaker, malformed tag spans)
are skipped and reported together at the end; everything else is kept.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_json, atomic_write_text
from interp.audio import SAMPLE_RATE
from interp.audio.pitch import median_f0
from interp.cli import StageInterrupted, stop_requests
from interp.corpus.import_clip import Skip, load_clip, normalize_text, parse_tags, word_timings
from interp.corpus.plan import SPLITS
from interp.corpus.render_loop import check_same_config
from interp.corpus.table import MANIFEST, PROVENANCE, SCHEMA, TABLE, write_table

log = logging.getLogger(__name__)

CHUNK = 32  # rows per resume point
REPORT = "import_report.json"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TRANSCRIPT_SUFFIXES = (".txt", ".lab")
PATH_COLUMNS = ("path", "wav", "audio", "file", "wav_path", "audio_path", "filename")
TEXT_COLUMNS = ("transcript", "text", "sentence", "transcription", "normalized_text")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "voice_id", "voice", "spk")
# Fixed table columns a manifest column of the same name fills (rather than becoming a label).
FILLS_FIXED = ("gender", "accent", "variant", "rate_bin", "domain")
TIMINGS = ("ctc", "whole")
SPLITTING = ("heldout_voice_frac", "heldout_sentence_frac", "heldout_voice_sentences", "domain",
             "seed")
# Why a row is skipped (the report's `reason`), in the order the summary lists them.
REASONS = {
    "missing": "no audio file at the path",
    "unreadable": "not readable as audio",
    "empty": "no samples",
    "silent": "silence only",
    "too_long": "longer than --max-seconds",
    "no_transcript": "no transcript (no words)",
    "no_speaker": "no speaker",
    "bad_tags": "tag spans malformed or outside the clip",
    "bad_row": "manifest line not readable",
}
_TAG = re.compile(r"\[[^\]]*\]")
_STRIP = ".,?!;:\"()"
_INT = re.compile(r"-?(0|[1-9]\d*)")  # as the number prints: no leading zero, no "+", no "_"
_FLOAT = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_LEADING_ZERO = re.compile(r"-?0\d")  # "007" is a code, not seven


@dataclass(frozen=True)
class ImportConfig:
    """Where the recordings are, where the corpus goes, and how it is split and timed."""

    source: Path
    """a manifest (.csv, .jsonl or a .json list: audio path, transcript, speaker, optional
    instruction and tags, any other column kept as a label) or a folder of recordings with
    transcripts beside them (x.wav + x.txt or x.lab; speaker = the recording's folder name)"""
    out: Path
    """output corpus folder (a killed import resumes there)"""
    path_column: str = ""
    """manifest column of the audio path, relative to the manifest or absolute; empty: the
    first of path, wav, audio, file, wav_path, audio_path, filename"""
    text_column: str = ""
    """manifest column of the transcript; empty: the first of transcript, text, sentence,
    transcription, normalized_text ([tag] markers in it stay in `text`, not in `text_plain`)"""
    speaker_column: str = ""
    """manifest column of the speaker; empty: the first of speaker, speaker_id, voice_id,
    voice, spk"""
    timings: str = "ctc"
    """word timings: ctc (forced alignment of the transcript with the recogniser) or whole
    (every word a share of the clip's sound, by its letters; timed=False)"""
    asr: str = ""
    """recogniser folder for --timings ctc; empty: the shipped data/instruments/asr"""
    max_seconds: float = 20.0
    """longer clips are skipped (and reported)"""
    min_speech_seconds: float = 0.1
    """a clip with less sound than this (25 ms frames above -50 dBFS) is silence-only: skipped"""
    heldout_voice_frac: float = 0.1
    """share of speakers held out (split heldout_voices; at least one when there are two or more
    speakers and the share is above 0)"""
    heldout_sentence_frac: float = 0.1
    """share of distinct transcripts held out (split heldout_sentences, spoken by training
    speakers)"""
    heldout_voice_sentences: bool = True
    """also hold out every transcript a held-out speaker reads, so that nothing in
    heldout_voices was heard in training (turn off when every speaker reads the same script)"""
    domain: str = "open"
    """the rows' `domain` (recorded speech is open English; a manifest `domain` column wins)"""
    seed: int = 0
    """seed of the held-out speakers and transcripts and of the prompt pairing"""
    workers: int | None = None
    """processes (default: all cores)"""

    def to_dict(self) -> dict:
        """What the imported rows depend on (the resume check compares it): not the splits, the
        domain or the seed, which are decided over the kept rows at the end of every run, so a
        finished import is re-split in seconds by running it again with other split flags."""
        out = {k: v for k, v in asdict(self).items() if k not in ("out", "workers", *SPLITTING)}
        return out | {"source": str(Path(self.source).resolve())}

    def splitting(self) -> dict:
        return {k: getattr(self, k) for k in SPLITTING}


# -- reading the source --------------------------------------------------------------------------

def _pick(columns: list[str], given: str, aliases: tuple[str, ...], what: str, flag: str,
          source: Path) -> str:
    if given:
        if given not in columns:
            raise ValueError(f"{source}: no column {given!r} (columns: {', '.join(columns)})")
        return given
    for name in aliases:
        if name in columns:
            return name
    raise ValueError(f"{source}: no {what} column (looked for {', '.join(aliases)}; columns: "
                     f"{', '.join(columns)}); name it with {flag}")


def _manifest_rows(path: Path) -> Iterator[tuple[dict | None, str]]:
    """(row, '') per data row of a .csv or .jsonl manifest (or a .json list of objects);
    (None, why) for a broken line."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                yield {k.strip(): v for k, v in row.items() if k is not None}, ""
        return
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON list ({exc.msg}, line {exc.lineno})") from exc
        for n, row in enumerate(rows):
            yield (row, "") if isinstance(row, dict) else (None, f"item {n}: not a JSON object")
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield None, f"line {n}: not JSON ({exc.msg})"
            continue
        yield (row, "") if isinstance(row, dict) else (None, f"line {n}: not a JSON object")


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _item(index: int, audio: str, source: str, text: str, speaker: str, instruction=None,
          tags=None, fixed: dict | None = None, labels: dict | None = None,
          problem: tuple[str, str] | None = None) -> dict:
    """One row to import (a plain dict: it travels to worker processes)."""
    if problem is None and not text.strip():
        problem = ("no_transcript", "the transcript is empty")
    if problem is None and not speaker:
        problem = ("no_speaker", "the speaker is empty")
    return {"index": index, "utt_id": f"u{index:06d}", "audio": audio, "source": source,
            "text": text, "speaker": speaker, "instruction": _text(instruction) or None,
            "tags": tags, "fixed": fixed or {}, "labels": labels or {}, "problem": problem}


def read_manifest(cfg: ImportConfig) -> tuple[list[dict], list[str], dict[str, str]]:
    """The manifest's rows as items, the label column names and the renamed columns (a column
    named like a fixed column the import computes, e.g. `duration`, is kept as `user_duration`)."""
    source = Path(cfg.source)
    parsed = list(_manifest_rows(source))
    columns = list(dict.fromkeys(k for row, _ in parsed if row for k in row))
    if not columns:
        raise ValueError(f"{source}: the manifest has no rows")
    path_col = _pick(columns, cfg.path_column, PATH_COLUMNS, "audio path", "--path-column", source)
    text_col = _pick(columns, cfg.text_column, TEXT_COLUMNS, "transcript", "--text-column", source)
    spk_col = _pick(columns, cfg.speaker_column, SPEAKER_COLUMNS, "speaker", "--speaker-column",
                    source)
    used = {path_col, text_col, spk_col, "instruction", "tags"}
    reserved = {*SCHEMA.names, *PROVENANCE}
    renamed = {c: f"user_{c}" for c in columns
               if c not in used and c not in FILLS_FIXED and c in reserved}
    labels = [renamed.get(c, c) for c in columns if c not in used and c not in FILLS_FIXED]
    items = []
    for index, (row, why) in enumerate(parsed):
        if row is None:
            items.append(_item(index, "", why.split(":")[0], "", "", problem=("bad_row", why)))
            continue
        given = _text(row.get(path_col))
        audio = ""
        if given:
            p = Path(given).expanduser()
            audio = str(p if p.is_absolute() else source.parent / p)
        problem = None if given else ("missing", f"no {path_col!r} value in the row")
        items.append(_item(
            index, audio, given, _text(row.get(text_col)), _text(row.get(spk_col)),
            row.get("instruction"), row.get("tags"),
            {c: _text(row.get(c)) or None for c in FILLS_FIXED if c in row},
            {renamed.get(c, c): row.get(c) for c in columns
             if c not in used and c not in FILLS_FIXED},
            problem))
    return items, labels, renamed


def read_folder(cfg: ImportConfig) -> list[dict]:
    """Every audio file under the folder (sorted) as an item, its transcript from the .txt or
    .lab file of the same name, its speaker the name of its folder."""
    root = Path(cfg.source)
    out = Path(cfg.out).resolve()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                   and p.is_file() and not p.resolve().is_relative_to(out))
    if not files:
        raise FileNotFoundError(f"no recordings ({', '.join(AUDIO_SUFFIXES)}) under {root}")
    items = []
    for index, f in enumerate(files):
        rel = str(f.relative_to(root))
        beside = [f.with_suffix(s) for s in TRANSCRIPT_SUFFIXES if f.with_suffix(s).is_file()]
        text = beside[0].read_text(encoding="utf-8-sig", errors="replace") if beside else ""
        speaker = f.parent.name if f.parent != root else root.resolve().name
        problem = None if beside else ("no_transcript", f"no {f.stem}.txt or {f.stem}.lab "
                                                        "beside it")
        items.append(_item(index, str(f), rel, " ".join(text.split()), speaker,
                           problem=problem))
    return items


def source_digest(cfg: ImportConfig) -> str:
    """sha256 of the manifest, or of a folder's file names and sizes: a changed source refuses
    to resume into an import made from the old one."""
    source = Path(cfg.source)
    h = hashlib.sha256()
    if source.is_dir():
        out = Path(cfg.out).resolve()
        for p in sorted(source.rglob("*")):
            if p.is_file() and not p.resolve().is_relative_to(out) and (
                    p.suffix.lower() in AUDIO_SUFFIXES + TRANSCRIPT_SUFFIXES):
                h.update(f"{p.relative_to(source)}\0{p.stat().st_size}\n".encode())
    else:
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def import_row(item: dict, cfg: dict, out: Path) -> dict:
    """One chunk line: {"record": ..., "timings": how} for a kept row (its wav written), or
    {"skipped": {row, utt_id, source, reason, detail}}."""
    try:
        if item["problem"]:
            raise Skip(*item["problem"])
        audio = load_clip(item["audio"], cfg["max_seconds"], cfg["min_speech_seconds"])
        duration = len(audio) / SAMPLE_RATE
        tags = parse_tags(item["tags"], duration)
        text = " ".join(item["text"].split())
        text_plain = " ".join(_TAG.sub(" ", text).split())
        if not text_plain:
            raise Skip("no_transcript", f"the transcript {text!r} has only tags")
        words, how = word_timings(audio, text_plain, cfg["timings"], cfg["asr"])
    except Skip as skip:
        return {"skipped": {"row": item["index"], "utt_id": item["utt_id"],
                            "source": item["source"], "reason": skip.reason, "detail": str(skip)}}
    fixed = item["fixed"]
    record = {
        "utt_id": item["utt_id"], "split": "", "domain": fixed.get("domain"),
        "sentence_id": -1, "text": text, "text_plain": text_plain,
        "instruction": item["instruction"], "prompt_id": "", "voice_id": item["speaker"],
        "gender": fixed.get("gender"), "accent": fixed.get("accent"),
        "variant": fixed.get("variant"), "espeak_pitch": None, "rate": None,
        "rate_bin": fixed.get("rate_bin"), "f0_median": round(median_f0(audio, SAMPLE_RATE), 2),
        "duration": round(duration, 3), "tags": tags, "words": words,
        "path": f"wav/{item['utt_id']}.wav", "source": item["source"], **item["labels"],
    }
    atomic_save(out / record["path"],
                lambda p: sf.write(p, audio, SAMPLE_RATE, subtype="PCM_16"))
    return {"record": record, "timings": how}


def chunk_file(out: Path, chunk: list[dict]) -> Path:
    return out / "chunks" / f"{chunk[0]['utt_id']}.jsonl"


def import_chunk(job: tuple[list[dict], dict, str]) -> int:
    """Import one chunk (a process-pool job); its chunk file is written last, atomically."""
    items, cfg, out = job
    lines = [import_row(it, cfg, Path(out)) for it in items]
    atomic_write_text(chunk_file(Path(out), items), "".join(json.dumps(x) + "\n" for x in lines))
    return len(items)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops


def run_chunks(items: list[dict], cfg: ImportConfig, out: Path) -> tuple[list[dict], int]:
    """Import every chunk not on disk yet (resuming), with a progress bar; SIGINT/SIGTERM stop
    after the chunks under way. Returns (every chunk line in row order, rows done before)."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "chunks").mkdir(exist_ok=True)
    chunks = [items[i: i + CHUNK] for i in range(0, len(items), CHUNK)]
    shared = cfg.to_dict()
    todo = [(c, shared, str(out)) for c in chunks if not chunk_file(out, c).exists()]
    done_before = len(items) - sum(len(t[0]) for t in todo)
    if done_before:
        log.info("%s: resuming, %d of %d rows already imported", out, done_before, len(items))
    workers = min(cfg.workers or os.cpu_count() or 1, max(1, len(todo)))

    def stopped(done: int) -> StageInterrupted:
        return StageInterrupted(f"{done} of {len(items)} rows imported, kept in {out}; run the "
                                "same command again to resume")

    with stop_requests() as stop, tqdm(total=len(items), initial=done_before, desc="import",
                                       unit="utt") as bar:
        if workers == 1:
            for job in todo:
                if stop.requested:
                    raise stopped(bar.n)
                bar.update(import_chunk(job))
        else:
            with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
                futures = [pool.submit(import_chunk, job) for job in todo]
                for f in as_completed(futures):
                    bar.update(f.result())
                    if stop.requested:
                        for g in futures:
                            g.cancel()
                        raise stopped(bar.n)
    lines = [json.loads(line) for c in chunks
             for line in chunk_file(out, c).read_text().splitlines()]
    return lines, done_before


# -- the whole corpus ----------------------------------------------------------------------------

def _typed(values: list) -> list:
    """A label column's values in one kind: bool, int or float when every value is one (text
    that reads as a number counts as one, unless it would lose a leading zero), else text
    (JSON for lists and objects); empty text is None."""
    vals = [None if v is None or (isinstance(v, str) and not v.strip()) else v for v in values]
    present = [v for v in vals if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return vals
    if not any(isinstance(v, (bool, list, dict)) for v in present):
        texts = [str(v).strip() for v in present]
        if texts and all(_INT.fullmatch(t) for t in texts):
            it = iter(int(t) for t in texts)
            return [None if v is None else next(it) for v in vals]
        if texts and all(_FLOAT.fullmatch(t) and not _LEADING_ZERO.match(t) for t in texts):
            it = iter(float(t) for t in texts)
            return [None if v is None else next(it) for v in vals]
    return [v if v is None or isinstance(v, str) else json.dumps(v) for v in vals]


def _held(rng: random.Random, pool: list[str], frac: float) -> set[str]:
    """A seeded share `frac` of `pool` (at least one when frac > 0, never all of it)."""
    if frac <= 0 or len(pool) < 2:
        return set()
    n = min(len(pool) - 1, max(1, round(frac * len(pool))))
    return set(rng.sample(pool, n))


def assign_splits(records: list[dict], cfg: ImportConfig) -> list[str]:
    """Sentence ids (one per distinct normalised transcript, in sorted order) and splits, in
    place: held-out speakers → heldout_voices; held-out transcripts → heldout_sentences.

    A training speaker all of whose transcripts were drawn for holding out gets one of them back
    (one no held-out speaker reads), so that heldout_sentences has voices heard in training;
    returns the training speakers left without a train row even so (their every transcript is
    read by a held-out speaker)."""
    rng = random.Random(cfg.seed)
    key = {id(r): normalize_text(r["text_plain"]) or r["text_plain"] for r in records}
    sentences = sorted(set(key.values()))
    sentence_id = {s: i for i, s in enumerate(sentences)}
    speakers = sorted({r["voice_id"] for r in records})
    held_voices = _held(rng, speakers, cfg.heldout_voice_frac)
    held_sentences = _held(rng, sentences, cfg.heldout_sentence_frac)
    forced = ({key[id(r)] for r in records if r["voice_id"] in held_voices}
              if cfg.heldout_voice_sentences else set())
    held_sentences |= forced
    said: dict[str, set[str]] = {}
    for r in records:
        said.setdefault(r["voice_id"], set()).add(key[id(r)])
    unheard = []
    for spk in speakers:
        if spk in held_voices or said[spk] - held_sentences:
            continue
        back = sorted(said[spk] - forced)
        if back:
            held_sentences.discard(rng.choice(back))
        else:
            unheard.append(spk)
    for r in records:
        r["sentence_id"] = sentence_id[key[id(r)]]
        r["split"] = ("heldout_voices" if r["voice_id"] in held_voices else
                      "heldout_sentences" if key[id(r)] in held_sentences else "train")
    if records and not any(r["split"] == "train" for r in records):
        raise ValueError(f"no train utterances are left after holding out {len(held_voices)} of "
                         f"{len(speakers)} speakers and {len(held_sentences)} of "
                         f"{len(sentences)} transcripts (with every transcript a held-out "
                         "speaker reads); pass --no-heldout-voice-sentences (a shared script) or "
                         "smaller --heldout-voice-frac / --heldout-sentence-frac, then run the "
                         "same import again: only the split is redone")
    return unheard


def pair_prompts(records: list[dict], seed: int) -> None:
    """Give every row a prompt, in place: another recording of its speaker, from its own split
    when there is one; "" for a speaker heard once."""
    rng = random.Random(f"prompt:{seed}")
    by_voice: dict[str, list[dict]] = {}
    for r in records:
        by_voice.setdefault(r["voice_id"], []).append(r)
    for r in records:
        others = [o for o in by_voice[r["voice_id"]] if o is not r]
        same = [o for o in others if o["split"] == r["split"]]
        r["prompt_id"] = rng.choice(same or others)["utt_id"] if others else ""


def summarize(records: list[dict], skipped: list[dict], label_names: list[str],
              how: Counter) -> dict:
    """Counts for the printed summary and the manifest."""
    splits = Counter(r["split"] for r in records)
    labels = {}
    for name in label_names:
        values = Counter(str(r.get(name)) for r in records if r.get(name) is not None)
        labels[name] = dict(values.most_common(5)) | {"distinct": len(values)}
    reasons = Counter(s["reason"] for s in skipped)
    return {"utterances": len(records),
            "hours": round(sum(r["duration"] for r in records) / 3600, 3),
            "speakers": len({r["voice_id"] for r in records}),
            "sentences": len({r["sentence_id"] for r in records}),
            "split": {s: splits.get(s, 0) for s in SPLITS}, "labels": labels,
            "timings": dict(how),
            "skipped": {r: reasons[r] for r in REASONS if reasons.get(r)}}


def check_config(cfg: ImportConfig) -> None:
    source = Path(cfg.source)
    if not source.exists():
        raise FileNotFoundError(f"no manifest or folder at {source}")
    if source.is_file() and source.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise ValueError(f"{source}: give a .csv or .jsonl manifest, or a folder of recordings")
    if source.is_dir() and Path(cfg.out).resolve() == source.resolve():
        raise ValueError(f"--out {cfg.out} is the recordings folder; give another folder")
    if cfg.timings not in TIMINGS:
        raise ValueError(f"--timings {cfg.timings!r}: give one of {', '.join(TIMINGS)}")
    if cfg.max_seconds <= 0:
        raise ValueError(f"--max-seconds {cfg.max_seconds}: give a positive length")
    for name in ("heldout_voice_frac", "heldout_sentence_frac"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: give a share in "
                             "[0, 1)")


def run_import(cfg: ImportConfig) -> dict:
    """Import (resuming) the recordings `cfg.source` names into the corpus folder `cfg.out`;
    returns its manifest (with `summary`) after writing the table and `import_report.json`."""
    check_config(cfg)
    start = time.time()
    out = Path(cfg.out)
    if Path(cfg.source).is_dir():
        items, label_names, renamed = read_folder(cfg), [], {}
    else:
        items, label_names, renamed = read_manifest(cfg)
    config = cfg.to_dict() | {"source_digest": source_digest(cfg)}
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out, config, "an import")
    if cfg.timings == "ctc":  # a missing recogniser is one line now, not one per row later
        from interp.instruments.meter import asr_model

        if not hasattr(asr_model(cfg.asr or None), "log_probs"):
            raise ValueError("--timings ctc needs a CTC recogniser (forced alignment); the one "
                             f"in {cfg.asr} is not: give --timings whole or another --asr")
    manifest = {"kind": "imported", "config": config, "splitting": cfg.splitting(),
                "label_columns": label_names, "renamed_columns": renamed}
    atomic_write_json(out / MANIFEST, manifest)
    lines, done_before = run_chunks(items, cfg, out)
    records = [x["record"] for x in lines if "record" in x]
    skipped = [x["skipped"] for x in lines if "skipped" in x]
    how = Counter(x["timings"] for x in lines if "record" in x)
    if not records:
        atomic_write_json(out / REPORT, {"rows": len(items), "kept": 0, "skipped": skipped})
        reasons = Counter(s["reason"] for s in skipped)
        raise ValueError(f"no usable recordings in {cfg.source}: all {len(skipped)} rows were "
                         "skipped (" + ", ".join(f"{k} {v}" for k, v in reasons.items())
                         + f"); see {out / REPORT}")
    for name in label_names:
        for r, v in zip(records, _typed([r.get(name) for r in records]), strict=True):
            r[name] = v
    for r in records:
        r["domain"] = r["domain"] or cfg.domain
    unheard = assign_splits(records, cfg)
    pair_prompts(records, cfg.seed)
    write_table(records, out / TABLE)
    report = {"rows": len(items), "kept": len(records), "skipped": skipped,
              "timing_fallback": [x["record"]["utt_id"] for x in lines
                                  if x.get("timings") == "fallback"],
              "renamed_columns": renamed}
    atomic_write_json(out / REPORT, report)
    manifest["summary"] = summarize(records, skipped, label_names, how) | {
        "rows": len(items), "import_seconds": round(time.time() - start, 1),
        "resumed_from": done_before, "speakers_without_train": unheard}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def print_summary(out: Path, manifest: dict, max_listed: int = 20) -> None:
    """The one summary of an import: sizes, splits, labels, timings and every skipped row."""
    s = manifest["summary"]
    print(f"\nimported corpus: {out}  ({s['utterances']} of {s['rows']} rows kept, "
          f"{s['hours']:.2f} h, {s['speakers']} speakers, {s['sentences']} transcripts, "
          f"{s['import_seconds']} s)")
    print("  split     " + "  ".join(f"{k}={v}" for k, v in s["split"].items()))
    for name, values in s["labels"].items():
        shown = "  ".join(f"{k}={v}" for k, v in values.items() if k != "distinct")
        print(f"  label     {name} ({values['distinct']} values): {shown}")
    if manifest.get("renamed_columns"):
        print("  renamed   " + ", ".join(f"{a} -> {b}" for a, b in
                                          manifest["renamed_columns"].items())
              + " (the import computes the original names)")
    print("  timings   " + "  ".join(f"{k}={v}" for k, v in s["timings"].items()))
    if s.get("speakers_without_train"):
        print(f"  note      {len(s['speakers_without_train'])} training speakers have no train "
              "row (held-out speakers read all their transcripts): "
              + ", ".join(s["speakers_without_train"][:10]))
    if s["skipped"]:
        print(f"  skipped   {sum(s['skipped'].values())} rows: " + "  ".join(
            f"{k}={v} ({REASONS[k]})" for k, v in s["skipped"].items()))
        report = json.loads((out / REPORT).read_text())
        for x in report["skipped"][:max_listed]:
            print(f"    row {x['row']} {x['source']}: {x['reason']}: {x['detail']}")
        if len(report["skipped"]) > max_listed:
            print(f"    ... {len(report['skipped']) - max_listed} more in {out / REPORT}")
    print(f"  table: {out / TABLE}   audio: {out / 'wav'}/   report: {out / REPORT}")
