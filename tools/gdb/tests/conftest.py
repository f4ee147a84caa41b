"""Make tools/gdb (the pagoda_pt package) and this directory (ptbuild) importable."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.dirname(_HERE), _HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))
for path in (os.path.join(_ROOT, "grade"), os.path.join(_ROOT, "tools")):    # (./pagoda's own path)
    sys.path.insert(0, path)
from pagoda_core import pytest_cpu, pytest_speed  # noqa: E402


def pytest_configure(config):
    pytest_speed.register(config)   # timeout marks scaled to this machine's speed and load
    pytest_cpu.register(config)     # each test's CPU time, the dearest listed after the run
