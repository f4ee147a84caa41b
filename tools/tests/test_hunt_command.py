"""`./pagoda hunt`'s pure parts: which slip a token draws, what answer is right, the pack a student
branch carries, and a graded hunt's manifest entry (tools/pagoda_core/slips.py, tools/pagoda/hunt.py,
grade/test_hunt.py)."""
import os
import textwrap

import pytest

from pagoda import publish
from pagoda_core import paths, slips
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


def test_only_slips_of_the_isa_and_the_labs_asked_for_and_that_apply_are_drawn(tmp_path):
    assert [r["slug"] for r in slips.candidates(SLIPS, "aarch64", [4])] == ["c"]
    (tmp_path / "f.cpp").write_text("alpha and more\n")   # beta is not in this tree
    assert [r["slug"] for r in slips.candidates(SLIPS, "x86_64", root=str(tmp_path))] == ["a"]


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
