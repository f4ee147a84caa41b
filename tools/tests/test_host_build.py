"""The host tests read every ISA's user programs from that ISA's kernel build, so building them
(`./pagoda build host`, the host step of `./pagoda test`) builds those programs there first: one
compile of each program per ISA, where the host build compiled a second copy of its own."""
import contextlib

from pagoda_core import build, paths


def test_building_the_host_tests_builds_each_isa_s_user_programs_first(monkeypatch):
    calls = []

    def run(argv, cwd=None, **kwargs):
        calls.append(argv)
        return type("Done", (), {"returncode": 0, "stdout": ""})()

    monkeypatch.setattr(build.subprocess, "run", run)
    monkeypatch.setattr(build, "locked", lambda preset: contextlib.nullcontext())
    monkeypatch.setattr(build, "configure", lambda preset: calls.append(["configure", preset]))
    monkeypatch.setattr(build, "merge_compile_commands", lambda: None)
    build.build("host")
    builds = [c for c in calls if c[:2] == ["cmake", "--build"]]
    assert builds == [["cmake", "--build", "--preset", arch, "--target", f"user_programs_{arch}"]
                      for arch in paths.ARCHES] + [["cmake", "--build", "--preset", "host"]], calls
    # each kernel build is configured (once, by configure()) before its programs are built
    assert calls.index(["configure", paths.ARCHES[-1]]) < calls.index(builds[len(paths.ARCHES) - 1])

