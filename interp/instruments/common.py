"""What every instrument shares: audio intake, where weights live, cards, threads, errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from interp.atomic import atomic_write_text
from interp.audio import SAMPLE_RATE, wav
from interp.audio.wav import active_seconds, clipped_share

logger = logging.getLogger(__name__)

MIN_SECONDS = 0.05
MIN_SPEECH_S = 0.1  # less sound than this (above -50 dBFS) is silence: nothing to measure
MAX_CLIPPED = 0.001  # a larger share of full-scale samples is clipping
WEIGHTS_ROOT = Path(__file__).resolve().parents[2] / "data" / "instruments"
CARD = "card.json"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class InstrumentError(ValueError):
    """A user-facing problem (bad audio, missing weights) that deserves one line, not a trace."""


NAMES = ("gender", "laughter", "asr", "speaker")  # instruments with weights (speaker: optional)
_IN_USE: dict[str, Path] = {}  # process-wide swaps (use_instruments)


def instrument_dir(name: str, override: str | Path | None = None) -> Path:
    """The folder of an instrument's weights: `override` if given, else the one
    `use_instruments` put in place, else data/instruments/<name>."""
    return Path(override) if override else _IN_USE.get(name, WEIGHTS_ROOT / name)


def in_use(name: str) -> Path | None:
    """The folder `use_instruments` put in place for `name`, or None."""
    return _IN_USE.get(name)


def parse_instruments(spec: str) -> dict[str, Path]:
    """`asr=DIR,gender=DIR` → {name: folder}, each a name of NAMES and an existing folder."""
    out: dict[str, Path] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, eq, folder = part.partition("=")
        if not eq or name.strip() not in NAMES or not folder.strip():
            raise InstrumentError(f"--instruments {spec!r}: give NAME=DIR pairs joined by commas, "
                                  f"NAME one of {', '.join(NAMES)} (e.g. asr=runs/my_asr)")
        path = Path(folder.strip())
        if not path.is_dir():
            raise InstrumentError(f"--instruments: {name.strip()} folder {path} does not exist")
        out[name.strip()] = path
    return out


def use_instruments(spec: str | dict[str, str | Path]) -> dict[str, Path]:
    """Swap instruments for the rest of this process: every reading that does not name a folder
    (measure, the judge's instruments, steering's and evaluation's listening) uses these.
    `spec`: "asr=DIR,gender=DIR" or {name: folder}; empty: nothing changes. Returns the swaps in
    place."""
    swaps = parse_instruments(spec) if isinstance(spec, str) else parse_instruments(
        ",".join(f"{k}={v}" for k, v in spec.items()))
    _IN_USE.update(swaps)
    if swaps:
        logger.info("instruments in use: %s", {k: str(v) for k, v in swaps.items()})
    return dict(_IN_USE)


def require_files(folder: Path, files: tuple[str, ...], name: str) -> None:
    """Fail with one line (and the command that makes them) when weight files are missing."""
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"no {name} weights in {folder} (missing {', '.join(missing)}); train them with "
            f"`python -m interp.instruments.train {name} --out {folder}` or pass a model directory")


def prepare_audio(wav: np.ndarray, sr: int, source: str = "audio") -> tuple[np.ndarray, list[str]]:
    """Mono float32 at 16 kHz plus notes (e.g. a resampling); bad input is an InstrumentError."""
    x = np.asarray(wav, dtype=np.float32)
    notes: list[str] = []
    if x.ndim == 2:  # (T, C) as soundfile reads it, or (C, T)
        x = x.mean(1) if x.shape[0] > x.shape[1] else x.mean(0)
        notes.append("mixed down to mono")
    if x.ndim != 1:
        raise InstrumentError(f"{source}: expected a mono waveform, got shape {x.shape}")
    if x.size == 0:
        raise InstrumentError(f"{source}: the audio is empty")
    if not np.isfinite(x).all():
        raise InstrumentError(f"{source}: the audio holds NaN or infinite samples")
    if sr <= 0:
        raise InstrumentError(f"{source}: invalid sample rate {sr}")
    if sr != SAMPLE_RATE:
        import librosa

        x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE).astype(np.float32)
        notes.append(f"resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    if len(x) < MIN_SECONDS * SAMPLE_RATE:
        raise InstrumentError(f"{source}: too short ({len(x) / SAMPLE_RATE * 1000:.0f} ms; "
                              f"need at least {MIN_SECONDS * 1000:.0f} ms)")
    return x, notes


def input_flags(audio: np.ndarray, sr: int, source_sr: int) -> list[str]:
    """What makes a clip's readings untrustworthy: `silence` (under MIN_SPEECH_S of sound),
    `low_sample_rate` (recorded below the 16 kHz the instruments were trained at: resampling
    cannot restore the missing band), `clipping` (full-scale samples)."""
    flags = []
    if active_seconds(audio, sr) < MIN_SPEECH_S:
        flags.append("silence")
    if source_sr < SAMPLE_RATE:
        flags.append("low_sample_rate")
    if clipped_share(audio) > MAX_CLIPPED:
        flags.append("clipping")
    return flags


def is_silent(audio: np.ndarray, sr: int = SAMPLE_RATE) -> bool:
    return active_seconds(audio, sr) < MIN_SPEECH_S


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples, sample rate) of an audio file; unreadable files are one-line errors."""
    return wav.read_audio(path, error=InstrumentError)


def audio_files(path: str | Path) -> list[Path]:
    """A single audio file, or every audio file under a folder (sorted, recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"no audio file or folder at {path}")
    return [path]


def write_json(path: Path, obj: dict) -> None:
    """Atomic JSON write (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, default=_jsonable, ensure_ascii=False) + "\n")


def _jsonable(o: object) -> object:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_card(folder: Path) -> dict:
    p = folder / CARD
    return json.loads(p.read_text()) if p.exists() else {}


def command_line() -> str:
    """The command that is running, as a user would type it (for cards)."""
    args = [a if " " not in a else repr(a) for a in sys.argv[1:]]
    script = Path(sys.argv[0])
    module = script.stem
    if script.parent.name == "instruments":  # run as python -m interp.instruments[.<module>]
        module = "interp.instruments" + ("" if module == "__main__" else f".{module}")
    return " ".join(["python", "-m", module, *args])


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=WEIGHTS_ROOT.parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def set_threads(n: int) -> None:
    """Torch intra-op threads (the machine is shared: 1 by default in the training CLIs)."""
    if n > 0:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
