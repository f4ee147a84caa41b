"""The grader's proof function must agree with the kernel's (kernel/tests/proof_test.cpp)."""
from pagoda_grade.proof import new_token, proof


def test_known_vector_matches_kernel_test():
    assert proof("abc", 42) == 0xEC720F91EE3D4D81


def test_tokens_are_fresh():
    assert len({new_token() for _ in range(100)}) == 100
