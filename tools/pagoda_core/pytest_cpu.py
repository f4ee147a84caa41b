"""pytest plugin: what each test cost in CPU time, listed after the run, dearest first.

`--durations` lists wall time, which on a busy machine says more about the machine than about the
test. This plugin measures, around each test's setup, call and teardown, the CPU time of the
process running it and of the children it has reaped (QEMU, GDB, the grader's pytest, ninja and
the compilers): the cost that stays when the machine is shared. A shared fixture (module scope)
counts in the test that set it up. Under xdist each worker measures its own
tests, and the numbers travel to the controller in the reports (user_properties), which prints:

  CPU time by test file   the files, dearest first (where sharing or a cut pays)
  CPU time by test        the CPU_TOP dearest tests

Every tool-test conftest.py calls register(config) from pytest_configure (as for pytest_speed).

With $PAGODA_ONE_ISA set (a seed: `./pagoda test` without --full sets the commit), a test case
parametrized over the ISAs runs on one of them, as `labs mutants --one-isa` runs a slip: the seed
shuffles the cases (a fixture's ISA of module scope decides its whole module), each takes the ISA
with the fewest cases so far, and the others' are reported deselected (by the xdist controller
too: a worker sends their node ids in its workeroutput).
"""
import collections
import os
import sys

import pytest

from .paths import ARCHES, END_TO_END_MARK, one_isa_each
from .speed import cpu_seconds

NAME = "pagoda-cpu"
PROPERTY = "pagoda_cpu_s"
CPU_TOP = 40          # tests listed
FILES_TOP = 25        # files listed
ONE_ISA = "PAGODA_ONE_ISA"


def register(config):
    config.addinivalue_line("markers", f"{END_TO_END_MARK}: builds or grades whole trees; CI's level, not the sample's "
                            "(./pagoda test without --ci or --full deselects it)")
    if not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(sys.modules[__name__], NAME)


def _measured(item, when):
    start = cpu_seconds()
    yield
    _spent[(item.nodeid, when)] = cpu_seconds() - start


# (a dict here, not item.stash: pytest 6.2, Ubuntu 22.04's, has no stash; pytest 7.0 added it)
_spent = {}                         # (test node id, "setup"/"call"/"teardown"): CPU seconds, until reported
_totals = collections.Counter()     # test node id: CPU seconds, this run
_left = set()                       # node ids of the cases left to the other ISA, this run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _measured(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _measured(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _measured(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    spent = _spent.pop((item.nodeid, call.when), None)
    if spent is not None:
        outcome.get_result().user_properties.append((PROPERTY, round(spent, 3)))


def pytest_configure(config):
    _spent.clear()
    _totals.clear()
    _left.clear()


def pytest_collection_modifyitems(config, items):
    seed = os.environ.pop(ONE_ISA, None)       # (not for the pytest runs the tests start)
    cases = collections.defaultdict(lambda: collections.defaultdict(list))   # case: {ISA: items}
    for item in items if seed is not None else ():
        spec = getattr(item, "callspec", None)
        values = {**getattr(spec, "funcargs", {}), **getattr(spec, "params", {})}
        name = next((n for n, v in values.items() if isinstance(v, str) and v in ARCHES), None)
        if name is None:
            continue
        if getattr(getattr(spec, "_arg2scope", {}).get(name), "value", "function") == "function":
            case = item.nodeid.split("[")[0], sorted((n, repr(v)) for n, v in values.items() if n != name)
        else:
            case = item.nodeid.split("::")[0], name
        cases[f"{case}"][values[name]].append(item)
    picked = one_isa_each({case: {a: len(them) for a, them in isas.items()} for case, isas in cases.items()}, seed)
    left = {i.nodeid for case, isas in cases.items() for a, them in isas.items() if a != picked[case] for i in them}
    if left:
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in left])
        items[:] = [i for i in items if i.nodeid not in left]
        getattr(config, "workeroutput", {})[ONE_ISA] = sorted(left)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # (the controller: each worker deselected the same cases; reported once, by their node ids)
    left = set(getattr(node, "workeroutput", {}).get(ONE_ISA, ())) - _left
    _left.update(left)
    if left:
        node.config.hook.pytest_deselected(items=sorted(left))


def pytest_runtest_logreport(report):
    # (the controller's copy of a worker's report, or this process's own without xdist)
    for name, value in getattr(report, "user_properties", ()):
        if name == PROPERTY:
            _totals[report.nodeid] += value


def summary_lines(totals, tests=CPU_TOP, files=FILES_TOP):
    """The two tables of @p totals ({test node id: CPU seconds})."""
    if not totals:
        return []
    by_file = collections.Counter()
    for nodeid, value in totals.items():
        by_file[nodeid.split("::")[0]] += value
    lines = [f"CPU time of the tests: {sum(totals.values()):.1f} s in {len(totals)} tests "
             "(each test's process and the children it reaped; a shared fixture counts in the test that set it up)",
             "CPU time by test file:"]
    lines += [f"{value:9.2f}s  {name}" for name, value in by_file.most_common(files)]
    lines.append("CPU time by test:")
    lines += [f"{value:9.2f}s  {name}" for name, value in totals.most_common(tests)]
    return lines


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return              # a worker: the controller prints the whole run's
    lines = summary_lines(_totals)
    if lines:
        terminalreporter.write_sep("=", "CPU time (pagoda_core/pytest_cpu.py)")
        for line in lines:
            terminalreporter.write_line(line)
