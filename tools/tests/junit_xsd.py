"""The JUnit schema check the tools' tests share: xmllint (libxml2-utils, which ./pagoda setup
installs) against tools/tests/junit.xsd."""
import os
import shutil
import subprocess

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "junit.xsd")


def schema_errors(path):
    """xmllint's complaints about the XML file @p path ('' when it is valid)."""
    if shutil.which("xmllint") is None:
        raise AssertionError("xmllint is missing: run ./pagoda setup (package libxml2-utils)")
    out = subprocess.run(["xmllint", "--noout", "--schema", SCHEMA, str(path)],
                         capture_output=True, text=True)
    return "" if out.returncode == 0 else (out.stderr.strip() or f"xmllint status {out.returncode}")
