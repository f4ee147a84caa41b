"""Tests of ./pagoda's own modules (tools/pagoda). They import the package directly; the
lab-machinery tests share labtree.py (a module name of its own: several conftest.py files
meet in one `./pagoda test` run)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The Python path of these tests, as ./pagoda sets its own: tools/ (pagoda, pagoda_core), grade/
# (pagoda_grade), tools/gdb/ (pagoda_pt) and this directory (labtree).
for _path in (os.path.join(ROOT, "tools", "gdb"), os.path.join(ROOT, "grade"), os.path.join(ROOT, "tools"), HERE):
    sys.path.insert(0, _path)

import labtree  # noqa: E402
from pagoda import batch  # noqa: E402
from pagoda_core import paths, pytest_share, pytest_speed  # noqa: E402


def pytest_configure(config):
    pytest_speed.register(config)   # timeout marks scaled to this machine's speed and load
    pytest_share.register(config)   # a module's shared fixtures set up on one xdist worker, once
    # Every lab tree these tests grade (batch submissions, the Gradescope and Classroom runs, each
    # in a work directory of its own) compiles through one object cache (batch.Batch.cache): the
    # first build fills it, the others compile only what their patches changed.
    os.environ.setdefault(batch.TREE_CACHE_VARIABLE, os.path.join(paths.BUILD, "tools-tests", "ccache"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    return str(labtree.build_tree(str(root)))
