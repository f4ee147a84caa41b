"""The implementation of ./pagoda: build, run, test, grade, benchmark (standard library only)."""
