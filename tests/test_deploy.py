"""The shipped systemd units are valid as systemd reads them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_verify(tmp_path):
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/ldapsync/bin/ldapsync", shutil.which("true"))
        (tmp_path / unit.name).write_text(text)
    for name in ("ldapsync.service", "ldapsync-run.service", "ldapsync-run.timer"):
        out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
        problems = [line for line in (out.stdout + out.stderr).splitlines() if name.split(".")[0] in line]
        assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_units_run_the_documented_commands():
    serve = (UNITS / "ldapsync.service").read_text()
    assert "ldapsync --log-format json serve -c /etc/ldapsync/ldapsync.yaml" in serve
    assert "ExecReload=/bin/kill -HUP $MAINPID" in serve
    run = (UNITS / "ldapsync-run.service").read_text()
    assert "Type=oneshot" in run and " run -c /etc/ldapsync/ldapsync.yaml" in run
    for text in (serve, run):
        assert "ProtectSystem=strict" in text and "ReadWritePaths=/var/lib/prosody /var/lib/ldapsync" in text
