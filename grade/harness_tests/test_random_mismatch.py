"""Lab 5's random_ops names the first operation the kernel answered otherwise than the model:
the program hands (operation, result, the model's result) to vmas_mismatch, where the grader
stops, and vmawatch.random_mismatch() tells the operation from the grader's own replay
(random_steps, the model random_model checksums). Tried here on the replay of fixed tokens."""
import pytest

from pagoda_grade import vmawatch as lab5

OPS = 1000


def first(token, pred):
    """The first step of the replay for @p token that @p pred accepts."""
    return next(s for s in lab5.random_steps(token, OPS) if pred(s))


def mapped_in(step):
    return [i for i in range(step["first"], step["first"] + step["count"]) if i in step["before"]]


@pytest.mark.parametrize("token", ["c0ffee00c0ffee00", "0123456789abcdef"])
def test_the_replay_one_step_at_a_time_is_the_model(token):
    checksum, at = lab5.random_model(token, OPS, 500)
    steps = list(lab5.random_steps(token, OPS))
    assert len(steps) == OPS and steps[500]["before"] == at
    assert all(s["wants"] for s in steps if s["call"] != "touch")


def test_a_map_fixed_over_a_mapping_that_fails_is_named_as_not_replacing():
    token = "c0ffee00c0ffee00"
    s = first(token, lambda s: s["call"] == "mmap" and mapped_in(s))
    said = lab5.random_mismatch(token, OPS, s["op"], lab5.EINVAL, s["wants"][0])
    assert said.startswith(f"operation {s['op']} of {OPS} of vmas's random mode")
    assert "mmap(MAP_FIXED) " in said and f"over {len(mapped_in(s))} mapped page(s), returned -EINVAL" in said
    assert "a MAP_FIXED mapping replaces whatever it covers" in said


def test_other_operations_say_what_the_model_expects_and_why():
    token = "0123456789abcdef"
    s = first(token, lambda s: s["call"] == "noreplace" and mapped_in(s))
    assert "fails with EEXIST and changes nothing" in lab5.random_mismatch(token, OPS, s["op"], s["first"], lab5.EEXIST)
    s = first(token, lambda s: s["call"] == "mprotect" and len(mapped_in(s)) < s["count"])
    assert "a range with a hole is refused (ENOMEM)" in lab5.random_mismatch(token, OPS, s["op"], 0, lab5.ENOMEM)
    s = first(token, lambda s: s["call"] == "touch" and s["wants"] and s["wants"][-1] == lab5.EFAULT)
    assert "must fail with EFAULT" in lab5.random_mismatch(token, OPS, s["op"], 0, lab5.EFAULT)
    s = first(token, lambda s: s["call"] == "touch" and s["wants"] and s["wants"][0] != lab5.EFAULT)
    assert "the page lost its contents" in lab5.random_mismatch(token, OPS, s["op"], 0, s["wants"][0])
    # a want the replay does not have: the program is not the grader's
    assert "it is not the grader's program" in lab5.random_mismatch(token, OPS, s["op"], 0, 12345)
