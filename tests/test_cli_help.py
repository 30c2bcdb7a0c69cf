"""Every CLI of the README answers --help (argparse renders every flag's help text)."""

from __future__ import annotations

import dataclasses
import runpy
import sys
from pathlib import Path

import pytest

CLIS = ["interp.corpus", "interp.audio", "interp.models", "interp.models.train",
        "interp.models.evaluate", "interp.models.compare", "interp.models.random_init",
        "interp.models.record",
        "interp.cache", "interp.edit", "workbench.report", "sae.train",
        "sae.sweep", "sae.compare", "sae.probes", "autointerp.run", "autointerp.dashboard",
        "steering.run", "steering.frontier", "steering.layers", "steering.edit_compare",
        "interp.judge", "interp.instruments", "benchmarks", "benchmarks.tinycosy_training",
        "interp.edit build", "interp.edit train", "interp.edit evaluate", "interp.corpus build",
        "interp.corpus import",
        "interp.audio roundtrip", "autointerp.dashboard build", "autointerp.dashboard serve",
        "interp.instruments.evaluate", "interp.instruments.open_speech",
        "interp.instruments.train asr"]


@pytest.mark.parametrize("module", CLIS)
def test_help(module, monkeypatch, capsys):
    module, *sub = module.split()
    monkeypatch.setattr(sys, "argv", [module, *sub, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exit_.value.code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


STAGE_CLIS = ["interp.cache", "sae.train", "sae.sweep", "sae.probes", "autointerp.run",
              "steering.run", "steering.frontier", "steering.layers", "steering.edit_compare", "interp.models",
              "interp.models.evaluate"]


@pytest.mark.parametrize("module", STAGE_CLIS)
def test_every_stage_cli_takes_model(module, monkeypatch, capsys):
    """Every stage reaches its model through `load_backbone`, named by --model."""
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit):
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert "--model" in capsys.readouterr().out


def test_config_docs_are_inherited():
    """TinyCosy's and TinyEdit's runs share the loop's fields; --help documents every one, and a
    field a subclass documents again keeps its own text."""
    from interp.cli import field_docs
    from interp.edit.train import EditTrainConfig
    from interp.models.train import LoopConfig, TrainConfig

    for cls in (TrainConfig, EditTrainConfig):
        docs = field_docs(cls)
        assert set(docs) == {f.name for f in dataclasses.fields(cls)}
        assert docs["batch_size"] == field_docs(LoopConfig)["batch_size"]
    assert "fine-tuning" in field_docs(EditTrainConfig)["lr"]
    assert "fine-tuning" not in field_docs(TrainConfig)["lr"]



@dataclasses.dataclass(frozen=True)
class Typed:
    source: Path
    """what to read"""
    name: str
    """a required flag"""
    sizes: tuple[int, ...] = (2, 3)
    """numbers"""
    rate: float | None = None
    """a number or nothing"""
    out: Path = Path("x/y")
    """a path"""


def test_config_args_are_typed_from_annotations():
    """Lists are lists of numbers, an optional number is a number, a field without a default is
    required, and a field named positional is one."""
    import argparse

    from interp.cli import add_config_args, config_from_args

    p = argparse.ArgumentParser()
    add_config_args(p, Typed, positional=("source",))
    cfg = config_from_args(Typed, p.parse_args(["in.wav", "--name", "n", "--sizes", "4", "5",
                                                "--rate", "0.5"]))
    assert cfg == Typed(Path("in.wav"), "n", (4, 5), 0.5, Path("x/y"))
    assert config_from_args(Typed, p.parse_args(["a", "--name", "n"])).rate is None
    assert "(default: 'x/y')" in p.format_help()
    with pytest.raises(SystemExit):
        p.parse_args(["a"])  # --name is required
