"""The interface every backbone offers the workbench (TinyCosy, TinyEdit, CosyVoice3, editing LMs).

A stage touches a model only through a `Backbone` (`interp.models.registry.load_backbone`): its
depth and width, its hook points in TransformerLens grammar, its text and speech tokenizers, a
teacher-forced pass that says which modality each position has (and a batched one over
right-padded rows, one by one where a model cannot batch), the corpus's examples in its
own input layout, seeded generation (and a batched one, each row with its own seed and steering
edits, one by one where a model cannot batch), and `render` where a waveform decoder exists. Nothing below
the Backbone knows which model it is.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from interp.audio import SAMPLE_RATE
from interp.hooks.intervene import Intervention, intervene, intervene_rows
from interp.hooks.points import hook_names, parse_hook
from interp.models.data import Example, cut_prompt
from interp.models.generate import (
    SamplingConfig,
    can_generate_batch,
    generate_batch,
    generate_tokens,
)

PROMPT_SECONDS = 3.0  # a wav prompt is cut to its first 3 s, as CosyVoice3 does


@dataclass(frozen=True)
class TeacherForced:
    """Output of a teacher-forced pass over one sequence."""

    logits: torch.Tensor  # (T, n_speech)
    modality: list[str]  # (T,) "text" | "speech" | "special"
    target_start: int  # first position whose next token is a target speech token


@dataclass(frozen=True)
class Request:
    """One generation request, tokenized: text ids, prompt speech tokens, the text's length in
    the units the length bounds use, and the modality of each prefix position."""

    text_ids: torch.Tensor  # (n_text_ids,)
    prompt: torch.Tensor  # (n_prompt,) speech tokens
    n_text: int
    modality: list[str]


TFSequence = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (text ids, prompt, target)


class Backbone(Protocol):
    """What every stage may use of a model. `spec` is what `load_backbone` was given."""

    name: str
    spec: str
    n_layers: int
    d_model: int
    model: torch.nn.Module
    voices: dict[str, dict]

    @property
    def fingerprint(self) -> str: ...

    @property
    def max_positions(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def hook_points(self) -> list[str]: ...

    def check_hook(self, name: str) -> tuple[int, str]: ...

    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]: ...

    def token_texts(self, ids: list[int]) -> list[str]: ...

    def special_id(self, token: str) -> int | None: ...

    def speech_tokens(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray: ...

    def tokenize_corpus(self, corpus: Path, out: Path, workers: int | None = None) -> dict: ...

    def token_source(self) -> str | None: ...

    def check_tokens(self, tokens: Path, corpus: Path) -> None: ...

    def prompt(self, prompt: str | Path | np.ndarray) -> tuple[str, np.ndarray]: ...

    def request(self, text: str, prompt, instruction: str | None = None) -> Request: ...

    def teacher_forced(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                       target: torch.Tensor) -> TeacherForced: ...

    def can_batch(self) -> bool: ...

    def teacher_forced_batch(self, seqs: list[TFSequence]) -> list[TeacherForced]: ...

    def generate(self, text_ids: torch.Tensor, prompt: torch.Tensor, n_text: int,
                 sampling: SamplingConfig | None = None) -> list[int]: ...

    def can_batch_generate(self) -> bool: ...

    def generate_batch(self, requests: list[Request],
                       sampling: SamplingConfig | list[SamplingConfig] | None = None,
                       interventions: list[list[Intervention]] | None = None
                       ) -> list[list[int]]: ...

    def logit_lens(self, vectors: torch.Tensor) -> torch.Tensor: ...

    def code_profile(self): ...

    def corpus_examples(self, corpus: Path, tokens: Path, splits: list[str],
                        max_utts: int = 0) -> list[tuple[Example, int, int]]: ...

    def render_missing(self) -> str: ...

    def text_pointer(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                     tokens: list[int]) -> list[int]: ...

    def render(self, tokens: list[int] | np.ndarray, prompt=None) -> np.ndarray: ...

    def tts(self, text: str, prompt, instruction: str | None = None, seed: int = 0,
            sampling: SamplingConfig | None = None) -> np.ndarray: ...


def rows_per_forward(backbone, asked: int) -> int:
    """How many sequences to give `teacher_forced_batch` at once: `asked`, or 1 for a backbone
    that cannot batch (or does not say)."""
    if asked < 1:
        raise ValueError(f"--batch-size {asked}: give 1 or more")
    can = getattr(backbone, "can_batch", None)
    return asked if callable(can) and can() and hasattr(backbone, "teacher_forced_batch") else 1


def files_fingerprint(paths: list[Path]) -> str:
    """sha256 prefix of the weight files (one file: the same as `interp.store.fingerprint`)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class SpeechLMBackbone:
    """What every speech-LM backbone shares. Its module offers `prefix(text, prompt)`,
    `speech_embedding(tokens)`, `modality(n_text, n_prompt, n_target)`, `speech_head(hidden)`
    and `forward(embeds) -> (logits, cache)`; subclasses add the text tokenizer, the speech
    tokenizer, the prompt bank and the waveform decoder where they have them."""

    sample_rate = SAMPLE_RATE
    speech_rate = 25.0  # speech tokens per second

    def __init__(self, model: torch.nn.Module, name: str, n_layers: int, d_model: int,
                 spec: str | None = None, weights: tuple[Path, ...] = ()):
        self.model, self.name, self.n_layers, self.d_model = model, name, n_layers, d_model
        self.spec = spec or name
        self.weights = weights
        self.voices: dict[str, dict] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.spec!r}: {self.n_layers} layers × {self.d_model}, "
                f"{len(self.voices)} voices, render: {self.render_missing() or 'yes'})")

    # -- identity ---------------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        """Digest of the weight files (of the weights themselves when there is no file)."""
        if self.weights:
            return files_fingerprint(list(self.weights))
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_positions(self) -> int:
        return int(getattr(getattr(self.model, "cfg", None), "max_positions", 1 << 30))

    # -- hooks ------------------------------------------------------------------------------
    def hook_points(self) -> list[str]:
        return hook_names(self.n_layers)

    def check_hook(self, name: str) -> tuple[int, str]:
        """(layer, kind) of a hook name; a clear error listing the valid ones otherwise."""
        return parse_hook(name, self.n_layers)

    # -- text -------------------------------------------------------------------------------
    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]:
        raise ValueError(f"{self.spec} has no text tokenizer here; give text ids yourself")

    def token_texts(self, ids: list[int]) -> list[str]:
        """The text of each text-token id, one by one (what auto-interp shows)."""
        return [str(i) for i in ids]

    def special_id(self, token: str) -> int | None:
        return None

    # -- speech -----------------------------------------------------------------------------
    def speech_tokens(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        raise ValueError(f"{self.spec} has no speech tokenizer here; give speech tokens")

    def tokenize_corpus(self, corpus: Path, out: Path, workers: int | None = None) -> dict:
        """Speech tokens of every utterance of a corpus into `out` (resumable shards; `workers`
        processes where the tokenizer runs in several, None: all cores)."""
        raise ValueError(f"no speech tokens in {out}, and {self.spec} has no speech tokenizer "
                         f"here: give the tokens of {corpus} in its own speech codes")

    def token_source(self) -> str | None:
        """Checksum of what makes this backbone's speech tokens (the `codec` of a tokens
        manifest it writes), or None where it has no speech tokenizer here."""
        return None

    def check_tokens(self, tokens: Path, corpus: Path) -> None:
        """Refuse, in one line, a tokens folder another speech tokenizer made (when this backbone
        has its own here), or whose codes do not fit the model (when it has none)."""
        from interp.audio.tokenize_corpus import load_token_manifest

        m = load_token_manifest(tokens)
        made_by = m.get("tokenizer") or f"the codec in {m.get('codec_dir', '?')}"
        fix = (f"tokenize {corpus} with its own: python -m interp.audio tokenize --model "
               f"{self.spec} --corpus {corpus} --out NEW_TOKENS_DIR")
        own = self.token_source()
        if own is not None and m.get("codec") != own:
            raise ValueError(f"{tokens} holds speech tokens of {made_by} (checksum "
                             f"{m.get('codec')}), not of {self.spec}'s speech tokenizer "
                             f"({own}); {fix}")
        codes = getattr(getattr(self.model, "cfg", None), "speech_codes", None)
        if codes and m.get("n_codes") and int(m["n_codes"]) > codes:
            raise ValueError(f"{tokens} holds speech tokens of {made_by} in {m['n_codes']} "
                             f"codes, but {self.spec} has {codes}; {fix}")

    def prompt(self, prompt: str | Path | np.ndarray) -> tuple[str, np.ndarray]:
        """(prompt text, prompt speech tokens) of a voice id of the bank, a wav path or a
        16 kHz waveform; a wav prompt is cut to its first 3 s and has no prompt text."""
        from interp.audio.wav import check_prompt, read_audio

        if isinstance(prompt, str) and prompt in self.voices:
            p = self.voices[prompt]
            return p["text"], np.array(p["tokens"], dtype=np.int64)
        sr, source = self.sample_rate, "prompt"
        if isinstance(prompt, (str, Path)):
            source = f"prompt {prompt}"
            if not Path(prompt).exists():
                hint = (f"one of {len(self.voices)} voices (list them with "
                        f"`python -m interp.models --model {self.spec} --list-voices`)"
                        if self.voices else "a wav file")
                raise ValueError(f"prompt {str(prompt)!r} is neither a voice id nor a wav file; "
                                 f"give {hint}")
            prompt, sr = read_audio(prompt)
        audio = np.asarray(prompt, np.float32)
        check_prompt(audio, sr, source)  # silence or a click clones no voice: say so
        return "", self.speech_tokens(audio[: int(PROMPT_SECONDS * sr)], sr)

    def request(self, text: str, prompt, instruction: str | None = None) -> Request:
        """Tokenized text and prompt of one generation, with the prefix's modality (what
        position masks of steering edits need)."""
        p_text, p_tokens = self.prompt(prompt)
        ids, n_text = self.encode_text(text, p_text, instruction)
        return Request(ids, torch.from_numpy(np.asarray(p_tokens, dtype=np.int64)), n_text,
                       self.model.modality(len(ids), len(p_tokens), 0))

    # -- forward ----------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_forced(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                       target: torch.Tensor) -> TeacherForced:
        pre = self.model.prefix(text_ids, prompt)
        embeds = torch.cat([pre, self.model.speech_embedding(target.to(pre.device))])[None]
        logits, _ = self.model(embeds)
        return TeacherForced(logits[0], self.model.modality(len(text_ids), len(prompt),
                                                            len(target)), len(pre) - 1)

    def can_batch(self) -> bool:
        """Whether one forward pass takes several right-padded rows (the module's `forward`
        takes an `attention_mask`)."""
        return "attention_mask" in inspect.signature(self.model.forward).parameters

    @torch.no_grad()
    def teacher_forced_batch(self, seqs: list[TFSequence]) -> list[TeacherForced]:
        """Teacher-forced passes of several (text ids, prompt, target) sequences, each output
        what `teacher_forced` gives for that sequence alone.

        When `can_batch()`: one forward over the rows right-padded to the longest, with an
        attention mask, so that a hook sees (B, T_max, D) and row i's own positions are its first
        `len(out[i].modality)`; padding comes after every real position of its row, so under the
        causal mask no real position attends to it, and positions count from 0 in every row as
        in an unbatched pass. A backbone that cannot batch runs the sequences one by one."""
        if len(seqs) == 1 or not self.can_batch():
            return [self.teacher_forced(*s) for s in seqs]
        rows, starts = [], []
        for text_ids, prompt, target in seqs:
            pre = self.model.prefix(text_ids, prompt)
            rows.append(torch.cat([pre, self.model.speech_embedding(target.to(pre.device))]))
            starts.append(len(pre) - 1)
        lengths = torch.tensor([len(r) for r in rows], device=rows[0].device)
        embeds = pad_sequence(rows, batch_first=True)
        mask = (torch.arange(embeds.shape[1], device=embeds.device)[None]
                < lengths[:, None]).long()
        logits, _ = self.model(embeds, attention_mask=mask)
        return [TeacherForced(logits[i, : len(rows[i])],
                              self.model.modality(len(t), len(p), len(g)), starts[i])
                for i, (t, p, g) in enumerate(seqs)]

    def generate(self, text_ids: torch.Tensor, prompt: torch.Tensor, n_text: int,
                 sampling: SamplingConfig | None = None) -> list[int]:
        return generate_tokens(self.model, text_ids, prompt, n_text, sampling)

    def can_batch_generate(self) -> bool:
        """Whether `generate_batch` makes its rows in one batched pass per step: the module's
        forward takes an attention mask and position ids, and `generate` is this class's."""
        return (type(self).generate is SpeechLMBackbone.generate
                and can_generate_batch(self.model))

    def generate_batch(self, requests: list[Request],
                       sampling: SamplingConfig | list[SamplingConfig] | None = None,
                       interventions: list[list[Intervention]] | None = None
                       ) -> list[list[int]]:
        """Speech tokens of every request, each what `generate` gives it alone under
        `intervene(model, interventions[i])`: `sampling` is one config per request (each with its
        own seed) or one for all; `interventions[i]` are request i's steering edits (none: plain
        generation), applied to its row only, at its own positions.

        When `can_batch_generate()`: one KV-cached batch (`generate_batch` of
        interp.models.generate, with `intervene_rows`); otherwise one request after another."""
        cfgs = (list(sampling) if isinstance(sampling, (list, tuple))
                else [sampling] * len(requests))
        ivs = list(interventions) if interventions is not None else [[] for _ in requests]
        if len(cfgs) != len(requests) or len(ivs) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(cfgs)} sampling configs and "
                             f"{len(ivs)} intervention lists; give one of each per request")
        if len(requests) <= 1 or not self.can_batch_generate():
            out = []
            for req, cfg, iv in zip(requests, cfgs, ivs, strict=True):
                with intervene(self.model, iv):
                    out.append(self.generate(req.text_ids, req.prompt, req.n_text, cfg))
            return out
        rows = [(r.text_ids, r.prompt, r.n_text) for r in requests]
        with intervene_rows(self.model, ivs) as where:
            return generate_batch(self.model, rows, cfgs, observer=where)

    @torch.no_grad()
    def logit_lens(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N, n_speech) speech-token logits of residual directions read straight out through
        the final norm and the speech head (the layers in between ignored)."""
        return self.model.speech_head(vectors.to(self.device).float())

    def code_profile(self):
        """What each speech code sounds like (`interp.audio.code_profile.CodeProfile`: F0,
        voicing, energy, spectral centroid and tilt per code), or None where this backbone's
        speech codes have no code-book to read it from."""
        return None

    def corpus_examples(self, corpus: Path, tokens: Path, splits: list[str],
                        max_utts: int = 0) -> list[tuple[Example, int, int]]:
        """(example, utterance row, prompt row) of the first `max_utts` (0 = all) utterances of
        `splits`, each with the prompt the corpus assigns it (no prompt text dropped)."""
        from interp.audio.tokenize_corpus import load_tokens
        from interp.corpus.table import load_table

        rows = load_table(corpus)
        chosen = [r for r in rows if r["split"] in splits][: max_utts or None]
        if not chosen:
            raise ValueError(f"split {','.join(splits)!r} of {corpus} is empty")
        self.check_tokens(tokens, corpus)
        codes = load_tokens(tokens)
        missing = [r["utt_id"] for r in chosen if r["utt_id"] not in codes]
        if missing:
            raise ValueError(f"{len(missing)} utterances have no speech tokens in {tokens} "
                             f"(e.g. {missing[0]}); tokenize this corpus with this model's "
                             "speech tokenizer")
        index = {r["utt_id"]: i for i, r in enumerate(rows)}
        out = []
        for r in chosen:
            if r["prompt_id"] not in index:
                continue
            p_row = rows[index[r["prompt_id"]]]
            p_text, p_tok = cut_prompt(p_row, codes[p_row["utt_id"]], PROMPT_SECONDS)
            ids, _ = self.encode_text(r["text"], p_text, r["instruction"])
            ex = Example(r["utt_id"], ids, torch.from_numpy(p_tok.astype(np.int64)),
                         torch.from_numpy(codes[r["utt_id"]].astype(np.int64)))
            out.append((ex, index[r["utt_id"]], index[r["prompt_id"]]))
        return out

    def text_pointer(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                     tokens: list[int]) -> list[int]:
        """Per frame of the output `tokens`, the text position a trained pointer head reads
        (TinyCosy trained with --attn-guide has one); other backbones refuse in one line."""
        raise ValueError(f"{self.name} has no text pointer: word-boundary edits need one "
                         "(TinyCosy trained with --attn-guide); use --positions window instead")

    # -- audio ------------------------------------------------------------------------------
    def render_missing(self) -> str:
        """Why waveforms cannot be rendered here ('' when they can)."""
        return f"{self.spec} has no waveform decoder"

    def can_render(self) -> bool:
        return not self.render_missing()

    def render(self, tokens: list[int] | np.ndarray, prompt=None) -> np.ndarray:
        """16 kHz float32 waveform of speech tokens (in the prompt's voice where the decoder
        takes one)."""
        raise RuntimeError(f"cannot render waveforms: {self.render_missing()}")

    def tts(self, text: str, prompt, instruction: str | None = None, seed: int = 0,
            sampling: SamplingConfig | None = None) -> np.ndarray:
        """Speech of `text` in the voice of `prompt`; `sampling` (CosyVoice's by default) with
        its seed replaced by `seed`. Empty when the model stops at once."""
        req = self.request(text, prompt, instruction)
        toks = self.generate(req.text_ids, req.prompt, req.n_text,
                             replace(sampling or SamplingConfig(), seed=seed))
        return self.render(toks, prompt) if toks else np.zeros(0, np.float32)
