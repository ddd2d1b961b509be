"""What every command-line tool of the suite shares: usage errors in one line."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, `<tool>: error: ...`, with exit status 2, like every
    other error of these tools (a subcommand's parser says the tool's name too, not `<tool> <subcommand>`)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog.split()[0]}: error: {message}\n")
