"""Bad command-line input as one line: ``PROG: error: what is wrong`` on stderr, exit status 2, nothing written.

Every command's parser is a :class:`Parser`, whose errors raise :class:`UsageError` instead of printing the
usage block; the command's ``main`` turns it (and its own checks) into the one line with :func:`fail`.
"""
from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """Bad command-line input: a one-line message naming the flag and what is allowed."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UsageError(message)


class DefaultsHelp(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every flag's default after its help (none for required flags and for
    flags whose help says what no value means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def fail(prog: str, message: object) -> int:
    """Print ``PROG: error: MESSAGE`` (its first line) and return the exit status 2."""
    text = str(message).splitlines()[0] if str(message) else type(message).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2
