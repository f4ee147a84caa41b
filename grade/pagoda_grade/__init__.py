"""Pagoda's grader: boots the kernel in QEMU per test and checks what it proves.

Tests live in grade/test_labN.py and are tied to their lab manifest (labs/NN-name/lab.toml)
by id with @lab_test(N, "id"); the manifest alone declares points and timeouts.

This package is also imported by ./pagoda itself (the manifest loader) before `./pagoda setup`
has installed pytest, so nothing here may import a third-party module at import time.
"""


def lab_test(lab, test_id):
    """Marks a grader test as the implementation of test @p test_id of lab @p lab."""
    import pytest  # only grader tests call this, and they run under pytest
    return pytest.mark.lab(lab, test_id)
