"""Shared CLI plumbing: config dataclass fields become flags, their docstrings the `--help` text."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import logging
import signal
import sys
import textwrap
import threading
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The string literal that follows each field in the class body (sparsify's convention),
    inherited from base dataclasses unless the subclass documents the field again."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
                docs[node.target.id] = str(nxt.value.value)
    return docs


def _default(f: dataclasses.Field) -> Any:
    """A field's default (MISSING when the field has none)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _value_type(hint: Any, default: Any) -> Any:
    """The type argparse converts one value with: X for `X`, `X | None` and `tuple[X, ...]`,
    so that a list of numbers parses to numbers; else the default's own type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _value_type(args[0], default)
    if typing.get_origin(hint) in (tuple, list) and args and isinstance(args[0], type):
        return args[0]
    if isinstance(hint, type) and hint not in (tuple, list):
        return hint
    if default is None or default is dataclasses.MISSING or isinstance(default, (tuple, list)):
        return str
    return type(default)


def _shown(default: Any) -> str:
    """A default as `--help` shows it: a path as its text (relative to the working directory
    when it lies inside it), not PosixPath(...)."""
    if not isinstance(default, PurePath):
        return repr(default)
    path = Path(default)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return repr(str(path))


def add_config_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                    positional: tuple[str, ...] = ()) -> None:
    """One `--flag` per dataclass field (underscores become dashes), default from the class.

    Values are typed from the field's annotation (`tuple[int, ...]` → ints, `float | None` →
    float); a field without a default is a required flag, and the fields named in `positional`
    are positional arguments."""
    docs = field_docs(cls)
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # an annotation only importable under TYPE_CHECKING: type from defaults
        hints = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = _default(f)
        required = default is dataclasses.MISSING
        kind = _value_type(hints.get(f.name), default)
        # argparse %-formats help strings: a literal "20%" in a docstring must reach it as "20%%"
        shown = "" if required or default is None else f" (default: {_shown(default)})"
        help_text = f"{docs.get(f.name, '')}{shown}".replace("%", "%%")
        if f.name in positional:
            extra: dict[str, Any] = {} if required else {"nargs": "?", "default": default}
            parser.add_argument(f.name, type=kind, help=help_text, **extra)
            continue
        flag = "--" + f.name.replace("_", "-")
        given: dict[str, Any] = {"required": True} if required else {"default": default}
        if isinstance(default, bool) or (required and kind is bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text,
                                **given)
        elif isinstance(default, tuple) or typing.get_origin(hints.get(f.name)) in (tuple, list):
            if isinstance(default, tuple):
                given["default"] = list(default)
            parser.add_argument(flag, nargs="*", type=kind, help=help_text, **given)
        else:
            parser.add_argument(flag, type=kind, help=help_text, **given)


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


EXIT_USAGE = 2  # bad input or a refusal: one line on stderr, nothing already computed changed
EXIT_PARTIAL = 3  # finished, but some items could not be done (counted in the output)
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM


class StageInterrupted(KeyboardInterrupt):
    """A long stage stopped on SIGINT/SIGTERM after saving its state; the message says what it
    kept (e.g. "checkpoint at step 40 of 100 kept in runs/x/checkpoint; run again to resume")."""


class StopRequest:
    """Set by SIGINT/SIGTERM while `stop_requests()` is active; a loop polls `requested` at its
    next safe boundary (a finished step, a written shard), saves, and raises StageInterrupted."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def handler(self, signum: int, _frame: object) -> None:
        if self.requested:  # asked twice: stop now, even mid-step
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        logging.getLogger(__name__).warning(
            "%s received: stopping at the next step boundary (send it again to stop at once)",
            self.signal_name)


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """While active (in the main thread), SIGINT and SIGTERM set a flag instead of raising
    mid-step; the previous handlers come back on exit. In another thread it only yields a flag
    that is never set."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, stop.handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a multi-line message is joined with ' | ')."""
    text = str(exc).strip() or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def run_cli(main) -> None:
    """Run `main()`; a user error becomes one line on stderr and exit code 2, not a traceback.

    SIGTERM (a `kill`, a scheduler's time limit) is handled like Ctrl-C. A stage that saves its
    state on the way out raises StageInterrupted, whose message (what it kept) is printed;
    anything else is reported as interrupted without a promise. Exit 130 either way."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except StageInterrupted as exc:
        print(f"interrupted: {one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        print("interrupted: files this stage had finished stay as they were; see "
              "docs/reliability.md for which stages resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
