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


def add_config_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per dataclass field (underscores become dashes), default from the class."""
    docs = field_docs(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings: a literal "20%" in a docstring must reach it as "20%%"
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="*", default=list(default), help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text)


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_cli(main) -> None:
    """Run `main()`; a user error becomes one line on stderr and exit code 2, not a traceback.

    SIGTERM (a `kill`, a scheduler's time limit) is handled like Ctrl-C, so long stages write
    their checkpoint on the way out; SIGINT is re-enabled for jobs started in the background."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
