"""Hidden tests stay out of every published branch (and the leak check proves it); handout
test tables come from lab.toml, without hidden tests; publish --upto stops at a lab."""
import os

import pytest

import labtree as c
from labtree import run_git, write
from pagoda import handouts, publish
from pagoda_core.ui import PagodaError

HIDDEN_ENTRY = ('\n[[tests]]\nid = "secret_probe"\npoints = 5\ntimeout = 5\nhidden = true\n'
                'checks = "the instructor-only probe of the identity map"\n')
HIDDEN_TEST = ("from pagoda_grade import lab_test\n\n@lab_test(1, 'secret_probe')\n"
               "def test_secret_probe(boot):\n    run = boot(test='instructor_only_probe_selftest')\n")


@pytest.fixture
def hidden_tree(tree):
    toml = os.path.join(tree, "labs/01-map/lab.toml")
    with open(toml) as f:
        write(tree, "labs/01-map/lab.toml", f.read() + HIDDEN_ENTRY)
    write(tree, "grade/hidden/test_lab1_secret.py", HIDDEN_TEST)
    return tree


def read(root, rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


def test_manifest_reads_the_flag(hidden_tree):
    lab = publish.load_labs(hidden_tree)[1]
    assert [t.id for t in lab.tests] == ["t1", "secret_probe"]
    assert [t.id for t in lab.visible_tests] == ["t1"] and lab.test("secret_probe").hidden


def test_published_trees_have_no_hidden_test(hidden_tree, tmp_path):
    for n in (0, 1, 2):
        out = str(tmp_path / f"lab{n}")
        files = publish.publish_tree(n, out, hidden_tree)
        assert not any(f.startswith("grade/hidden") for f in files)
        toml = read(out, "labs/01-map/lab.toml")
        assert 'id = "t1"' in toml and "secret_probe" not in toml and "instructor-only" not in toml
        assert publish.load_labs(out)[1].tests[0].id == "t1"


def test_leak_check_covers_hidden_tests(hidden_tree, tmp_path):
    repo = str(tmp_path / "published")
    publish.publish(repo, hidden_tree)
    assert publish.find_leaks(repo, hidden_tree) == []
    run_git(repo, "checkout", "-q", "lab2")
    write(repo, "notes.txt", "    run = boot(test='instructor_only_probe_selftest')\n")
    run_git(repo, "add", "notes.txt")
    run_git(repo, "commit", "-q", "-m", "oops")
    [leak] = publish.find_leaks(repo, hidden_tree)
    assert leak.startswith("lab2: notes.txt contains the hidden test file grade/hidden/test_lab1_secret.py")


def test_publish_upto_stops_at_a_lab(hidden_tree, tmp_path):
    repo = str(tmp_path / "upto1")
    assert publish.publish(repo, hidden_tree, upto=1) == ["lab0", "lab1"]
    assert run_git(repo, "for-each-ref", "--format=%(refname:short)").split() == ["lab0", "lab1"]
    with pytest.raises(PagodaError, match="no lab numbered"):
        publish.publish(str(tmp_path / "none"), hidden_tree, upto=-1)


def test_region_map_locates_earlier_labs_solutions(tree, tmp_path):
    out = str(tmp_path / "lab2")
    publish.publish_tree(2, out, tree)
    import json
    regions = json.loads(read(out, publish.REGIONS_FILE))
    vm = read(out, "src/vm.cpp").splitlines()
    entries = {e["lab"]: e for e in regions["src/vm.cpp"]}
    assert sorted(entries) == [0, 1]                      # lab 2's own region is not listed
    e = entries[1]
    assert vm[e["first"] - 1:e["first"] - 1 + e["count"]] == c.VM_LAB1


def test_handout_table_is_generated_without_hidden_tests(hidden_tree):
    lab = publish.load_labs(hidden_tree)[1]
    table = handouts.table(lab)
    assert "| `t1` | 1 | lab 1 works |" in table and "secret_probe" not in table
    assert "| **total** | **1** | |" in table
    readme = os.path.join(hidden_tree, "labs/01-map/README.md")
    write(hidden_tree, "labs/01-map/README.md", f"# Lab 1\n\n{handouts.BEGIN}\n| old |\n{handouts.END}\n")
    [(rel, _, wanted, message)] = [p for p in handouts.stale(hidden_tree) if "01-map" in p[0]]
    assert message == "labs/01-map/README.md: the test table differs from lab.toml"
    assert wanted == f"# Lab 1\n\n{handouts.BEGIN}\n{table}{handouts.END}\n"
    with open(readme, "w") as f:
        f.write(wanted)
    assert not [p for p in handouts.stale(hidden_tree) if "01-map" in p[0]]


def test_a_handout_without_a_table_is_reported(tree):
    problems = {rel: message for rel, _, _, message in handouts.stale(tree)}
    assert "found 0" in problems["labs/00-boot/README.md"]


def test_the_real_handouts_match_their_manifests():
    from pagoda_core import paths
    assert handouts.stale(paths.ROOT) == []
