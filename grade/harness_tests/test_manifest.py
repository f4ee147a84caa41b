"""Lab manifests: the ISAs a lab runs on."""
import os

import pytest

from pagoda_grade import manifest

LAB0 = 'number = 0\nname = "boot"\ntitle = "Boot"\ndepends = []\n{extra}\n' \
       '[[tests]]\nid = "t0"\npoints = 1\ntimeout = 5\n'


def write_lab(tmp_path, extra):
    d = tmp_path / "00-boot"
    d.mkdir()
    (d / "lab.toml").write_text(LAB0.format(extra=extra))
    return str(tmp_path)


def test_arches_default_to_x86_64_only(tmp_path):
    assert manifest.load_all(write_lab(tmp_path, ""))[0].arches == ("x86_64",)


def test_arches_are_read(tmp_path):
    labs = manifest.load_all(write_lab(tmp_path, 'arches = ["x86_64", "aarch64"]'))
    assert labs[0].arches == ("x86_64", "aarch64")


@pytest.mark.parametrize("bad", ['arches = []', 'arches = ["riscv64"]', 'arches = "aarch64"'])
def test_bad_arches_are_refused(tmp_path, bad):
    with pytest.raises(manifest.ManifestError, match="'arches' must be a non-empty list of x86_64, aarch64"):
        manifest.load_all(write_lab(tmp_path, bad))


def test_the_real_lab0_runs_on_both_isas():
    assert manifest.load_all()[0].arches == ("x86_64", "aarch64")
    assert os.path.isdir(manifest.LABS_DIR)
