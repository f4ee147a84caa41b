"""The end of a forked child that runs Python code instead of a new interpreter (the pytest
tools/pagoda/grade.py forks when PYTEST_IN_FORK is set; nothing sets it since the warm grader,
tools/pagoda/gradefork.py, was deleted: both can go with grade.py's forked pytest)."""
import os
import sys


def exit_after(body):
    """In a forked child: runs @p body() and ends the child with its status, as an interpreter
    would end (SystemExit's code; 1 and a traceback for any other exception; output flushed),
    never returning into the parent's code."""
    status = 1
    try:
        status = body()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status or 0)
