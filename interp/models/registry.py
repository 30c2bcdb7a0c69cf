"""One entry point from a model name (or a local directory) to a `Backbone`.

    tinycosy               the embedded default (data/tinycosy)
    tinycosy:<dir>         another TinyCosy export
    tinyedit               the embedded audio-editing LM (data/tinyedit; interp.edit)
    tinyedit:<dir>         another TinyEdit export
    cosyvoice3:<dir>       a CosyVoice3 model dir (llm.pt + CosyVoice-BlankEN/)
    editing-lm:<dir>       a local transformers causal LM used as an audio-editing backbone
    <dir>                  one of the above, told apart by the files in it
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from interp.device import pick_device
from interp.models.backbone import Backbone
from interp.models.tinycosy_backbone import TinyCosyBackbone
from interp.paths import TINYCOSY_DIR

Loader = Callable[..., Backbone]


def _codec_option(kind: str, options: dict) -> str | None:
    """TinyCosy-family loaders take one option, `codec` (a codec folder other than the one the
    export names, e.g. in tests)."""
    unknown = sorted(set(options) - {"codec"})
    if unknown:
        raise ValueError(f"{kind} takes only the option codec=<dir> (got {unknown})")
    return options.get("codec")


def _tinycosy(folder: str | None, device: torch.device, **options) -> Backbone:
    codec = _codec_option("tinycosy", options)
    shipped = not folder or Path(folder).resolve() == TINYCOSY_DIR.resolve()
    return TinyCosyBackbone.load(folder or TINYCOSY_DIR, device, codec,
                                 spec="tinycosy" if shipped else f"tinycosy:{folder}")


def _tinyedit(folder: str | None, device: torch.device, **options) -> Backbone:
    from interp.edit.model import load_tinyedit

    return load_tinyedit(folder, device, _codec_option("tinyedit", options))


def _cosyvoice3(folder: str | None, device: torch.device, **options) -> Backbone:
    from interp.models.cosyvoice3 import CosyVoice3Backbone

    if options:
        raise ValueError(f"cosyvoice3 takes no options (got {sorted(options)})")
    return CosyVoice3Backbone.load(_need_dir("cosyvoice3", folder), device)


def _editing_lm(folder: str | None, device: torch.device, **options) -> Backbone:
    from interp.models.editing_lm import config_from_flags, load_editing_lm

    return load_editing_lm(_need_dir("editing-lm", folder), config_from_flags(**options), device)


LOADERS: dict[str, Loader] = {"tinycosy": _tinycosy, "tinyedit": _tinyedit,
                              "cosyvoice3": _cosyvoice3, "editing-lm": _editing_lm}
USAGE = ("tinycosy (default), tinycosy:<dir>, tinyedit[:<dir>], cosyvoice3:<dir>, "
         "editing-lm:<dir>, or a model directory")


def _need_dir(kind: str, folder: str | None) -> str:
    if not folder:
        raise ValueError(f"{kind} needs a local model directory: {kind}:<dir>")
    return folder


def detect(folder: Path) -> str:
    """Which loader a directory is for, from the files it holds."""
    if (folder / "llm.pt").exists():
        return "cosyvoice3"
    if (folder / "edit.json").exists():
        return "tinyedit"
    config = folder / "config.json"
    if config.exists():
        try:
            arch = json.loads(config.read_text()).get("architecture")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{config} is corrupt or truncated ({exc}); restore it from the "
                             "model's export") from None
        return "tinycosy" if arch == "tinycosy" else "editing-lm"
    raise ValueError(f"{folder} holds neither llm.pt (CosyVoice3) nor config.json (TinyCosy or "
                     "a transformers LM)")


def load_backbone(name_or_dir: str | Path = "tinycosy", device: str | torch.device = "auto",
                  **options) -> Backbone:
    """A backbone by name (`kind` or `kind:<dir>`) or by directory; options go to the adapter
    (e.g. `speech_token_offset=…, n_speech_tokens=…` for editing-lm, `codec=<dir>` for
    tinycosy and tinyedit)."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    name_or_dir = str(name_or_dir)
    kind, _, folder = name_or_dir.partition(":")
    if kind not in LOADERS:
        path = Path(name_or_dir).expanduser()
        if not path.is_dir():
            raise ValueError(f"unknown backbone {name_or_dir!r}: use {USAGE}")
        kind, folder = detect(path), str(path)
    return LOADERS[kind](folder or None, dev, **options)
