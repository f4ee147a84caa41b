"""Runs inside GDB (gdb -x gdb_driver.py): executes the steps named by $PAGODA_GDB_STEPS and
writes each step's output or error to the results file (see gdbrig.run_steps)."""
import json
import os
import signal
import threading
import time

import gdb


class _Values(dict):
    """format_map() mapping: earlier 'eval' results by name."""


def _continue_for(seconds):
    """Continues, and interrupts the machine @p seconds after it resumed (SIGINT to GDB, as
    Ctrl-C). The clock starts when GDB has resumed the target (events.cont), so a starved GDB
    cannot get the interrupt before it has sent the continue."""
    timers = []

    def resumed(event):
        if not timers:
            timers.append(threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT)))
            timers[0].start()
    gdb.events.cont.connect(resumed)
    try:
        return gdb.execute("continue", to_string=True)
    finally:
        gdb.events.cont.disconnect(resumed)
        for timer in timers:
            timer.cancel()


def _continue_until(condition, deadline):
    """Continues and interrupts (as Ctrl-C), again and again, until @p condition (a GDB
    expression) holds at a stop; the pauses grow from 0.25 s to 4 s, and only @p deadline (the
    session's) bounds the looks. A continue that fails is this step's error, at once."""
    pause, looks = 0.25, 0
    while True:
        looks += 1
        try:
            _continue_for(pause)
        except gdb.error as err:
            raise gdb.GdbError("continue failed (look %d): %s" % (looks, err))
        if bool(gdb.parse_and_eval(condition)):
            return "%s held after %d look(s)" % (condition, looks)
        if time.time() + pause > deadline:
            raise gdb.GdbError("%s never held at a stop (%d looks, the last %.2f s after a continue)"
                               % (condition, looks, pause))
        pause = min(pause * 2, 4.0)


def main():
    with open(os.environ["PAGODA_GDB_STEPS"]) as f:
        spec = json.load(f)
    values = _Values()
    rows = []
    for name, kind, text in spec["steps"]:
        row = {"name": name, "output": "", "error": "", "value": None}
        try:
            text = text.format_map(values)
            if kind == "cmd":
                row["output"] = gdb.execute(text, to_string=True)
            elif kind == "eval":
                value = gdb.parse_and_eval(text)
                row["value"] = values[name] = int(value.cast(gdb.lookup_type("unsigned long long")))
            elif kind == "continue_for":
                row["output"] = _continue_for(float(text))
            elif kind == "continue_until":
                row["output"] = _continue_until(text, spec["deadline"])
            elif kind == "python":
                scope = {"gdb": gdb, "values": values}
                exec(text, scope)
                row["output"] = str(scope.get("result", ""))
            else:
                row["error"] = "unknown step kind " + kind
        except gdb.error as err:     # includes gdb.GdbError raised by our commands
            row["error"] = str(err)
        except Exception as err:     # noqa: BLE001 - reported to the test, which fails
            row["error"] = "%s: %s" % (type(err).__name__, err)
        rows.append(row)
    with open(spec["results"], "w") as f:
        json.dump(rows, f)


main()
