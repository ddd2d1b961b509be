"""What the command-line tools (adala-data, adala-fid, adala-report) share."""

from __future__ import annotations

import argparse
import re

# A value Hydra's override grammar reads as this very string when written bare; anything else is quoted.
_BARE = re.compile(r"[A-Za-z_/.][\w./:+-]*", re.ASCII)
_NOT_STRINGS = {"null", "true", "false", "nan", "inf"}  # bare, Hydra reads these (any case) as None, bools, floats


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, `<tool>: error: ...`, with exit status 2, like every
    other error of these tools (a subcommand's parser says the tool's name too, not `<tool> <subcommand>`)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog.split()[0]}: error: {message}\n")


def hydra_string(text: str) -> str:
    """`text` as a Hydra override value that parses back to the same string (a path, a class name, any text)."""
    if _BARE.fullmatch(text) and text.lower() not in _NOT_STRINGS:
        return text
    # Hydra's quoted strings: backslashes are literal except before a quote or the closing quote (then doubled).
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run[1] * 2, text).replace("'", "\\'")
    return f"'{escaped}'"


def hydra_value(value) -> str:
    """A config value as a Hydra override spells it so that it parses back to the same value (floats by repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return hydra_string(str(value))
