"""`./pagoda test`'s host step: a failing host test shows its assertion text, not just its name."""
from pagoda import test

CTEST = """\
Test project /src/build/host
      Start  1: FrameAllocator.Basic
      Start  2: Printers.EnumsPrintByEnumeratorName
 1/3 Test  #2: Printers.EnumsPrintByEnumeratorName .................................***Failed    0.16 sec
Running main() from ./googletest/src/gtest_main.cc
Note: Google Test filter = Printers.EnumsPrintByEnumeratorName
[==========] Running 1 test from 1 test suite.
[----------] Global test environment set-up.
[ RUN      ] Printers.EnumsPrintByEnumeratorName
/src/kernel/tests/printers_test.cpp:13: Failure
Expected equality of these values:
  r.stop
    Which is: WalkStop::NotPresent
  WalkStop::Mapped
[  FAILED  ] Printers.EnumsPrintByEnumeratorName (2 ms)
[==========] 1 test from 1 test suite ran. (8 ms total)
[  PASSED  ] 0 tests.
[  FAILED  ] 1 test, listed below:
[  FAILED  ] Printers.EnumsPrintByEnumeratorName

 1 FAILED TEST
      Start  3: format_compile_fail_1
 2/3 Test  #1: FrameAllocator.Basic ....................   Passed    0.08 sec
 3/3 Test  #3: format_compile_fail_1 ...................***Failed  Required regular expression not found    0.12 sec
x.cpp:3:1: error: unknown type name 'oops'

67% tests passed, 2 tests failed out of 3
"""


def test_failures_keep_the_assertion_text_and_drop_the_frame():
    failures = test.host_failures(CTEST)
    assert list(failures) == ["Printers.EnumsPrintByEnumeratorName", "format_compile_fail_1"]
    assert failures["Printers.EnumsPrintByEnumeratorName"] == [
        "/src/kernel/tests/printers_test.cpp:13: Failure", "Expected equality of these values:",
        "  r.stop", "    Which is: WalkStop::NotPresent", "  WalkStop::Mapped"]
    assert failures["format_compile_fail_1"] == ["x.cpp:3:1: error: unknown type name 'oops'"]
    text = "\n".join(test.describe_host_failures(failures))
    assert "rerun it: build/host/kernel/tests/kernel_host_tests --gtest_filter=Printers.EnumsPrintByEnumeratorName" in text
    assert "FrameAllocator.Basic" not in text


GTEST_REPORT = {
    "tests": 3, "failures": 1,
    "testsuites": [
        {"name": "Walk", "testsuite": [
            {"name": "Mapped", "result": "COMPLETED"},
            {"name": "Leaf", "result": "COMPLETED", "failures": [
                {"failure": "/src/kernel/tests/walk_test.cpp:9\nExpected equality of these values:\n  a\n  b\n",
                 "type": ""}]}]},
        {"name": "Fdt", "testsuite": [{"name": "Parse", "result": "COMPLETED"}]},
    ],
}


def test_a_gtest_report_gives_the_count_and_the_failures_with_their_text():
    count, failures = test.gtest_failures(GTEST_REPORT)
    assert count == 3
    assert list(failures) == ["Walk.Leaf"]
    assert failures["Walk.Leaf"] == ["/src/kernel/tests/walk_test.cpp:9", "Expected equality of these values:",
                                     "  a", "  b"]
    text = "\n".join(test.describe_host_failures(failures, {"Walk.Leaf": "build/host/kernel/tests/other_tests"}))
    assert "rerun it: build/host/kernel/tests/other_tests --gtest_filter=Walk.Leaf" in text


def _listed(name, gtest, lab, binary="/b/kernel_host_tests"):
    command = [binary, f"--gtest_filter={gtest}", "--gtest_also_run_disabled_tests"] if gtest else ["c++", "-DCASE=1"]
    return {"name": name, "command": command, "properties": [{"name": "LABELS", "value": [f"lab{lab}"]},
                                                             {"name": "TIMEOUT", "value": 600.0}]}


LISTED = {"tests": [_listed("Format.Works", "Format.Works", 0), _listed("format_compile_fail_1", None, 0),
                    _listed("TreeTest.Maps<pagoda::x86::PageTableFormat>", "TreeTest/0.Maps", 1),
                    _listed("TempMapTest.Pushes", "TempMapTest.Pushes", 4),
                    _listed("TempMapTest.Pushes", "TempMapTest.Pushes", 4, binary="/b/kernel_host_tests_aarch64"),
                    _listed("VmaTest.Merges", "VmaTest.Merges", 5), _listed("FrameRefsTest.Counts", "FrameRefsTest.Counts", 6)]}


def test_the_host_step_runs_the_labs_of_the_branch_and_names_the_later_ones_it_skips(monkeypatch, tmp_path):
    import json
    import subprocess
    from pagoda_core import paths
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, json.dumps(LISTED), ""))
    monkeypatch.setattr(paths, "ROOT", str(tmp_path))
    (tmp_path / ".pagoda-lab").write_text("4\n")
    monkeypatch.setattr(test, "HOST_LAB", None)
    wanted, say = test._host_labs()
    binaries, others, left_out = test._host_tests(wanted)
    assert binaries == {"/b/kernel_host_tests": (["--gtest_also_run_disabled_tests"],
                                                 ["Format.Works", "TreeTest/0.Maps", "TempMapTest.Pushes"]),
                        "/b/kernel_host_tests_aarch64": (["--gtest_also_run_disabled_tests"], ["TempMapTest.Pushes"])}
    assert others == ["format_compile_fail_1"] and left_out == {5: 1, 6: 1}
    assert say(left_out) == ("2 tests of labs 5, 6 skipped: their code is a skeleton on this branch of lab 4 "
                             "(./pagoda test --only host --lab 5 runs lab 5's)")
    monkeypatch.setattr(test, "HOST_LAB", 5)
    wanted, say = test._host_labs()
    binaries, others, left_out = test._host_tests(wanted)
    assert binaries == {"/b/kernel_host_tests": (["--gtest_also_run_disabled_tests"], ["VmaTest.Merges"])}
    assert others == [] and sum(left_out.values()) == 6 and "--lab 5" in say(left_out)
    (tmp_path / ".pagoda-lab").unlink()                    # main: every lab's
    monkeypatch.setattr(test, "HOST_LAB", None)
    assert test._host_tests(test._host_labs()[0])[2] == {}
