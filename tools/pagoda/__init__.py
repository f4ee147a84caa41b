"""./pagoda's commands: build, run, test, grade, benchmark (standard library only). The machinery
they share with the grader lives below them, in tools/pagoda_core."""
