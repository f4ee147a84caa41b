"""Make tools/gdb (the pagoda_pt package) and this directory (ptbuild) importable."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.dirname(_HERE), _HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(_HERE))), "tools"))
from pagoda_core import pytest_cpu, pytest_speed  # noqa: E402


def pytest_configure(config):
    pytest_speed.register(config)   # timeout marks scaled to this machine's speed and load
    pytest_cpu.register(config)     # each test's CPU time, the dearest listed after the run
