"""The machinery ./pagoda's commands (tools/pagoda) and the grader (grade/pagoda_grade) share,
standard library only at import. It imports neither of them (tools/pagoda/layers.py checks it)."""
