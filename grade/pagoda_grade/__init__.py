"""Pagoda's grader: boots the kernel in QEMU per test and checks what it proves.

Tests live in grade/test_labN.py and are tied to their lab manifest (labs/NN-name/lab.toml)
by id with @lab_test(N, "id"); the manifest alone declares points and timeouts.
"""
import pytest


def lab_test(lab, test_id):
    """Marks a grader test as the implementation of test @p test_id of lab @p lab."""
    return pytest.mark.lab(lab, test_id)
