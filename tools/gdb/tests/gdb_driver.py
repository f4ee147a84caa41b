"""Runs inside GDB (gdb -x gdb_driver.py): executes the steps named by $PAGODA_GDB_STEPS and
writes each step's output or error to the results file (see gdbrig.run_steps)."""
import json
import os
import signal
import threading

import gdb


class _Values(dict):
    """format_map() mapping: earlier 'eval' results by name."""


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
                # Ctrl-C after that long: SIGINT to GDB, which interrupts the machine.
                timer = threading.Timer(float(text), os.kill, (os.getpid(), signal.SIGINT))
                timer.start()
                try:
                    row["output"] = gdb.execute("continue", to_string=True)
                finally:
                    timer.cancel()
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
