"""The tree a submission is graded in (tools/pagoda/transplant.py), on the small synthetic tree:
the student's lines between a region's markers are taken, every other change is named and left
out, and nothing is read through a link."""
import os

from labtree import VM_LAB1_SKEL, write
from pagoda import publish, transplant


def submission(tree, tmp_path, lab=1):
    """The published lab-@p lab tree, as a student's copy to edit, and its Published."""
    out = str(tmp_path / "student")
    publish.publish_tree(lab, out, tree)
    return out, transplant.published(lab, tree)


def read(root, rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


def test_an_untouched_submission_is_the_published_tree(tree, tmp_path):
    student, pub = submission(tree, tmp_path)
    graded = transplant.transplant(pub, student)
    assert graded.left_out == [] and graded.note() == ""
    assert graded.files == pub.files


def test_code_between_the_markers_is_taken_and_everything_else_is_named(tree, tmp_path):
    student, pub = submission(tree, tmp_path)
    vm = read(student, "src/vm.cpp")
    assert VM_LAB1_SKEL[0] in vm and "// >>> lab 1" in vm
    mine = vm.replace(VM_LAB1_SKEL[0] + "\n", "    my_walk(root);\n    my_flush();\n")
    mine = mine.replace("void map_kernel() {", "void map_kernel(int extra) {")      # outside: a signature
    write(student, "src/vm.cpp", mine.replace("\n", "\r\n"))                      # and CRLF everywhere
    write(student, "CMakeLists.txt", read(student, "CMakeLists.txt") + "execute_process(COMMAND true)\n")
    write(student, "src/mine.cpp", "int mine;\n")
    os.unlink(os.path.join(student, "run.sh"))
    os.symlink("/etc/passwd", os.path.join(student, "run.sh"))
    graded = transplant.transplant(pub, student)
    text = graded.files["src/vm.cpp"][0].decode()
    assert "    my_walk(root);\r\n    my_flush();\r\n" in text and VM_LAB1_SKEL[0] not in text
    assert "void map_kernel() {\n" in text and "int extra" not in text
    line = pub.files["src/vm.cpp"][0].decode().splitlines().index("void map_kernel() {") + 1
    assert graded.left_out == ["CMakeLists.txt:" + str(len(read(student, "CMakeLists.txt").splitlines())),
                               "run.sh (not a regular file)", f"src/vm.cpp:{line}", "src/mine.cpp (added)"]
    assert graded.files["run.sh"] == pub.files["run.sh"] and graded.files["CMakeLists.txt"] == pub.files["CMakeLists.txt"]
    assert "src/mine.cpp" not in graded.files
    assert graded.note().startswith("changes outside the solution regions were not built")


def test_a_marker_line_moved_or_deleted_is_put_back(tree, tmp_path):
    student, pub = submission(tree, tmp_path)
    vm = read(student, "src/vm.cpp").replace("// <<< lab 1\n", "")
    write(student, "src/vm.cpp", vm)
    graded = transplant.transplant(pub, student)
    assert graded.files["src/vm.cpp"] == pub.files["src/vm.cpp"]
    assert [p.split(":")[0] for p in graded.left_out] == ["src/vm.cpp"]


def test_the_autograder_s_folder_gives_the_same_tree(tree, tmp_path):
    """An autograder's folder holds the published tree and GRADED_FILE: load() reads back the
    same files and regions as published() makes from the instructor's tree."""
    folder = str(tmp_path / "autograder")
    pub = transplant.published(1, tree)
    transplant.write_tree(pub.files, folder)
    write(folder, transplant.GRADED_FILE, transplant.graded_file(pub))
    loaded = transplant.load(1, folder)
    assert loaded.files == pub.files and loaded.ranges == pub.ranges
