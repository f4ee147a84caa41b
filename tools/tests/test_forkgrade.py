"""The warm grader (tools/pagoda/forkgrade.py): each command it runs is a process of its own, with
its own environment, output and exit status, as `./pagoda ARGS` would be."""
import os

from pagoda import forkgrade
from pagoda_core import paths


def test_each_command_has_its_own_status_output_and_environment(tmp_path):
    ok, bad = tmp_path / "ok.log", tmp_path / "bad.log"
    try:
        status, cpu = forkgrade.run(paths.ROOT, ["--version"], dict(os.environ), str(ok))
        assert status == 0 and cpu > 0 and ok.read_text().startswith("pagoda "), ok.read_text()
        # the same warm process, the next command: its own status and output, and the environment
        # it was given (COLUMNS=40: argparse wraps its usage line there; the first had none)
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        status, _ = forkgrade.run(paths.ROOT, ["no-such-command"], dict(env, COLUMNS="40"), str(bad))
        lines = bad.read_text().splitlines()
        assert status == 2 and "invalid choice: 'no-such-command'" in lines[-1], lines
        assert lines[0] == "usage: ./pagoda [-h] [--version]" and lines[1].strip() == "COMMAND ...", lines
        assert len(forkgrade._idle[os.path.abspath(paths.ROOT)]) == 1     # one warm grader served both
    finally:
        forkgrade.close()
    assert not forkgrade._idle
