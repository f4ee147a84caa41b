"""Messages to the terminal: one style for every subcommand."""
import sys


class PagodaError(Exception):
    """A failure to report in one clear line (no traceback); exit status 2 unless given."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def info(message):
    print(f"pagoda: {message}", file=sys.stderr, flush=True)


def warn(message):
    print(f"pagoda: warning: {message}", file=sys.stderr, flush=True)
