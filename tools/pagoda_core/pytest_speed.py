"""pytest plugin: hang guards that hold on a slow or busy machine (speed.py).

A test's `timeout` mark (pytest-timeout) is a guard against a test that hangs, written in
seconds on the reference machine. Under this plugin it fires after that many seconds scaled by
the speed factor, and when it fires while the machine is busier than its CPUs (the 1-minute
load average above the CPU count) it is set again, up to EXTENSIONS times: a test that is
merely slow because the machine is loaded runs on; one that hangs on a quiet machine still
fails at the scaled time. Without pytest-timeout's timer hooks (pytest-timeout < 2.1) the mark
is scaled once and pytest-timeout does the rest.

Every conftest.py of the project calls register(config) from pytest_configure; the plugin is
registered once per session whichever conftest comes first.
"""
import os
import signal
import sys
import threading

import pytest

from . import speed

NAME = "pagoda-speed"
# How many times a guard is set again while the machine is busy; PAGODA_BUSY_EXTENSIONS
# changes it (0: a guard fires at the scaled time, busy or not).
EXTENSIONS_ENV = "PAGODA_BUSY_EXTENSIONS"
EXTENSIONS = 4


def _extensions():
    try:
        return max(0, int(os.environ[EXTENSIONS_ENV]))
    except (KeyError, ValueError):
        return EXTENSIONS


def register(config):
    if not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(sys.modules[__name__], NAME)


def pytest_timeout_set_timer(item, settings):
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None     # pytest-timeout's thread method: left to it, scaled below
    period = speed.scaled(settings.timeout)
    state = {"extensions": 0}
    most = _extensions()

    def handler(signum, frame):
        __tracebackhide__ = True
        if state["extensions"] < most and speed.load_factor() > 1:   # busier than its CPUs
            state["extensions"] += 1
            signal.setitimer(signal.ITIMER_REAL, period)
            return
        # (not pytest_timeout.timeout_sigalrm: its arguments differ between versions, 2.1 on
        # Debian 12, 2.3 on Debian 13; the traceback of this failure shows where the test hung)
        spent = period * (1 + state["extensions"])
        pytest.fail(f"Timeout >{spent:.0f}s (the test's {settings.timeout:g} s on the reference machine x "
                    f"{period / settings.timeout:.2f} for this machine, {state['extensions']} extension(s) "
                    "while the machine was busy)", pytrace=True)

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, period)
    return True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Where pytest-timeout sets its own timer (no timer hooks, or the thread method), its
    marks are scaled by the speed factor here."""
    if _has_timer_hooks(config) and config.getini("timeout_method") in ("", "signal") and \
            getattr(config.option, "timeout_method", None) in (None, "signal"):
        return
    for item in items:
        mark = item.get_closest_marker("timeout")
        if mark and mark.args and not getattr(item, "_pagoda_scaled", False):
            item.add_marker(pytest.mark.timeout(speed.scaled(mark.args[0]), *mark.args[1:], **mark.kwargs),
                            append=False)
            item._pagoda_scaled = True


def _has_timer_hooks(config):
    return hasattr(config.hook, "pytest_timeout_set_timer")
