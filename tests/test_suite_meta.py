"""The suite itself: every test module imports, every marker a test uses is registered (so
`pytest --strict-markers` passes), the heavy tests carry `slow` (`pytest -m "not slow"` is the fast
loop), and a per-test timeout is set. Cheap: it reads files and imports what pytest has already
imported."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MODULES = sorted(p.stem for p in TESTS.glob("test_*.py"))
BUILTIN_MARKS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings",
                 "timeout"}  # pytest's own, and pytest-timeout's
# The heavy ones, by kind: notebooks, the quick benchmark, the browser, torchrun, training runs.
SLOW = {"test_notebooks": ["test_notebook_runs_top_to_bottom"],
        "test_benchmarks": ["test_benchmarks_quick"],
        "test_dashboard_browser": ["test_browse_search_filter_and_play"],
        "test_store": ["test_torchrun_two_ranks_equal_one_process"],
        "test_sae_sweep": ["test_torchrun_two_ranks_split_the_layers"],
        "test_alignment": ["test_bf16_and_compiled_steps_match_the_fp32_eager_step"],
        "test_tinycosy": ["test_resume_continues_from_checkpoint"],
        "test_tinyedit": ["test_train_resumes_and_exports"]}


def registered_markers(config: pytest.Config) -> set[str]:
    """The markers pyproject.toml declares, as pytest itself read them."""
    return {m.split(":")[0].split("(")[0].strip() for m in config.getini("markers")}


def marks_of(obj) -> set[str]:
    marks = getattr(obj, "pytestmark", [])
    return {m.name for m in (marks if isinstance(marks, list) else [marks])}


@pytest.mark.parametrize("name", MODULES)
def test_every_test_module_imports_and_has_tests(name):
    mod = importlib.import_module(f"tests.{name}")
    assert any(k.startswith("test_") and callable(v) for k, v in vars(mod).items()), name


def test_slow_marker_is_registered_and_every_used_marker_is(pytestconfig):
    assert "slow" in registered_markers(pytestconfig)
    used = {m for p in TESTS.glob("*.py")
            for m in re.findall(r"pytest\.mark\.([A-Za-z_]\w*)", p.read_text())}
    assert used - BUILTIN_MARKS <= registered_markers(pytestconfig), used - BUILTIN_MARKS


def test_the_heavy_tests_are_marked_slow_and_a_timeout_is_set(pytestconfig):
    for name, tests in SLOW.items():
        mod = importlib.import_module(f"tests.{name}")
        for test in tests:
            assert "slow" in marks_of(getattr(mod, test)) | marks_of(mod), f"{name}::{test}"
    assert float(pytestconfig.getini("timeout")) > 0  # pytest-timeout's, from pyproject.toml
