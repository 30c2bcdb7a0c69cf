"""MMAE-compatible rubric judge: an OpenAI-compatible audio LLM or offline acoustic measurements.

Reads MMAE metadata + predictions, asks each rubric 3 times with shuffled options (2 of 3 right
passes), writes results.jsonl (resumable), per_sample.json and taxonomy.json (IFR, CR, EMR).
See /work/shared/MMAE.md for the format and `python -m interp.judge --help` for the CLI.
"""

from interp.judge.acoustic_backend import (
    ASR,
    LAUGHTER,
    AcousticBackend,
    AcousticConfig,
    register_instrument,
    register_matcher,
    unregister_instrument,
)
from interp.judge.api_backend import ApiBackend, ApiConfig
from interp.judge.controls import write_controls
from interp.judge.format import JudgeDataError, Rubric, load_metadata, load_predictions
from interp.judge.mmae_writer import (
    build_sample,
    make_sample_id,
    write_mmae_sample,
    write_mmae_set,
)
from interp.judge.runner import JudgeConfig, ajudge, judge

__all__ = [
    "ASR",
    "LAUGHTER",
    "AcousticBackend",
    "AcousticConfig",
    "ApiBackend",
    "ApiConfig",
    "JudgeConfig",
    "JudgeDataError",
    "Rubric",
    "ajudge",
    "build_sample",
    "judge",
    "load_metadata",
    "load_predictions",
    "make_sample_id",
    "register_instrument",
    "register_matcher",
    "unregister_instrument",
    "write_controls",
    "write_mmae_sample",
    "write_mmae_set",
]
