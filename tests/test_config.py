"""The configuration: the shipped example loads, and every mistake names its key."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from ldapsync.config import ConfigError, load, parse
from ldapsync.errors import UserError
from ldapsync.templates import Templates

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"

MINIMAL = """
ldap:
  servers: [ldap://127.0.0.1:3890]
users:
  base: ou=people,dc=example,dc=com
groups:
  base: ou=groups,dc=example,dc=com
outputs:
  - path: /tmp/groups.txt
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(text)
    return err.value.problems


def test_the_example_config_loads_and_its_templates_compile():
    config = load(EXAMPLE)
    assert config.ldap.servers[0] == "ldaps://ldap1.example.com"
    assert config.outputs[0].mode == 0o640
    assert config.groups.public == ["All Staff"]
    assert config.flavour == "generic" and config.groups.nested == "client" and config.groups.range_size is None
    templates = Templates(config.mapping)
    assert templates.user_attributes == ["cn", "displayName", "uid"]
    assert templates.group_attributes == ["cn", "description"]


def test_the_example_config_leaves_the_flavour_its_keys():
    """A sysadmin who copies the example and sets flavour: ad gets the AD defaults."""
    text = EXAMPLE.read_text().replace("flavour: generic", "flavour: ad")
    config = parse(text)
    assert config.ldap.domain_scope and config.users.disabled == "ad"
    assert config.users.filter == "(&(objectClass=user)(objectCategory=person))"
    assert config.users.uid_attribute == "sAMAccountName" and config.groups.filter == "(objectClass=group)"
    assert config.mapping.jid == "{{ (userPrincipalName or mail) | lower }}"
    assert config.mapping.group_name == "{{ cn }}"


def test_minimal_config_gets_defaults():
    config = parse(MINIMAL)
    assert config.users.filter == "(objectClass=inetOrgPerson)"
    assert config.groups.nested == "client" and config.groups.max_depth == 10
    assert config.ldap.verify_certificates is True


def test_the_gains_limits_and_their_bounds():
    safety = parse(MINIMAL).outputs[0].safety
    assert (safety.max_public_groups_added, safety.max_public_contacts_gained_percent) == (0, 20.0)
    assert safety.max_public_contacts_gained is None and safety.max_contacts_gained is None
    grown = parse(MINIMAL + "    safety: {max_public_contacts_gained_percent: 250}\n").outputs[0].safety
    assert grown.max_public_contacts_gained_percent == 250  # growth may pass 100%
    for value in (".nan", ".inf", "10001", "-1"):
        found = problems(MINIMAL + f"    safety: {{max_public_contacts_gained_percent: {value}}}\n")
        assert [p.split(":")[0] for p in found] == ["outputs[0].safety.max_public_contacts_gained_percent"], found
    found = problems(MINIMAL + "    safety: {max_public_groups_added: -1, max_contacts_gained: x}\n")
    assert {p.split(":")[0] for p in found} == {"outputs[0].safety.max_public_groups_added",
                                                "outputs[0].safety.max_contacts_gained"}


def test_unknown_keys_are_errors_with_a_suggestion():
    found = problems(MINIMAL + "mapping:\n  group_nam: '{{ cn }}'\n")
    assert found == ["mapping.group_nam: unknown key; did you mean 'group_name'?"]
    found = problems(MINIMAL.replace("users:\n", "users:\n  fliter: (uid=*)\n"))
    assert found == ["users.fliter: unknown key; did you mean 'filter'?"]


def test_every_problem_is_reported_with_its_path():
    text = """
ldap:
  servers: [http://x]
  timeout: -1
users: {}
groups:
  base: ou=groups
  max_depth: 0
outputs:
  - path: /tmp/a
    mode: "rw-r--r--"
"""
    found = problems(text)
    assert "ldap.servers: 'http://x' is not an ldap:// or ldaps:// URL" in found
    assert any(p.startswith("ldap.timeout: ") for p in found)
    assert "users.base: required, but missing" in found
    assert any(p.startswith("groups.max_depth: ") for p in found)
    assert "outputs[0].mode: 'rw-r--r--' is not an octal file mode such as '0640'" in found


def test_cross_key_rules():
    assert any("give only one of bind_password, bind_password_env" in p for p in problems(
        MINIMAL.replace("ldap:\n", "ldap:\n  bind_dn: cn=x\n  bind_password: a\n  bind_password_env: B\n")))
    assert any("bind_password is set but bind_dn is not" in p for p in problems(
        MINIMAL.replace("ldap:\n", "ldap:\n  bind_password: a\n")))
    assert any("two outputs write /tmp/groups.txt" in p for p in problems(
        MINIMAL + "  - path: /tmp/groups.txt\n"))
    assert problems("just text") == ["expected a mapping of settings at the top level"]
    assert problems("a: [") [0].startswith("not valid YAML")


def test_password_sources(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    config = parse(MINIMAL.replace("ldap:\n", f"ldap:\n  bind_dn: cn=x\n  bind_password_file: {secret}\n"))
    assert config.bind_password() == "s3cret"
    config = parse(MINIMAL.replace("ldap:\n", "ldap:\n  bind_dn: cn=x\n  bind_password_env: LDAPSYNC_TEST_PW\n"))
    monkeypatch.setenv("LDAPSYNC_TEST_PW", "from-env")
    assert config.bind_password() == "from-env"
    monkeypatch.delenv("LDAPSYNC_TEST_PW")
    with pytest.raises(UserError, match="LDAPSYNC_TEST_PW is not set"):
        config.bind_password()


def test_a_password_others_can_read_is_refused(tmp_path):
    path = tmp_path / "ldapsync.yaml"
    path.write_text(MINIMAL.replace("ldap:\n", "ldap:\n  bind_dn: cn=x\n  bind_password: hunter2\n"))
    os.chmod(path, 0o644)
    with pytest.raises(UserError) as err:
        load(path)
    assert err.value.exit_code == 78
    assert "other users can read it (mode 0644); run 'chmod 600" in str(err.value)
    assert "hunter2" not in str(err.value)
    os.chmod(path, 0o640)
    assert load(path).bind_password() == "hunter2"


def test_a_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="no such configuration file") as err:
        load(tmp_path / "nope.yaml")
    assert err.value.exit_code == 78


def test_a_template_that_does_not_compile_names_its_key():
    config = parse(MINIMAL + "mapping:\n  name: '{{ displayName '\n")
    with pytest.raises(ConfigError, match="mapping.name: "):
        Templates(config.mapping)


def test_post_change_command_is_checked_at_load():
    assert any("outputs[0].post_change_command: cannot split the command" in p for p in problems(
        MINIMAL + "    post_change_command: \"prosodyctl 'unbalanced\"\n"))
    config = parse(MINIMAL + "    post_change_command: [prosodyctl, shell, module, reload, groups, example.com]\n")
    assert config.outputs[0].post_change_command[0] == "prosodyctl"


def test_the_ad_flavour_fills_in_only_what_the_config_leaves_out():
    config = parse("flavour: ad\n" + MINIMAL.replace("groups:\n", "groups:\n  filter: (cn=xmpp-*)\n")
                   + "mapping:\n  jid: '{{ mail | lower }}'\n")
    assert config.users.filter == "(&(objectClass=user)(objectCategory=person))"
    assert config.users.disabled == "ad" and config.users.uid_attribute == "sAMAccountName"
    assert config.ldap.domain_scope is True
    assert config.groups.filter == "(cn=xmpp-*)"  # set in the config: kept
    assert config.mapping.jid == "{{ mail | lower }}"
    assert config.mapping.group_name == "{{ cn }}"
    templates = Templates(config.mapping)
    assert "displayName" in templates.user_attributes
    # without a flavour, the generic defaults
    generic = parse(MINIMAL)
    assert generic.flavour == "generic" and generic.users.disabled == "none" and not generic.ldap.domain_scope
    # a flavour's setting can be turned back
    assert parse("flavour: ad\n" + MINIMAL.replace("users:\n", "users:\n  disabled: none\n")).users.disabled == "none"


def test_flavour_and_ad_keys_are_checked_with_their_path():
    assert any(p.startswith("flavour: Input should be 'generic' or 'ad'") for p in problems("flavour: ads\n" + MINIMAL))
    found = problems(MINIMAL.replace("groups:\n", "groups:\n  nested: sometimes\n  range_size: 0\n"))
    assert any(p.startswith("groups.nested: Input should be 'client', 'in_chain' or 'off'") for p in found)
    assert any(p.startswith("groups.range_size: Input should be greater than or equal to 1") for p in found)
    found = problems(MINIMAL.replace("groups:\n", "groups:\n  membership: memberOf\n  range_size: 500\n"))
    assert found == ["groups: range_size applies to the member values of groups (membership: group)"]


@pytest.mark.parametrize(("given", "nested"), [("true", "client"), ("false", "off"), ("off", "off"),
                                               ("client", "client"), ("in_chain", "in_chain")])
def test_nested_true_and_false_keep_their_meaning(given, nested):
    config = parse("flavour: ad\n" + MINIMAL.replace("groups:\n", f"groups:\n  nested: {given}\n"))
    assert config.groups.nested == nested


def test_ad_features_need_the_ad_flavour():
    # slapd answers member;range=0-499 and the in-chain rule with no members: groups would empty silently
    assert problems(MINIMAL.replace("groups:\n", "groups:\n  range_size: 500\n")) == [
        "groups.range_size: member ranges are an Active Directory feature (other servers answer with no members); "
        "set flavour: ad, or leave range_size out"]
    assert problems(MINIMAL.replace("groups:\n", "groups:\n  nested: in_chain\n"))[0].startswith(
        "groups.nested: in_chain is an Active Directory rule")


def test_the_readme_active_directory_example_is_a_valid_config():
    readme = (EXAMPLE.parent / "README.md").read_text()
    section = readme[readme.index("### Active Directory"):]
    block = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n") + 8)]
    config = parse(block + "outputs:\n  - path: /var/lib/prosody/groups.txt\n")
    assert config.flavour == "ad" and config.ldap.domain_scope
    assert config.users.filter == "(&(objectClass=user)(objectCategory=person))"
    assert config.mapping.jid == "{{ sAMAccountName | lower }}@example.com"
    assert Templates(config.mapping).user_attributes == ["cn", "displayName", "sAMAccountName"]


# --- values that ended in a traceback at run time -------------------------------------------------------------


def with_value(key: str, value: object, text: str = MINIMAL) -> str:
    """The config ``text`` with ``key`` (dotted; a number indexes a list) set
    to ``value``, written back as YAML."""
    data = yaml.safe_load(text)
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    return yaml.safe_dump(data, allow_unicode=True)


def loadable_with(key: str, value: object) -> str:
    """:func:`with_value`, plus what the key needs to load at all (metrics need a state file)."""
    text = with_value(key, value)
    if key.startswith("metrics."):
        text = with_value("state.path", "/var/lib/ldapsync/state.json", text)
    return text


def shown_key(key: str) -> str:
    """How a problem names ``key``: outputs.0.mode is outputs[0].mode."""
    return re.sub(r"\.(\d+)", r"[\1]", key)


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("key", "value", "says"), [
    # file modes: permission bits only, and not writable by every user
    ("outputs.0.mode", 70000, "not a permission mode from 0000 to 0777"),
    ("outputs.0.mode", "0170000", "not a permission mode from 0000 to 0777"),
    ("outputs.0.mode", "04750", "no setuid"),
    ("outputs.0.mode", -1, "not a permission mode"),
    ("outputs.0.mode", 640, "YAML reads 640 as a decimal number, write '0640'"),
    ("outputs.0.mode", "0666", "lets every user of the machine write the groups file"),
    ("outputs.0.mode", 0o602, "lets every user of the machine write the groups file"),
    # infinite, NaN and unbounded numbers
    ("ldap.timeout", INF, "finite number"),
    ("ldap.timeout", NAN, "finite number"),
    ("ldap.timeout", 86401, "less than or equal to 86400"),
    ("ldap.connect_timeout", INF, "finite number"),
    ("ldap.connect_timeout", 3601, "less than or equal to 3600"),
    ("outputs.0.post_change_timeout", INF, "finite number"),
    ("outputs.0.post_change_timeout", 1e12, "less than or equal to 86400"),
    ("outputs.0.safety.max_members_removed_percent", NAN, "finite number"),
    ("schedule.retry_delay", NAN, "finite number"),
    ("schedule.retry_delay", 1e300, "less than or equal to 86400"),
    ("schedule.shutdown_timeout", INF, "finite number"),
    ("schedule.jitter", 10 ** 12, "less than or equal to 86400"),
    ("schedule.misfire_grace_time", 10 ** 12, "less than or equal to 604800"),
    ("schedule.poll", "1s", "greater than or equal to 5"),
    ("schedule.poll", 4.9, "greater than or equal to 5"),
    ("schedule.poll", "25h", "less than or equal to 86400"),
    ("schedule.poll", "soon", "'soon' is not a duration such as 60s, 5m or 1h"),
    ("schedule.poll", "-5m", "is not a duration"),
    ("schedule.poll", ".inf", "is not a duration"),
    ("schedule.poll", INF, "finite number"),
    ("state.lock_timeout", INF, "finite number"),
    ("state.lock_timeout", 1e9, "less than or equal to 86400"),
    # paths: empty, or a directory where a file belongs, or a NUL byte
    ("outputs.0.path", "", "the path is empty"),
    ("outputs.0.path", "   ", "the path is empty"),
    ("outputs.0.path", "/var/lib/prosody/", "names a directory"),
    ("outputs.0.path", "/var/lib/prosody/..", "names a directory"),
    ("outputs.0.path", ".", "names a directory"),
    ("outputs.0.path", "/tmp/groups\0.txt", "NUL byte"),
    ("outputs.0.backup_dir", "", "the path is empty"),
    ("state.path", "", "the path is empty"),
    ("state.path", "/var/lib/ldapsync/", "names a directory"),
    ("state.lock_path", "/run/", "names a directory"),
    ("metrics.textfile", "", "the path is empty"),
    ("ldap.ca_file", "", "the path is empty"),
    ("ldap.bind_password_file", "/etc/ldapsync/", "names a directory"),
    ("ldap.client_cert_file", 42, "expected a path"),
    ("users.base", "ou=people\0,dc=example,dc=com", "NUL byte"),
    ("outputs.0.post_change_command", ["prosodyctl", "re\0load"], "NUL byte"),
    # what is used only later: a pattern, a schedule, an address
    ("outputs.0.reload_check_expect", "(groups", "is not a regular expression"),
    ("schedule.cron", "0 3 * * 8", "the day of week field '8': 8 is out of range (0-7)"),
    ("schedule.cron", "0 0 31 2 *", "never comes"),
    ("schedule.cron", "0 0 31 4,6,9,11 *", "never comes"),
    ("schedule.cron", "60 3 * * *", "the minute field '60': 60 is out of range (0-59)"),
    ("schedule.cron", "0 3 * * mon-frx", "'frx' is not a number or a name"),
    ("metrics.listen", "127.0.0.1:99999", "is not HOST:PORT"),
    ("metrics.listen", "127.0.0.1:\u0669\u0668\u0664\u0667", "is not HOST:PORT"),
    ("metrics.listen", "not a host!:9847", "is neither an IP address"),
])
def test_a_value_that_cannot_work_is_refused_at_load_naming_its_key(key, value, says):
    text = loadable_with(key, value)
    found = problems(text)
    mine = [p for p in found if p.startswith(shown_key(key) + ": ")]
    assert mine, found
    assert says in mine[0]


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("outputs.0.mode", "0640", 0o640),
    ("outputs.0.mode", 0o644, 0o644),
    ("outputs.0.mode", "0600", 0o600),
    ("outputs.0.mode", "0000", 0),
    ("outputs.0.mode", "0775", 0o775),
    ("ldap.timeout", 86400, 86400),
    ("ldap.connect_timeout", 0.5, 0.5),
    ("schedule.jitter", 600, 600),
    ("schedule.misfire_grace_time", 604800, 604800),
    ("schedule.poll", "60s", 60),
    ("schedule.poll", "5m", 300),
    ("schedule.poll", "1d", 86400),
    ("schedule.poll", "5", 5),
    ("schedule.poll", 90, 90),
    ("schedule.poll", None, None),
    ("state.lock_timeout", 0, 0),
    ("outputs.0.path", "groups.txt", Path("groups.txt")),
    ("outputs.0.path", "/var/lib/prosody/..groups", Path("/var/lib/prosody/..groups")),
    ("outputs.0.backup_dir", "/var/backups/ldapsync/", Path("/var/backups/ldapsync")),
    ("outputs.0.reload_check_expect", r"(?m)^\s*groups\s*$", r"(?m)^\s*groups\s*$"),
    ("schedule.cron", "*/15 8-18 * * mon-fri", "*/15 8-18 * * mon-fri"),
    ("schedule.cron", "0 3 29 2 7", "0 3 29 2 7"),
    ("metrics.listen", "[::1]:9847", "[::1]:9847"),
    ("metrics.listen", "localhost:9847", "localhost:9847"),
    ("metrics.listen", ":9847", ":9847"),
])
def test_values_within_the_bounds_are_kept(key, value, expected):
    text = loadable_with(key, value)
    node = parse(text)
    for part in key.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    assert node == expected


def test_yaml_that_python_cannot_hold_is_a_config_error():
    # each ended in a RecursionError or ValueError traceback
    assert problems("a: " + "[" * 20000 + "]" * 20000) == [
        "not a configuration: values nested thousands of levels deep"]
    found = problems(MINIMAL + "schedule:\n  jitter: " + "9" * 5000 + "\n")
    assert len(found) == 1 and found[0].startswith("not valid YAML: Exceeds the limit")


def test_a_nul_byte_is_reported_at_the_key_that_holds_it():
    text = with_value("static_groups", [{"name": "Helpdesk", "members": {"help\0desk@example.com": "Help"}}])
    assert problems(text) == [
        "static_groups[0].members: holds a NUL byte (\\0), which no path, command, name or LDAP value can carry"]


@pytest.mark.parametrize(("url", "says"), [
    # each ended in a traceback inside ldap3
    ("ldap://127.0.0.1:abc", "port could not be cast to integer"),
    ("ldap://ldap.example.com:99999", "port out of range"),
    ("ldap://[::1", "invalid ipv6 url"),
    ("ldap://127.0.0.1:389/dc=example,dc=com?uid?sub", "no base, filter or other part after the host"),
    ("ldap://" + "a" * 300, "no host name or IP address"),
    # and these never reached a server
    ("ldaps://", "no host name or IP address"),
    ("ldap://ldap example.com", "no host name or IP address"),
    ("ldap://127.0.0.1:0", "port 0"),
    ("ldap://cn=admin:secret@ldap.example.com", "no user name or password in it"),
])
def test_a_server_url_ldap_cannot_use_is_refused(url, says):
    found = problems(with_value("ldap.servers", [url]))
    shown = url.replace("cn=admin:secret@", "...@")
    assert len(found) == 1 and found[0].startswith(f"ldap.servers: {shown!r} is not ldap://HOST[:PORT] or ldaps://")
    assert says in found[0] and "secret" not in found[0]


def test_server_urls_ldap_can_use():
    servers = ["ldaps://ldap1.example.com", "LDAP://DC1.EXAMPLE.COM:3268", "ldap://[::1]:389", "ldap://127.0.0.1/",
               "ldaps://ldap.example.com.:636"]
    assert parse(with_value("ldap.servers", servers)).ldap.servers == [
        "ldaps://ldap1.example.com", "LDAP://DC1.EXAMPLE.COM:3268", "ldap://[::1]:389", "ldap://127.0.0.1",
        "ldaps://ldap.example.com.:636"]


@pytest.mark.parametrize(("key", "value", "says"), [
    ("users.filter", "", "an empty filter"),
    ("users.filter", "   ", "an empty filter"),
    ("users.filter", "(uid=*", "'(uid=*' is not a valid LDAP filter (RFC 4515)"),
    ("users.disabled_filter", "(&(a=1)", "'(&(a=1)' is not a valid LDAP filter"),
    ("groups.filter", "(|(objectClass=group)(cn=x)", "is not a valid LDAP filter"),
])
def test_a_filter_the_directory_cannot_read_is_refused_at_load(key, value, says):
    """An empty filter read as "everything" with python-ldap and failed
    with ldap3; a broken one failed only when the sync ran."""
    found = problems(with_value(key, value))
    assert any(p.startswith(f"{key}: ") and says in p for p in found), found


def test_filters_get_their_outer_parentheses_so_both_backends_read_them_alike():
    config = parse(with_value("users.filter", " uid=* "))
    assert config.users.filter == "(uid=*)"
    assert parse(with_value("groups.filter", "(cn=Jürgen)")).groups.filter == "(cn=Jürgen)"
