"""Marker parsing, resolution per comment style, and every kind of lint error (regions.py)."""
import pytest

from labtree import WORD, marker, region
from pagoda import regions
from pagoda.regions import BLOCK, HASH, SLASH

LABS = {0, 1, 2, 3}


def parse(text, style=SLASH, labs=LABS):
    return regions.parse(text, style, labs)


def publish(text, lab, style=SLASH):
    parsed = parse(text, style)
    assert parsed.errors == []
    return regions.render(parsed, lab)


def shown(lab, lines, indent="", desc="", leader="//", close="", nl="\n"):
    """A student's region as published: @p lines between its two visible markers."""
    end = f" {close}" if close else ""
    about = f": {desc}" if desc else ""
    return (f"{indent}{leader} >>> lab {lab}{about}{end}{nl}" + "".join(lines) +
            f"{indent}{leader} <<< lab {lab}{end}{nl}")


def errors(text, style=SLASH, labs=LABS):
    return [(line, msg) for line, msg in parse(text, style, labs).errors]


@pytest.mark.parametrize("path, style", [
    ("kernel/mm/vm.cpp", SLASH), ("kernel/mm/vm.hpp", SLASH), ("arch/x86_64/boot.S", SLASH),
    ("x.s", SLASH), ("x.c", SLASH), ("x.h", SLASH), ("CMakeLists.txt", HASH),
    ("cmake/kernel.cmake", HASH), ("grade/test_lab0.py", HASH), ("labs/00-boot/lab.toml", HASH),
    ("tools/run.sh", HASH), ("arch/x86_64/kernel.ld", BLOCK), ("README.md", None),
    ("CMakePresets.json", None)])
def test_style_by_file_type(path, style):
    assert regions.style_for(path) is style


def test_style_of_a_script_without_suffix_comes_from_its_shebang():
    assert regions.style_for("pagoda", b"#!/usr/bin/python3\n") is HASH
    assert regions.style_for("ci/run", b"#!/usr/bin/env bash\n") is HASH
    assert regions.style_for("LICENSE", b"MIT License\n") is None


# ---- resolution -------------------------------------------------------------------------------

CPP = ("int before;\n" +
       "void f() {\n" +
       region(1, ["solve_it(1);", "solve_it(2);"], ["panic(\"lab 1: write f()\");"],
              indent="  ", desc="write f") +
       "}\n" +
       "int after;\n")


def test_earlier_lab_keeps_the_solution_between_visible_markers():
    assert publish(CPP, 2) == ("int before;\nvoid f() {\n" +
                               shown(1, ["  solve_it(1);\n", "  solve_it(2);\n"], "  ", "write f") +
                               "}\nint after;\n")


@pytest.mark.parametrize("lab", [0, 1])
def test_this_or_a_later_lab_gets_the_uncommented_skeleton(lab):
    assert publish(CPP, lab) == ("int before;\nvoid f() {\n" +
                                 shown(1, ["  panic(\"lab 1: write f()\");\n"], "  ", "write f") +
                                 "}\nint after;\n")


def test_the_layout_gives_each_region_s_lines_between_its_markers():
    parsed = parse(CPP)
    lines, spans = regions.layout(parsed, 2)
    [(r, first, end)] = spans
    assert r.lab == 1 and lines[first:end] == ["  solve_it(1);\n", "  solve_it(2);\n"]
    assert lines[first - 1].strip() == "// >>> lab 1: write f" and lines[end].strip() == "// <<< lab 1"


def test_region_without_skeleton_vanishes():
    text = "a\n" + region(2, ["secret();"]) + "b\n"
    assert publish(text, 2) == "a\nb\n"
    assert publish(text, 3) == "a\nsecret();\nb\n"


def test_uncommenting_strips_the_leader_and_one_space_only():
    text = (marker(0, "BEGIN") + "x\n" + marker(0, "SKELETON") +
            "    //   indented_more();\n" + "\t//tab_kept();\n" + "//\n" + "\n" + "    //\n" +
            marker(0, "END"))
    assert publish(text, 0) == shown(0, ["      indented_more();\n", "\ttab_kept();\n", "\n", "\n", "\n"])


def test_hash_style_for_cmake_python_shell_toml():
    text = ("keep = 1\n" + region(1, ["solution = 2"], ["skeleton = 0  # to do"], leader="#",
                                  indent="    ") + "end = 3\n")
    assert publish(text, 1, HASH) == "keep = 1\n" + shown(1, ["    skeleton = 0  # to do\n"], "    ", leader="#") + "end = 3\n"
    assert publish(text, 2, HASH) == "keep = 1\n" + shown(1, ["    solution = 2\n"], "    ", leader="#") + "end = 3\n"


def test_block_style_for_linker_scripts():
    text = ("SECTIONS {\n" + region(2, [". = KERNEL_VIRT_BASE;"], [". = 0x100000;"], leader="/*",
                                    indent="    ") + "}\n")
    assert "/* " + WORD + " 2 BEGIN */" in text
    assert "    /* . = 0x100000; */\n" in text
    assert publish(text, 2, BLOCK) == ("SECTIONS {\n" + shown(2, ["    . = 0x100000;\n"], "    ", leader="/*",
                                                              close="*/") + "}\n")
    assert publish(text, 3, BLOCK) == ("SECTIONS {\n" + shown(2, ["    . = KERNEL_VIRT_BASE;\n"], "    ", leader="/*",
                                                              close="*/") + "}\n")


def test_markers_may_be_indented_and_carry_a_description():
    parsed = parse("  " + marker(1, "BEGIN", desc="the page walk: levels 4..1")[0:] +
                   "x\n" + marker(1, "END", indent="\t"))
    assert parsed.errors == []
    [r] = parsed.regions
    assert (r.lab, r.begin, r.end, r.description) == (1, 1, 3, "the page walk: levels 4..1")


def test_crlf_line_endings_survive():
    text = ("a\r\n" + marker(1, "BEGIN").replace("\n", "\r\n") + "sol\r\n" +
            marker(1, "SKELETON").replace("\n", "\r\n") + "// skel\r\n" +
            marker(1, "END").replace("\n", "\r\n") + "b")
    assert publish(text, 1) == "a\r\n" + shown(1, ["skel\r\n"], nl="\r\n") + "b"
    assert publish(text, 2) == "a\r\n" + shown(1, ["sol\r\n"], nl="\r\n") + "b"


def test_marker_text_that_is_not_alone_on_a_comment_line_is_text():
    text = (f'const char* s = "// {WORD} 1 BEGIN";\n'
            f"x = 1;  // {WORD} 1 END\n"
            f"#define X // {WORD} 1 SKELETON\n"
            f"// see {WORD} 1 BEGIN in the docs\n")
    parsed = parse(text)
    assert parsed.errors == [] and parsed.regions == []
    # and in a Python file, a C++ marker is just text (this very module is full of them)
    assert parse(marker(1, "BEGIN"), HASH).errors == []


def test_a_leader_of_another_language_is_not_a_marker():
    text = marker(1, "BEGIN", leader="#") + "x\n"
    assert parse(text, SLASH).regions == [] and parse(text, SLASH).errors == []


# ---- lint errors, one per kind ------------------------------------------------------------------

def test_begin_without_end():
    [(line, msg)] = errors("a\n" + marker(1, "BEGIN") + "x\n")
    assert line == 2 and "has no" in msg and "END" in msg


def test_end_without_begin():
    [(line, msg)] = errors("a\n" + marker(1, "END"))
    assert line == 2 and "outside any region" in msg


def test_skeleton_outside_a_region():
    [(line, msg)] = errors(marker(1, "SKELETON") + "// x\n")
    assert line == 1 and "SKELETON outside any region" in msg


def test_two_skeletons():
    text = (marker(1, "BEGIN") + "x\n" + marker(1, "SKELETON") + "// a\n" +
            marker(1, "SKELETON") + "// b\n" + marker(1, "END"))
    [(line, msg)] = errors(text)
    assert line == 5 and "second SKELETON" in msg and "line 3" in msg


def test_nested_regions_give_one_error():
    text = (marker(1, "BEGIN") + "x\n" + marker(2, "BEGIN") + "y\n" + marker(2, "END") +
            "z\n" + marker(1, "END"))
    [(line, msg)] = errors(text)
    assert line == 3 and "do not nest" in msg


def test_unknown_lab_number():
    found = errors(region(7, ["x"]), labs={0, 1})
    assert [line for line, _ in found] == [1, 3]      # BEGIN and END
    assert all("there is no lab 7" in msg for _, msg in found)
    assert len(errors(region(7, ["x"], ["y"]), labs={0, 1})) == 3   # BEGIN, SKELETON, END


def test_mismatched_numbers():
    text = marker(1, "BEGIN") + "x\n" + marker(2, "SKELETON") + "// y\n" + marker(3, "END")
    found = errors(text)
    assert [line for line, _ in found] == [3, 5]
    assert all("numbers must match" in msg for _, msg in found)


def test_skeleton_line_without_the_leader():
    text = marker(1, "BEGIN") + "x\n" + marker(1, "SKELETON") + "// ok\n\nnot_commented();\n" + marker(1, "END")
    [(line, msg)] = errors(text)
    assert line == 6 and "does not start with the comment leader '//'" in msg


def test_block_skeleton_line_must_be_closed_on_its_line():
    text = region(1, ["x"], leader="/*") .replace(marker(1, "END", "/*"),
                                                  marker(1, "SKELETON", "/*") + "/* open\n" + marker(1, "END", "/*"))
    [(line, msg)] = errors(text, BLOCK)
    assert line == 4 and "'/* ... */'" in msg


def test_malformed_markers_are_errors():
    for bad in (f"// {WORD.lower()} 1 begin\n", f"// {WORD}1 BEGIN\n", f"//{WORD} 1  Skeleton\n",
                f"/* {WORD} 1 BEGIN */\n"):
        [(line, msg)] = errors(bad)
        assert "malformed marker" in msg, bad
    assert errors(f"// {WORD.capitalize()} 1 is about page tables\n") == []
    assert errors(f"# {WORD} 0 end-to-end test\n", HASH) == []


def test_foreign_markers_outside_markdown_fences():
    text = ("intro\n```\n" + marker(1, "BEGIN") + "```\n" + f"<!-- {WORD} 1 BEGIN -->\n")
    [(line, msg)] = regions.foreign_marker_errors(text, "docs/x.md")
    assert line == 5 and "cannot hold regions" in msg
    assert len(regions.foreign_marker_errors(marker(1, "BEGIN"), "data.json")) == 1


def test_a_broken_file_still_parses_the_rest():
    text = marker(1, "END") + region(2, ["x();"], ["y();"])
    parsed = parse(text)
    assert len(parsed.errors) == 1 and [r.lab for r in parsed.regions] == [2]
