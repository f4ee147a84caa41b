"""`./pagoda hunt`'s pure parts: which slip a token draws, what answer is right, the pack a student
branch carries, and a graded hunt's manifest entry (tools/pagoda_core/slips.py, tools/pagoda/hunt.py,
grade/test_hunt.py)."""
import argparse
import os
import textwrap

import pytest

from pagoda import publish
from pagoda_core import paths, slips
from pagoda_core.ui import PagodaError
from pagoda_grade import manifest

SLIPS = [dict(lab=3, slug="a", title="first", function="pagoda::X86AddressSpace::create_user", category="wrong root",
              arches=["x86_64"], edits=[("f.cpp", "alpha", "ALPHA")]),
         dict(lab=3, slug="b", title="second", function="switch_to(Process*)", category="order",
              arches=["x86_64", "aarch64"], edits=[("f.cpp", "beta", "BETA")]),
         dict(lab=4, slug="c", title="third", function="TempMapArea::pop", category=None,
              arches=["aarch64"], edits=[("g.cpp", "gamma", "GAMMA")])]


def test_a_token_draws_the_same_slip_every_time_and_tokens_spread():
    pool = slips.candidates(SLIPS, "x86_64")
    assert [r["slug"] for r in pool] == ["a", "b"]
    assert slips.draw(pool, "t1", "x86_64") is slips.draw(list(pool), "t1", "x86_64")
    drawn = {slips.draw(pool, f"token{i}", "x86_64")["slug"] for i in range(40)}
    assert drawn == {"a", "b"}
    assert slips.draw([], "t1", "x86_64") is None


def test_only_slips_of_the_isa_and_the_labs_asked_for_are_drawn():
    assert [r["slug"] for r in slips.candidates(SLIPS, "aarch64", [4])] == ["c"]
    assert [r["slug"] for r in slips.candidates(SLIPS, "x86_64", [4])] == []


def test_an_answer_needs_the_function_and_the_kind():
    a = SLIPS[0]
    assert slips.judge(a, "X86AddressSpace::create_user", "wrong root")[0] == 2
    assert slips.judge(a, "pagoda::x86::X86AddressSpace::create_user()", "Wrong Root")[0] == 2
    assert slips.judge(a, "create_user", "wrong root")[0] == 2        # the bare name is enough
    assert slips.judge(a, "create_user", "order")[0] == 1
    assert slips.judge(a, "create_user", None)[0] == 1
    assert slips.judge(a, "switch_to", "wrong root")[0] == 0
    assert slips.judge(SLIPS[2], "pop", None)[0] == 2                 # no kind to name


def test_the_pack_round_trips_and_hides_its_text(tmp_path):
    text = slips.encode_pack(SLIPS)
    assert "create_user" not in text and "ALPHA" not in text
    path = tmp_path / "hunts.pack"
    path.write_text(text)
    assert slips.read_pack(str(path)) == [dict(s, edits=[list(e) for e in s["edits"]]) for s in SLIPS]


def test_a_manifest_test_with_hunt_needs_no_implementation(tmp_path):
    lab = tmp_path / "labs" / "03-roots"
    lab.mkdir(parents=True)
    (lab / "lab.toml").write_text(textwrap.dedent('''\
        number = 3
        name = "roots"
        title = "Roots"
        [[tests]]
        id = "hunt"
        points = 2
        timeout = 5
        hunt = [1, 2]
        '''))
    labs = manifest.load_all(str(tmp_path / "labs"))
    assert labs[3].test("hunt").hunt == (1, 2)
    tests = tmp_path / "test_lab3.py"
    tests.write_text("")
    assert manifest.check_implementations(labs, [str(tests)]) == []
    (lab / "lab.toml").write_text((lab / "lab.toml").read_text().replace("hunt = [1, 2]", 'hunt = "1"'))
    with pytest.raises(manifest.ManifestError):
        manifest.load_all(str(tmp_path / "labs"))


def test_the_slips_of_this_tree_are_read_without_git():
    records = slips.slip_records(paths.ROOT)
    assert records and all(r["function"] and r["edits"] for r in records)


def test_branch_lab_n_carries_the_slips_of_the_labs_before_n_packed(tree, tmp_path):
    from labtree import write
    slip = ('title = "no identity"\nfunction = "map_kernel"\narches = ["x86_64"]\ncause = \'identity\'\n'
            'category = "missing mapping"\n[[edit]]\nfile = "src/vm.cpp"\n'
            "find = '''    map_identity_range(root, 0, kernel_end_address);\n'''\nreplace = ''''''\n")
    write(tree, "labs/01-map/mutants/no-map.toml", slip)
    out2, out1 = str(tmp_path / "lab2"), str(tmp_path / "lab1")
    publish.publish_tree(2, out2, root=tree)
    publish.publish_tree(1, out1, root=tree)
    assert not os.path.exists(os.path.join(out2, "labs/01-map/mutants"))   # the slips stay staff-only
    [record] = slips.read_pack(os.path.join(out2, slips.PACK_PATH))
    assert (record["lab"], record["function"], record["category"]) == (1, "map_kernel", "missing mapping")
    assert "map_identity_range" not in open(os.path.join(out2, slips.PACK_PATH)).read()
    assert slips.slip_records(out2) == [record]
    assert not os.path.exists(os.path.join(out1, slips.PACK_PATH))   # lab 1's own slips would give it away


# ---- a hunt on a student's branch: its slip goes where its code is still the reference's -----------

SLIP = ('title = "no identity"\nfunction = "map_kernel"\narches = ["x86_64"]\ncause = \'identity\'\n'
        'category = "missing mapping"\n[[edit]]\nfile = "src/vm.cpp"\n'
        "find = '''    map_identity_range(root, 0, kernel_end_address);\n'''\nreplace = ''''''\n")


@pytest.fixture
def student(tree, tmp_path, monkeypatch):
    """A student's clone of the synthetic tree's publication, on branch lab2 (lab 1's slip packed
    in it), as the ./pagoda of the hunt sees it (paths.ROOT); the hunt's grade is not run."""
    from labtree import run_git, write
    from pagoda import hunt
    write(tree, "labs/01-map/mutants/no-map.toml", SLIP)
    published, clone = str(tmp_path / "published"), str(tmp_path / "student")
    publish.publish(published, root=tree, check_leaks=False)
    run_git(str(tmp_path), "clone", "-q", "-b", "lab2", published, clone)
    monkeypatch.setattr(paths, "ROOT", clone)
    monkeypatch.setattr(hunt, "tree_pagoda", lambda state, *words, check=False: None)
    monkeypatch.delenv("PAGODA_HUNT_TOKEN", raising=False)
    return clone


def rewrite_lab1(clone, keep_the_slips_line):
    """The student's own map_kernel() body in place of the reference's, committed."""
    from labtree import run_git
    path = os.path.join(clone, "src/vm.cpp")
    text = open(path).read()
    own = "    my_own_identity_map(root);\n" + (
        "    map_identity_range(root, 0, kernel_end_address);\n" if keep_the_slips_line else "")
    text = text.replace("    map_identity_range(root, 0, kernel_end_address);\n    flush_whole_tlb_now();\n", own)
    open(path, "w").write(text)
    run_git(clone, "commit", "-q", "-am", "lab 1 my way")


@pytest.mark.parametrize("rewritten", [False, True])
def test_a_hunt_on_a_student_branch_is_on_the_branch_as_published(student, rewritten):
    from pagoda import hunt
    if rewritten:   # the student's own lab 1, even one with the slip's line in it: not what the slip was made for
        rewrite_lab1(student, keep_the_slips_line=True)
    with open(os.path.join(student, "src/other.cpp"), "w") as f:
        f.write("my own work, uncommitted\n")
    token, state = hunt.start("x86_64", token="t1")
    tree = os.path.join(hunt.hunt_dir(token), "tree")
    vm = open(os.path.join(tree, "src/vm.cpp")).read()
    assert "my_own_identity_map" not in vm and "flush_whole_tlb_now" in vm
    assert "map_identity_range" not in vm                                   # the slip, in the reference's code
    assert not os.path.exists(os.path.join(tree, "src/other.cpp"))
    assert not os.path.exists(os.path.join(tree, slips.PACK_PATH))
    assert (state["lab"], state["slip"], state["pool"]) == (1, "no-map", 1)


def test_a_hunt_in_the_instructors_tree_is_on_a_copy_of_it(tree, monkeypatch):
    from labtree import write
    from pagoda import hunt
    write(tree, "labs/01-map/mutants/no-map.toml", SLIP)
    write(tree, "src/other.cpp", "work in progress\n")
    monkeypatch.setattr(paths, "ROOT", tree)
    token, _ = hunt.start("x86_64", token="t2")
    copy = os.path.join(hunt.hunt_dir(token), "tree")
    assert os.path.exists(os.path.join(copy, "src/other.cpp"))
    assert "map_identity_range" not in open(os.path.join(copy, "src/vm.cpp")).read()
    assert not os.path.exists(os.path.join(copy, "labs/01-map/mutants"))


def test_the_list_counts_what_a_hunt_draws_from(student, capsys):
    from pagoda import hunt
    rewrite_lab1(student, False)        # (none of the slips' code is the student's reference any more)
    parser = argparse.ArgumentParser()
    hunt.add_parser(parser.add_subparsers())
    assert hunt.cmd_hunt(parser.parse_args(["hunt", "--list"])) == 0
    assert "x86_64: 1 slip(s) can be drawn: lab 1: 1" in capsys.readouterr().err


def test_a_bare_hunt_goes_on_with_the_current_one_and_help_is_no_answer(student, capsys):
    from pagoda import hunt
    parser = argparse.ArgumentParser()
    hunt.add_parser(parser.add_subparsers())
    run = lambda *words: hunt.cmd_hunt(parser.parse_args(["hunt", *words]))   # noqa: E731
    assert run() == 0
    token = hunt.current_token()
    assert run() == 0 and hunt.current_token() == token
    assert f"hunt {token} (x86_64) goes on" in capsys.readouterr().err
    assert run("answer", "--help") == 0 and "answer FUNCTION" in capsys.readouterr().out
    assert run("reveal", "--help") == 0 and not hunt.load_state(token).get("revealed")
    with pytest.raises(PagodaError):
        run("answer", "--catgory", "missing mapping")                    # (a typo is no answer either)
    assert hunt.load_state(token)["answers"] == []
    assert run("answer", "map_kernel", "--category", "missing mapping") == 0
    assert run() == 0 and hunt.current_token() != token                  # solved: a bare hunt starts another
    other = hunt.current_token()
    assert run("--new") == 0 and hunt.current_token() not in (token, other)
