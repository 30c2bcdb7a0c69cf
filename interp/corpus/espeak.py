"""espeak-ng through its C library (ctypes), so that every word comes with its start time.

The command-line `espeak-ng` cannot report word timings; the library's synthesis callback can
(`espeakEVENT_WORD` events with `audio_position` in ms). One engine per process: the library keeps
global state, so parallel rendering uses processes, never threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import subprocess
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PHONEMES_SPACED = ord(" ") << 8  # ASCII phoneme names, a space between two


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakError(RuntimeError):
    """espeak-ng is missing, or refused a voice."""


# The library looks voices up by file name; `en-gb` is the language code of the file `gmw/en`.
_FILE_NAMES = {"en-gb": "en"}

INSTALL_HINT = "install it with: apt-get install -y espeak-ng (as root) — `make demo` does this"


@dataclass(frozen=True)
class Rendered:
    """One synthesised text segment."""

    audio: np.ndarray  # (N,) float32 in [-1, 1]
    sample_rate: int
    words: list[tuple[int, float]]  # (character offset of a word in the text, start seconds)


class Espeak:
    """A process-local espeak-ng engine. Construct through `engine()`."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as exc:
            raise EspeakError(f"libespeak-ng not found ({exc}); {INSTALL_HINT}") from exc
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None, 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed; {INSTALL_HINT}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []  # (text_position, length, audio ms)
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._events.append((ev.text_position, ev.length, ev.audio_position))
            i += 1
        return 0

    def render(self, text: str, voice: str, rate: int, pitch: int) -> Rendered:
        """Synthesise `text` with `voice` (e.g. ``en-gb-x-rp+f3``) at `rate` wpm and `pitch` 0–99."""
        if not text.strip():
            raise ValueError("empty text: give at least one word to synthesise")
        base, _, variant = voice.partition("+")
        name = _FILE_NAMES.get(base, base) + (f"+{variant}" if variant else "")
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"unknown espeak-ng voice {voice!r}; list them with `espeak-ng --voices=en`")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        # text_position is 1-based in characters of the UTF-8 input (ASCII here). espeak may
        # merge short words ("that it") into one event, so callers align events to their words.
        words = [(p - 1, ms / 1000.0) for p, _, ms in self._events]
        return Rendered(audio=audio, sample_rate=self.sample_rate, words=words)

    def phonemes(self, text: str, voice: str = "en-us") -> list[list[str]]:
        """espeak-ng's phonemes of `text` (its ASCII names, e.g. ``'oU``, stress marks on the
        vowel that follows them), one list per word, as `voice` would say it."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"unknown espeak-ng voice {voice!r}; list them with `espeak-ng --voices=en`")
        ptr = ctypes.c_char_p(text.encode("utf-8"))
        words: list[list[str]] = []
        while ptr.value:  # one clause per call; the library advances `ptr` (NULL at the end)
            out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_SPACED)
            # Phonemes come separated by one space and words by two.
            words += [w.split(" ") for w in (out or b"").decode().split("  ") if w.strip()]
        return words


@functools.lru_cache(maxsize=1)
def engine() -> Espeak:
    """The process's espeak-ng engine (created on first use)."""
    return Espeak()


@functools.lru_cache(maxsize=200_000)  # front ends and recogniser labels see the same runs again
def run_phonemes(words: str, voice: str = "en-us") -> tuple[tuple[str, ...], ...]:
    """espeak-ng's phonemes of a run of words, one tuple per word as espeak-ng splits them."""
    return tuple(tuple(w) for w in engine().phonemes(words, voice))


def check_installed() -> None:
    """Raise a one-line error when the espeak-ng program or library is missing."""
    try:
        subprocess.run(["espeak-ng", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EspeakError(f"espeak-ng is not installed; {INSTALL_HINT}") from exc
    engine()
