"""pytest plugin: a module's shared fixtures are set up once, not once per xdist worker.

`./pagoda test` runs the tool tests on every CPU with pytest-xdist (`-n auto --dist loadgroup`).
In xdist's plain `load` mode the tests of one module are dealt out to all the workers, and each
worker sets up the module's fixtures for itself: a module-scoped boot, GDB session, built tree
or graded batch was made once per worker that got one of its tests (on 2 CPUs, usually twice).

Under `--dist loadgroup` this plugin puts every test that uses a fixture of module, package or
class scope into its file's xdist group, so that the file's tests run on one worker and those
fixtures are set up once. Tests that use only function- or session-scoped fixtures stay
ungrouped and are dealt out one by one as before. Without loadgroup (a single file run by hand,
`-p no:xdist`) it does nothing.

Every tool-test conftest.py calls register(config) from pytest_configure (as for pytest_speed).
"""
import sys

import pytest

NAME = "pagoda-share"
SHARED_SCOPES = ("module", "package", "class")


def register(config):
    if not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(sys.modules[__name__], NAME)


def shared_fixtures(item):
    """Names of the fixtures of @p item whose one instance serves several tests."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(name for name, defs in info.name2fixturedefs.items()
                  if defs and defs[-1].scope in SHARED_SCOPES)


def group_of(item):
    """The xdist group @p item joins, or None: its file, when it uses a shared fixture."""
    return item.nodeid.split("::")[0] if shared_fixtures(item) else None


@pytest.hookimpl(tryfirst=True)   # before xdist's worker hook reads the groups
def pytest_collection_modifyitems(config, items):
    # (a worker sees dist "no" and xdist's own flag `loadgroup`; the controller sees the choice)
    if not (getattr(config.option, "loadgroup", False) or getattr(config.option, "dist", None) == "loadgroup"):
        return
    for item in items:
        group = group_of(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
