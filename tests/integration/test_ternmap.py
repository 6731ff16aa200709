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


# ---- -s on every type, -d, -i, -q - --------------------------------------

def test_dump_lists_texthash_and_inline_and_refuses_pattern_tables(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    r = ternmap("-s", f"texthash:{src}")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ("@example.net catchall\n"
                        "info@example.org alice\n"
                        "sales@example.org bob, carol\n")
    r = ternmap("-s", "inline:{ B=2, a=1, { c = three, four } }")
    assert (r.returncode, r.stdout) == (0, "b 2\na 1\nc three, four\n")

    rx = tmp_path / "checks"
    rx.write_text("/^x/ REJECT\n")
    for spec in (f"regexp:{rx}", f"cidr:{rx}", "static:OK",
                 "unix:passwd.byname"):
        r = ternmap("-s", spec)
        assert r.returncode == 1, spec
        assert r.stdout == ""
        assert "cannot be listed" in r.stderr, (spec, r.stderr)
    # A texthash file with a bad line is an error, never an empty list.
    bad = tmp_path / "bad"
    bad.write_text("good value\nlonely\n")
    r = ternmap("-s", f"texthash:{bad}")
    assert (r.returncode, r.stdout) == (1, "")
    assert f"{bad}:2:" in r.stderr


def test_delete_removes_a_key_from_the_database_only(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    db = tmp_path / "virtual.lmdb"
    inode = db.stat().st_ino

    r = ternmap("-d", "INFO@example.org", str(src))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert db.stat().st_ino != inode        # replaced, not edited in place
    assert ternmap("-q", "info@example.org", str(src)).returncode == 1
    assert ternmap("-q", "sales@example.org", str(src)).stdout == \
        "bob, carol\n"
    # The text file is not touched: a rebuild brings the key back.
    assert src.read_text() == VIRTUAL
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["virtual", "virtual.lmdb"]

    # A key that is not there: exit 1, and the file is left alone.
    inode = db.stat().st_ino
    r = ternmap("-d", "info@example.org", f"lmdb:{src}")
    assert r.returncode == 1
    assert db.stat().st_ino == inode

    # Several keys from stdin in one replacement.
    r = subprocess.run([binary("ternmap"), "-d", "-", str(src)],
                       input="@example.net\nnobody\nsales@example.org\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert ternmap("-s", str(src)).stdout == ""

    assert ternmap(str(src)).returncode == 0
    assert ternmap("-q", "info@example.org", str(src)).stdout == "alice\n"


def test_delete_from_a_missing_or_broken_table_is_exit_2(tmp_path):
    r = ternmap("-d", "key", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert "missing.lmdb" in r.stderr
    assert not (tmp_path / "missing.lmdb").exists()

    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    db = tmp_path / "virtual.lmdb"
    os.truncate(db, db.stat().st_size - 4096)
    size = db.stat().st_size
    r = ternmap("-d", "info@example.org", str(src))
    assert r.returncode == 2
    assert "truncated" in r.stderr
    assert db.stat().st_size == size
    r = ternmap("-d", "k", f"texthash:{src}")
    assert r.returncode == 1 and "lmdb tables only" in r.stderr


def add(*args, text):
    return subprocess.run([binary("ternmap"), *args], input=text,
                          capture_output=True, text=True, timeout=30)


def test_add_from_stdin_replaces_values_and_keeps_the_rest(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    r = add("-i", str(src), text="new@example.org   dave\n"
                                 "INFO@example.org  erin,\n"
                                 "   frank\n")
    assert (r.returncode, r.stderr) == (0, "")
    assert ternmap("-s", str(src)).stdout == (
        "@example.net catchall\n"
        "info@example.org erin, frank\n"
        "new@example.org dave\n"
        "sales@example.org bob, carol\n")
    assert src.read_text() == VIRTUAL

    # A bad line changes nothing at all.
    r = add("-i", str(src), text="ok@example.org ok\nlonely\n")
    assert r.returncode == 1
    assert "stdin:2:" in r.stderr
    assert ternmap("-q", "ok@example.org", str(src)).returncode == 1

    # -A reads aliases syntax; -i starts a table that is not there yet.
    aliases = tmp_path / "aliases"
    r = add("-A", "-i", str(aliases), text="postmaster: root\n"
                                          "\"odd name\": |/bin/true\n")
    assert r.returncode == 0, r.stderr
    assert ternmap("-s", str(aliases)).stdout == \
        "odd name |/bin/true\npostmaster root\n"
    assert not aliases.exists()             # only the .lmdb is written


def test_query_from_stdin_answers_each_line(tmp_path):
    src = tmp_path / "virtual"
    src.write_text(VIRTUAL)
    assert ternmap(str(src)).returncode == 0
    r = add("-q", "-", str(src),
            text="info@example.org\nnobody@example.org\nSALES@example.org\n")
    assert r.returncode == 0
    assert r.stdout == ("info@example.org alice\n"
                        "SALES@example.org bob, carol\n")
    r = add("-q", "-", str(src), text="nobody\n")
    assert (r.returncode, r.stdout) == (1, "")
    r = add("-q", "-", f"lmdb:{tmp_path / 'missing'}", text="a\nb\n")
    assert r.returncode == 2
    assert r.stderr.count("missing.lmdb") == 2


def test_options_that_exclude_each_other_are_usage_errors(tmp_path):
    src = tmp_path / "t"
    src.write_text("a b\n")
    for args in (("-s", "-q", "a"), ("-d", "a", "-i"), ("-i", "-s"),
                 ("-d", "a", str(src), str(src)), ("-i",)):
        r = ternmap(*args, str(src)) if args != ("-i",) else ternmap(*args)
        assert r.returncode == 1, args
        assert "usage" in r.stderr, args


# ---- a rebuild never shows a reader half a table --------------------------

STABLE = [f"stable{i}@example.org" for i in range(40)]


def table_version(n):
    """Text of version n: the stable keys (values change) plus keys that
    exist in only some versions, and enough bulk that a build takes a
    moment and the file changes size."""
    lines = [f"{k} v{n}-{i}" for i, k in enumerate(STABLE)]
    lines += [f"only{n % 3}-{i}@example.org x" for i in range(2000 * (1 + n % 3))]
    return "\n".join(lines) + "\n"


def test_rebuilding_50_times_never_fails_a_lookup_of_a_kept_key(tmp_path):
    """A long-lived reader (ternmap -q -, which holds the table open the
    way a daemon does and reopens it when the file changes) looks up the
    keys present in every version in a loop while the table is rebuilt
    50 times, alternately with a full build and with -i/-d. Not one
    lookup may come back not-found or an error."""
    import threading
    src = tmp_path / "virtual"
    src.write_text(table_version(0))
    assert ternmap(str(src)).returncode == 0

    reader = subprocess.Popen(
        [binary("ternmap"), "-q", "-", f"lmdb:{src}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1)
    stop = threading.Event()
    failures, rounds, versions = [], [0], set()
    sentinel = STABLE[-1]

    def read_loop():
        try:
            while not stop.is_set():
                reader.stdin.write("\n".join(STABLE) + "\n")
                reader.stdin.flush()
                seen = set()
                while True:
                    line = reader.stdout.readline()
                    if not line:
                        failures.append("reader exited")
                        return
                    key, _, value = line.rstrip("\n").partition(" ")
                    seen.add(key)
                    if key == STABLE[0]:
                        versions.add(value)
                    if key == sentinel:
                        break
                missing = set(STABLE) - seen
                if missing:
                    failures.append(f"round {rounds[0]}: not found "
                                    f"{sorted(missing)[:3]}")
                rounds[0] += 1
        except Exception as e:              # pragma: no cover
            failures.append(repr(e))

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        for n in range(1, 51):
            if n % 2:
                src.write_text(table_version(n))
                r = ternmap(str(src))
            else:
                r = add("-i", str(src), text=f"extra{n}@example.org y\n"
                        + "".join(f"{k} i{n}\n" for k in STABLE[:5]))
                if r.returncode == 0:
                    r = ternmap("-d", f"extra{n}@example.org", str(src))
            assert r.returncode == 0, (n, r.stderr)
    finally:
        stop.set()
        t.join(timeout=30)
        if t.is_alive():
            # Stuck waiting for an answer that never came (a failed
            # lookup prints nothing): end the reader to free the thread.
            reader.kill()
            t.join(timeout=10)
            failures.append("reader stopped answering")
        reader.stdin.close()
        try:
            reader.wait(timeout=10)
        except subprocess.TimeoutExpired:
            reader.kill()
            reader.wait(timeout=10)
    err = reader.stderr.read()
    assert failures == [], err
    assert err == ""
    assert reader.returncode == 0
    # The reader really ran through the rebuilds, many times over, and
    # saw the table change under it (values differ between versions).
    assert rounds[0] >= 50
    assert len(versions) >= 10, versions
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_smtpd_answering_rcpt_in_a_loop_never_fails_during_rebuilds(
        instance):
    """The issue's own check: smtpd holds virtual_mailbox_maps open as
    an lmdb table and answers RCPT for addresses present in every
    version while ternmap rebuilds the table 50 times. Every answer is
    250: no 550 (a key seemingly gone) and no 4xx (a table error)."""
    import smtplib
    import threading
    src = instance.root / "vmailbox"
    src.write_text(table_version(0).replace("@example.org", "@virt.test"))
    assert ternmap(str(src)).returncode == 0
    instance.write_main_cf(virtual_mailbox_domains="virt.test",
                           virtual_mailbox_maps=f"lmdb:{src}")
    instance.start()
    rcpts = [k.replace("@example.org", "@virt.test") for k in STABLE]
    stop = threading.Event()
    answers, failures = [], []

    def rcpt_loop():
        # Fresh sessions now and then: smtpd counts RSETs past
        # smtpd_junk_command_limit as errors, as Postfix does.
        try:
            while not stop.is_set():
                with smtplib.SMTP("127.0.0.1", instance.smtp_port,
                                  timeout=10) as s:
                    s.ehlo("client.example")
                    for _ in range(50):
                        if stop.is_set():
                            break
                        code, msg = s.mail("sender@example.org")
                        assert code == 250, (code, msg)
                        for r in rcpts:
                            code, msg = s.rcpt(r)
                            answers.append(code)
                            if code != 250:
                                failures.append((r, code, msg))
                        s.rset()
        except Exception as e:
            failures.append(repr(e))

    t = threading.Thread(target=rcpt_loop)
    t.start()
    try:
        for n in range(1, 51):
            src.write_text(table_version(n).replace("@example.org",
                                                    "@virt.test"))
            r = ternmap(str(src))
            assert r.returncode == 0, (n, r.stderr)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive()
    assert failures == [], failures[:5]
    assert len(answers) >= 200
    # And the last version is what smtpd now answers from.
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        assert s.rcpt("only2-0@virt.test")[0] == 250   # only in version 50
        assert s.rcpt("only0-0@virt.test")[0] == 550   # not in version 50


def test_lookups_read_main_cf_so_unix_passwd_sees_local_passwd_file(
        instance):
    """unix:passwd.byname answers from local_passwd_file, as the daemons
    see it, whether main.cf is found through TERN_CONFIG_DIR or -c."""
    r = instance.run("ternmap", "-q", "demo", "unix:passwd.byname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"demo:x:{os.getuid()}:")
    r = ternmap("-c", str(instance.config_dir), "-q", "alice",
                "unix:passwd.byname")
    assert r.returncode == 0, r.stderr
    assert f":{instance.home / 'alice'}:" in r.stdout
    r = instance.run("ternmap", "-q", "nosuchuser", "unix:passwd.byname")
    assert r.returncode == 1
    # A configuration asked for and not there is an error, not defaults.
    r = ternmap("-c", str(instance.root / "nowhere"), "-q", "demo",
                "unix:passwd.byname")
    assert r.returncode == 1
    assert "main.cf" in r.stderr
