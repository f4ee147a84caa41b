"""Tests of ./pagoda's own modules (tools/pagoda). They import the package directly; the
lab-machinery tests share labtree.py (a module name of its own: several conftest.py files
meet in one `./pagoda test` run)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)

import labtree  # noqa: E402
from pagoda import pytest_speed  # noqa: E402


def pytest_configure(config):
    pytest_speed.register(config)   # timeout marks scaled to this machine's speed and load


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    return str(labtree.build_tree(str(root)))
