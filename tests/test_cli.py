"""The command line: output, --json contracts and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ldapsync.cli import main

CLEAN = "[+Staff]\nalice@example.com=Alice\nbob@example.com=Bob\n[Team]\nalice@example.com=Alice\ncarol@example.com=Carol\n"


@pytest.fixture
def files(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        return str(path)

    return write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for word in ("check", "preview", "diff", "Exit codes", "78"):
        assert word in out
    for command in ("check", "preview", "diff"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Usage: ldapsync " + command in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "ldapsync", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ldapsync, version ")


def test_check_clean_file(capsys, files):
    code, out, _ = run(capsys, "check", files("g.txt", CLEAN))
    assert code == 0
    assert "clean; 2 groups, 4 member lines" in out


def test_check_reports_each_problem_line(capsys, files):
    path = files("g.txt", "\ufeff[Team]\r\nalice@example.com\r\n# comment\n@bad=Bad\n")
    code, out, _ = run(capsys, "check", path)
    assert code == 1
    assert f"{path}:1: warning:" in out and "[bom]" in out
    assert f"{path}:2: warning:" in out and "[nameless]" in out
    assert f"{path}:3: warning:" in out and "[comment]" in out
    assert f"{path}:4: error: Prosody skips this line" in out
    code, out, _ = run(capsys, "check", "--json", path)
    report = json.loads(out)
    assert code == 1 and report["clean"] is False
    assert {"line": 4, "severity": "error", "code": "invalid-jid"}.items() <= report["diagnostics"][-1].items()


def test_check_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "nope"))
    assert code == 66 and "no such file" in err


def test_preview_json_contract(capsys, files):
    path = files("g.txt", CLEAN + "[Team]\ndave@example.com\n")
    code, out, _ = run(capsys, "preview", "--groups-file", path, "ALICE@EXAMPLE.COM", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"jid": "bob@example.com", "name": "Bob", "subscription": "both", "groups": ["Staff"]},
        {"jid": "carol@example.com", "name": "Carol", "subscription": "both", "groups": ["Team"]},
        {"jid": "dave@example.com", "name": "", "subscription": "both", "groups": ["Team"]},
    ]


def test_preview_table_and_host(capsys, files):
    path = files("g.txt", CLEAN)
    code, out, _ = run(capsys, "preview", "--groups-file", path, "--host", "example.com", "carol")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JID", "NAME", "SUBSCRIPTION", "GROUPS"]
    assert lines[1].split() == ["alice@example.com", "Alice", "both", "Staff,", "Team"]
    assert "carol@example.com: 2 contacts" in out


def test_preview_with_personal_roster(capsys, files):
    path = files("g.txt", CLEAN)
    personal = files("r.json", json.dumps([
        {"jid": "bob@example.com", "name": "Bobby", "subscription": "none", "groups": ["Friends"]},
        {"jid": "zed@example.com", "name": None, "subscription": "to", "groups": []},
    ]))
    code, out, _ = run(capsys, "preview", "--groups-file", path, "--roster", personal, "carol@example.com", "--json")
    items = {i["jid"]: i for i in json.loads(out)}
    assert items["bob@example.com"] == {"jid": "bob@example.com", "name": "Bob", "subscription": "both",
                                        "groups": ["Friends", "Staff"]}
    assert items["zed@example.com"]["subscription"] == "to"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["a@b@c"], 64, "not a user's bare JID"),
        (["example.com"], 64, "not a user's bare JID"),
        (["--host", "example.org", "alice@example.com"], 64, "not a user of host"),
    ],
)
def test_preview_usage_errors(capsys, files, argv, code, message):
    path = files("g.txt", CLEAN)
    got, _, err = run(capsys, "preview", "--groups-file", path, *argv)
    assert got == code and message in err


def test_preview_bad_personal_roster(capsys, files):
    code, _, err = run(capsys, "preview", "--groups-file", files("g.txt", CLEAN), "--roster",
                       files("r.json", "{"), "alice@example.com")
    assert code == 65 and "cannot read the personal roster" in err


def test_unknown_command_and_option_are_usage_errors(capsys):
    assert run(capsys, "frobnicate")[0] == 64
    assert run(capsys, "check", "--frob", "x")[0] == 64


def test_diff_exit_codes_and_output(capsys, files):
    old = files("old.txt", CLEAN)
    new = files("new.txt", CLEAN.replace("carol@example.com=Carol", "carol@example.com=Carol\ndave@example.com=Dave"))
    assert run(capsys, "diff", old, old)[0] == 0
    code, out, _ = run(capsys, "diff", old, new)
    assert code == 1
    assert "~ group 'Team': 1 added" in out
    assert "    + dave@example.com = Dave" in out
    assert "alice@example.com gains 1 contact" in out
    assert "dave@example.com gains 1 contact, sees 1 contact change groups, joins 'Team'" in out
    assert out.rstrip().splitlines()[-1].startswith("Summary: 0 groups added, 0 removed, 1 changed")


def test_diff_json(capsys, files):
    old = files("old.txt", CLEAN)
    new = files("new.txt", CLEAN.replace("bob@example.com=Bob", "bob@example.com=Robert"))
    code, out, _ = run(capsys, "diff", "--json", old, new)
    data = json.loads(out)
    assert code == 1 and data["changed"] is True
    assert data["groups"][0]["renamed"] == [{"jid": "bob@example.com", "before": "Bob", "after": "Robert"}]
    assert data["others"] == {"user": None, "gained": 0, "lost": 0, "renamed": 1, "regrouped": 0,
                              "joined": [], "left": []}
    assert data["totals"]["contacts_renamed"] == 2  # alice and carol see Bob renamed


def test_diff_limit(capsys, files):
    many = "[T]\n" + "".join(f"u{i}@example.com=U{i}\n" for i in range(30))
    code, out, _ = run(capsys, "diff", files("a.txt", "[T]\n"), files("b.txt", many))
    assert "... and 10 more users (--limit 0 shows all)" in out
    code, out, _ = run(capsys, "diff", "--limit", "0", files("c.txt", "[T]\n"), files("d.txt", many))
    assert "more users" not in out


def test_the_readme_examples(capsys):
    """The files under examples/ give what the README shows."""
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    code, out, _ = run(capsys, "check", str(examples / "groups.txt"))
    assert code == 0 and "clean; 2 groups, 6 member lines" in out
    code, out, _ = run(capsys, "check", str(examples / "problems.txt"))
    assert code == 1 and "10 problems (2 lines Prosody skips" in out
    code, out, _ = run(capsys, "diff", str(examples / "groups.old.txt"), str(examples / "groups.txt"))
    assert code == 1 and "dave@example.com sees 2 contacts change groups, joins 'Team'" in out
