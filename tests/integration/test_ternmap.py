"""ternmap as an administrator uses it: build a table from text, query it
(exit 0 found, 1 not found, 2 broken), rebuild it, list it with -s, and
build aliases with -A."""
import os
import subprocess

from conftest import binary


def ternmap(*args):
    return subprocess.run([binary("ternmap"), *args], capture_output=True,
                          text=True, timeout=30)


VIRTUAL = """\
# virtual(5) for the test
info@example.org    alice
Sales@Example.ORG   bob, carol
@example.net        catchall
"""


def test_build_then_query_found_and_not_found(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    r = ternmap(f"lmdb:{src}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "virtual.lmdb").is_file()

    r = ternmap("-q", "info@example.org", f"lmdb:{src}")
    assert (r.returncode, r.stdout) == (0, "alice\n")
    r = ternmap("-q", "SALES@example.org", f"lmdb:{src}")
    assert (r.returncode, r.stdout) == (0, "bob, carol\n")
    r = ternmap("-q", "nobody@example.org", f"lmdb:{src}")
    assert (r.returncode, r.stdout) == (1, "")
    # The address search is the servers' job: -q looks up the key only.
    r = ternmap("-q", "someone@example.net", f"lmdb:{src}")
    assert r.returncode == 1


def test_plain_path_means_lmdb(tmp_path):
    src = tmp_path / "transport"
    src.write_text("example.com smtp:[relay.example.com]\n")
    assert ternmap(str(src)).returncode == 0
    r = ternmap("-q", "example.com", str(src))
    assert (r.returncode, r.stdout) == (0, "smtp:[relay.example.com]\n")


def test_rebuild_replaces_the_table_and_leaves_no_temp_file(tmp_path):
    src = tmp_path / "access"
    src.write_text("spammer.example REJECT\n")
    assert ternmap(str(src)).returncode == 0
    src.write_text("friend.example OK\n")
    assert ternmap(str(src)).returncode == 0
    assert ternmap("-q", "spammer.example", str(src)).returncode == 1
    r = ternmap("-q", "friend.example", str(src))
    assert (r.returncode, r.stdout) == (0, "OK\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["access", "access.lmdb"]


def test_bad_line_fails_with_file_and_line_and_keeps_old_table(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    src.write_text("good value\nlonely\n")
    r = ternmap(str(src))
    assert r.returncode == 1
    assert f"fatal: {src}:2:" in r.stderr
    r = ternmap("-q", "info@example.org", str(src))
    assert (r.returncode, r.stdout) == (0, "alice\n")


def test_dump_lists_every_entry_in_key_order(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    r = ternmap("-s", f"lmdb:{src}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("@example.net catchall\n"
                        "info@example.org alice\n"
                        "sales@example.org bob, carol\n")


def test_aliases_syntax_with_A(tmp_path):
    src = tmp_path / "aliases"
    src.write_text("postmaster: root\n"
                   "root: admin@example.org,\n"
                   "    backup@example.org\n"
                   "\"odd name\": |/usr/bin/true\n")
    r = ternmap("-A", str(src))
    assert r.returncode == 0, r.stderr
    r = ternmap("-q", "root", str(src))
    assert r.stdout == "admin@example.org, backup@example.org\n"
    r = ternmap("-q", "odd name", str(src))
    assert r.stdout == "|/usr/bin/true\n"
    # Without -A the colon would be part of the key: the table differs.
    assert ternmap(str(src)).returncode == 0
    assert ternmap("-q", "postmaster:", str(src)).stdout == "root\n"


def test_unreadable_table_is_exit_2_not_not_found(tmp_path):
    missing = tmp_path / "missing"
    r = ternmap("-q", "key", f"lmdb:{missing}")
    assert r.returncode == 2
    assert f"{missing}.lmdb" in r.stderr

    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    db = tmp_path / "virtual.lmdb"
    os.truncate(db, db.stat().st_size - 4096)
    r = ternmap("-q", "nobody@example.org", str(src))
    assert r.returncode == 2
    assert "truncated" in r.stderr
    r = ternmap("-s", str(src))
    assert r.returncode == 1
    assert "truncated" in r.stderr

    r = ternmap("-q", "key", "nosuchtype:/x")
    assert r.returncode == 2
    assert "unsupported table type" in r.stderr


def test_query_reads_every_table_type(tmp_path):
    rx = tmp_path / "checks.regexp"
    rx.write_text("/^(.*)@example\\.com$/ user $1\n")
    cidr = tmp_path / "clients.cidr"
    cidr.write_text("192.0.2.0/24 OK\n2001:db8::/32 REJECT\n")
    text = tmp_path / "plain"
    text.write_text("Key value here\n")
    cases = [
        (f"regexp:{rx}", "joe@example.com", "user joe"),
        (f"cidr:{cidr}", "192.0.2.9", "OK"),
        (f"cidr:{cidr}", "2001:db8::5", "REJECT"),
        (f"texthash:{text}", "KEY", "value here"),
        ("inline:{ a=1, { b = two, three } }", "b", "two, three"),
        ("static:{ all the same }", "anything", "all the same"),
    ]
    for spec, key, want in cases:
        r = ternmap("-q", key, spec)
        assert (r.returncode, r.stdout) == (0, want + "\n"), (spec, r.stderr)
    assert ternmap("-q", "198.51.100.1", f"cidr:{cidr}").returncode == 1

    bad = tmp_path / "bad.regexp"
    bad.write_text("/ok/ yes\n/(unclosed/ no\n")
    r = ternmap("-q", "ok", f"regexp:{bad}")
    assert r.returncode == 2
    assert f"{bad}:2:" in r.stderr


def test_building_other_types_and_bad_usage_fail(tmp_path):
    src = tmp_path / "t"
    src.write_text("a b\n")
    r = ternmap(f"texthash:{src}")
    assert r.returncode == 1
    assert "lmdb" in r.stderr
    assert ternmap().returncode == 1
    assert "usage" in ternmap("-q", "k").stderr
    assert ternmap("-x", str(src)).returncode == 1
