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


def first_line(text):
    """The first line of @p text that is not blank, stripped ("" when none is)."""
    return next((l.strip() for l in (text or "").splitlines() if l.strip()), "")


def clip(text, width):
    """@p text cut to at most @p width characters, with an ellipsis when cut (at a space when
    one is near the end, so that a word or an address is not cut in half)."""
    text = " ".join(text.split()) if "\n" in text else text
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    space = cut.rfind(" ")
    if space >= width * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + "\u2026"
