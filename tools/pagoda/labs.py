"""`pagoda labs lint|publish|check` (for the staff, in main) and `pagoda lab status` (for a
student, in a published branch). The marker syntax is in regions.py; publish.py makes the
trees and branches; labcheck.py proves the skeletons."""
import argparse
import os
import subprocess

from . import deps, grade, handouts, labcheck, labstart, labstatus, mutants, publish
from pagoda_core import paths, speed
from pagoda_core.ui import PagodaError, info

MARKERS_HELP = """\
A solution region, in C/C++/assembly (CMake, Python, shell, TOML: '#'; linker scripts:
'/* ... */' on one line). Marker lines may be indented; skeleton lines stay commented out in
main and are uncommented on publish:

    // LAB 3 BEGIN optional one-line description
    ...reference solution...
    // LAB 3 SKELETON          (optional: without it the region becomes nothing)
    // panic("lab 3: write map_kernel_half() in kernel/mm/vm.cpp");
    // LAB 3 END

Publishing lab N keeps the solutions of labs < N (markers and skeletons dropped) and turns
regions of labs >= N into their skeletons."""


def _lab_number(text):
    digits = text[3:] if text.startswith("lab") else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a lab (lab0, lab1, ... or a number)")
    return int(digits)


def cmd_lint(args):
    sources = publish.scan(paths.ROOT)
    errors = publish.lint(paths.ROOT, sources)
    for e in errors:
        print(e)
    count = sum(len(s.parsed.regions) for s in sources if s.parsed)
    print(f"labs lint: {count} region(s) in {len(sources)} files; "
          f"{len(errors) or 'no'} error(s)")
    return 1 if errors else 0


def cmd_publish(args):
    branches = publish.publish(args.out, paths.ROOT, log=info, upto=args.upto)
    print(f"published {len(branches)} branch(es) in {os.path.abspath(args.out)}: "
          f"{' '.join(branches)}; HEAD is {branches[0]}")
    print("leak check passed: no branch labN holds solution text of lab N or later, and none "
          "holds a hidden test")
    last = branches[-1]
    if len(branches) > 1:
        print(f"note: each branch labN holds the reference solutions of labs 0..N-1, so {last} "
              f"shows the solutions of {', '.join(branches[:-1])}; push a branch only when its lab "
              "starts (publish with --upto N, see docs/instructors.md)")
    return 0


def cmd_check(args):
    deps.ensure()
    speed.export()
    problems = labcheck.check(paths.ROOT, only=args.labs or None, jobs=args.parallel,
                              clean=args.clean, workers=args.jobs, skip_main=args.skip_main,
                              earlier_labs=0 if args.own_only else 1 if args.previous_only else None,
                              one_isa=None if args.one_isa is None else args.one_isa or head_commit(),
                              earlier_once=None if args.earlier_once is None else args.earlier_once or head_commit(),
                              out=lambda line: print(line, flush=True))
    return 1 if problems else 0


def cmd_mutants(args):
    for name in ("repeat", "share"):
        if getattr(args, name) < 1:
            raise PagodaError(f"labs mutants: --{name} takes a whole number of at least 1, not {getattr(args, name)}")
    if not args.list:
        deps.ensure()
        speed.export()
    problems = mutants.run(paths.ROOT, numbers=args.labs or None,
                           arches=(args.arch,) if args.arch else paths.ARCHES, listing=args.list,
                           workers=args.parallel, out=lambda line: print(line, flush=True), slugs=args.slip,
                           why=args.why, json_path=args.json, slips_dir=args.slips,
                           one_isa=None if args.one_isa is None else args.one_isa or head_commit(),
                           repeat=args.repeat, slip_test_only=args.slip_test_only, solutions=args.solutions,
                           in_order_once=None if args.in_order_once is None else args.in_order_once or head_commit(),
                           share=args.share)
    return 1 if problems else 0


def head_commit():
    """This tree's commit (the default seed of --one-isa), or "" outside git."""
    out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def cmd_start(args):
    n = args.lab
    if n is None:
        current = labstatus.current_lab(paths.ROOT)
        if current is None:
            raise PagodaError("this tree has no .pagoda-lab (it is the reference tree): say which "
                              "lab to start, e.g. ./pagoda lab start 1")
        n = current + 1
    outcome = labstart.start(n, paths.ROOT, source=args.source)
    # The lab files now on disk are the new branch's (labs/ may have gained a lab).
    return labstart.report(outcome, publish.load_labs(paths.ROOT), paths.ROOT)


def cmd_status(args):
    deps.ensure()
    return labstatus.status(paths.ROOT, args.arch, args.jobs, earlier=args.all)


def add_parser(sub):
    p = sub.add_parser("labs", help="staff: lint the solution regions, publish the student "
                                    "branches, check every lab's skeleton",
                       description="Tools that turn main (the reference solution) into one "
                                   "student branch per lab.\n\n" + MARKERS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    labs_sub = p.add_subparsers(dest="labs_command", metavar="ACTION")
    labs_sub.required = True

    q = labs_sub.add_parser("lint", help="check the region markers of every file",
                            description="Checks the region markers of the files git tracks and "
                                        "the untracked ones it does not ignore: balanced "
                                        "BEGIN/SKELETON/END, no nesting, known lab numbers that "
                                        "match, commented-out skeleton lines. Prints "
                                        "'file:line: message' per error; exits 1 if any.")
    q.set_defaults(func=cmd_lint)

    q = labs_sub.add_parser("publish", help="make a fresh git repository with one branch per lab",
                            description="Creates a git repository at --out with branches lab0, "
                                        "lab1, ...: labN's one commit, on top of lab(N-1)'s, holds "
                                        "the tree students get for lab N (earlier labs solved, lab "
                                        "N and later as skeletons, .pagoda-lab = N). There is no "
                                        "main; HEAD is on the first lab. The source is this working "
                                        "tree, uncommitted files included. Hidden tests are left "
                                        "out. Fails if a solution line of lab N or later, or a "
                                        "hidden test, can be found in the history of branch labN.")
    q.add_argument("--out", required=True, metavar="DIR",
                   help="where to create the repository (must not exist, or be empty)")
    q.add_argument("--upto", type=_lab_number, metavar="N",
                   help="only branches lab0..labN (branch labN shows the solutions of the labs "
                        "before N: push one lab at a time)")
    q.set_defaults(func=cmd_publish)

    q = labs_sub.add_parser("tables", help="check (or --write) the handouts' test tables against lab.toml",
                            description=handouts.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--write", action="store_true",
                   help="rewrite each handout's table from its lab.toml")
    q.set_defaults(func=handouts.cmd_tables)

    q = labs_sub.add_parser("check", help="build and grade every lab's skeleton tree",
                            description=labcheck.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("labs", nargs="*", type=_lab_number, metavar="LAB",
                   help="check only these labs (and skip grading main)")
    q.add_argument("-p", "--parallel", type=int, default=1, metavar="N",
                   help="labs built and graded at the same time (default 1: on a small machine "
                        "one build already uses every core)")
    q.add_argument("-j", "--jobs", type=grade.jobs_argument, default="auto",
                   help="parallel QEMU boots per grader run (default auto)")
    q.add_argument("--clean", action="store_true",
                   help="delete build/labs-check first (full rebuild of every lab tree)")
    q.add_argument("--skip-main", action="store_true",
                   help="do not grade main itself (./pagoda test does: its grade step has just "
                        "proved main's full marks on every ISA)")
    q.add_argument("--previous-only", action="store_true",
                   help="on each lab's tree grade, of the earlier labs, only the one just before "
                        "it (each lab's tests still run on the skeleton that follows it)")
    q.add_argument("--own-only", action="store_true",
                   help="on each lab's tree grade none of the earlier labs, only its own tests on the skeleton "
                        "(which must fail); ./pagoda test does this without --ci or --full")
    q.add_argument("--one-isa", nargs="?", const="", metavar="SEED",
                   help="build each lab's reference as a submission on one ISA only, half the labs on "
                        "each (which half: SEED, by default this tree's commit), and grade it nowhere "
                        "(without this: built and graded on every ISA); grade each lab's skeleton on that "
                        "ISA only (built on each); ./pagoda test does this without --ci or --full")
    q.add_argument("--earlier-once", nargs="?", const="", metavar="SEED",
                   help="grade every earlier lab in each lab's tree on one ISA (half the trees on each; which "
                        "half: SEED, by default this tree's commit), only the lab before it on the others; "
                        "./pagoda test --ci (CI) does this")
    q.set_defaults(func=cmd_check)

    q = labs_sub.add_parser("mutants", help="prove the grader catches and names each lab's known slips",
                            description=mutants.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("labs", nargs="*", type=_lab_number, metavar="LAB",
                   help="only the slips of these labs (default: every lab's)")
    q.add_argument("--arch", choices=paths.ARCHES,
                   help="only this ISA (default: each ISA a slip applies to)")
    q.add_argument("--list", action="store_true",
                   help="validate the slip files and list them; build and grade nothing")
    q.add_argument("-s", "--slip", action="append", metavar="SLUG",
                   help="only this slip (its file name without .toml, or labN/SLUG); repeatable")
    q.add_argument("-p", "--parallel", type=int, metavar="N",
                   help="grades run at the same time (default: one per core); builds run one at a time")
    q.add_argument("--why", action="store_true",
                   help="also replay each caught slip's failing boot under GDB and run fault-why where it "
                        "dies or a process is killed; its verdict, and whether it names the cause, is a "
                        "column (a second boot per slip: not run by ./pagoda test)")
    q.add_argument("--json", metavar="FILE", help="write every slip's outcome (and fault-why's) as JSON")
    q.add_argument("--repeat", type=int, default=1, metavar="K",
                   help="grade each slip K times, each grade with tokens of its own: a problem unless all K "
                        "catch and name it in the same test (detection that never depends on timing)")
    q.add_argument("--one-isa", nargs="?", const="", metavar="SEED",
                   help="each slip on one ISA only, half of each lab's slips on each (which half: SEED, by "
                        "default this tree's commit); ./pagoda test does this unless --full")
    q.add_argument("--share", type=int, default=1, metavar="K",
                   help="grade one in K of each lab's slips (rounded up; which: the --one-isa or --in-order-once "
                        "seed, by default this tree's commit); ./pagoda test does this with K=4 unless --ci or --full")
    q.add_argument("--slip-test-only", action="store_true",
                   help="grade each slip on the test its file names ('test') alone, not on the lab's tests "
                        "before it (which must pass: checked without this); ./pagoda test does this unless --full")
    q.add_argument("--in-order-once", nargs="?", const="", metavar="SEED",
                   help="grade each slip on every ISA it applies to: in lab.toml order on one (half of each lab's "
                        "slips on each; which half: SEED, by default this tree's commit), on the test its file "
                        "names alone on the others; ./pagoda test --ci (CI) does this")
    q.add_argument("--slips", metavar="DIR",
                   help="check the slips kept in DIR instead of the labs' own: DIR/NN-name/SLUG.toml or "
                        "DIR/labN/SLUG.toml, in the same format (a wider set kept outside the tree, so the "
                        "grader is measured on bugs it was not written against); logs in "
                        "build/labs-check/mutants-slips/")
    q.add_argument("--solutions", action="store_true",
                   help="grade each lab's other solutions (labs/NN-name/solutions/) instead of its slips: each "
                        "must score full marks (not part of ./pagoda test)")
    q.set_defaults(func=cmd_mutants)

    p = sub.add_parser("lab", help="students: where you stand in the current lab",
                       description="Commands for the lab this branch is for (.pagoda-lab). Without an "
                                   "action: status.")
    p.set_defaults(func=cmd_status, all=False, arch=paths.DEFAULT_ARCH, jobs="auto")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    q = lab_sub.add_parser("status", help="grade the current lab and say what to read next",
                           description="Builds the kernel, runs the current lab's tests, prints "
                                       "which pass, and points at the handout and the first "
                                       "failing test. In main (the reference tree) it grades "
                                       "every lab. Exits 0 when every test passes.")
    q.add_argument("--all", action="store_true",
                   help="also grade the earlier labs (their solutions are in your tree: a "
                        "failure there means your changes broke them)")
    q.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    q.add_argument("-j", "--jobs", type=grade.jobs_argument, default="auto",
                   help="parallel QEMU boots: a number or 'auto' (the default)")
    q.set_defaults(func=cmd_status)

    q = lab_sub.add_parser("start", help="move your work into the next lab's branch",
                           description=labstart.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("lab", nargs="?", type=_lab_number, metavar="N",
                   help="the lab to start (default: the one after this branch's)")
    q.add_argument("--from", dest="source", metavar="BRANCH",
                   help="the branch with your work (default: the current branch)")
    q.set_defaults(func=cmd_start)
