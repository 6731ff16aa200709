"""
ternconf as an administrator uses it: what -n, -d, -x, -h and -M print,
that -e edits main.cf without losing comments or order, that a broken
main.cf is a clear error and never a hang, and that main.cf(5) lists
every parameter the program knows.
"""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, TOP, binary

DATA = TOP / "tests" / "data"
SAMPLE = DATA / "main.cf-sample"
MASTER_SAMPLE = DATA / "master.cf-sample"


def ternconf(*args, env=None, timeout=10):
    return subprocess.run([binary("ternconf"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def main_cf_settings(text):
    """What a main.cf sets, read by the rules main.cf(5) gives."""
    settings, name = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            settings[name] += " " + stripped
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        settings[name] = value.strip()
    return settings


def show(name, value):
    return f"{name} = {value}" if value else f"{name} ="


@pytest.fixture
def confdir(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    shutil.copy(SAMPLE, d / "main.cf")
    shutil.copy(MASTER_SAMPLE, d / "master.cf")
    return d


def test_n_prints_exactly_what_main_cf_sets(confdir):
    r = ternconf("-c", str(confdir), "-n")
    assert r.returncode == 0, r.stderr
    settings = main_cf_settings(SAMPLE.read_text())
    expected = [show(k, v) for k, v in sorted(settings.items())]
    assert r.stdout.splitlines() == expected
    # Continued values are joined; the user's own macros are listed too.
    assert ("mynetworks = 127.0.0.0/8 [::1]/128 192.0.2.0/24"
            in r.stdout.splitlines())
    assert "office_name = Example Net" in r.stdout.splitlines()
    # Macros that other values use are not warned about.
    assert "unknown parameter" not in r.stderr


def test_unreferenced_unknown_parameter_is_a_warning_with_line(confdir):
    with open(confdir / "main.cf", "a") as f:
        f.write("smtpd_recipent_limit = 10\n")
    r = ternconf("-c", str(confdir), "-n")
    assert r.returncode == 0
    nlines = len((confdir / "main.cf").read_text().splitlines())
    assert re.search(r"warning: .*main\.cf, line %d: unknown parameter "
                     r"smtpd_recipent_limit" % nlines, r.stderr), r.stderr
    assert "smtpd_recipent_limit = 10" in r.stdout.splitlines()


def test_x_expands_and_h_prints_values_alone(confdir):
    r = ternconf("-c", str(confdir), "-x", "smtpd_banner", "myorigin",
                 "smtpd_relay_restrictions")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "smtpd_banner = mx1.example.net ESMTP Tern (Example Net)",
        "myorigin = example.net",
        "smtpd_relay_restrictions = permit_mynetworks, "
        "permit_sasl_authenticated, reject_unauth_destination",
    ]
    r = ternconf("-c", str(confdir), "-xh", "mydestination")
    assert r.stdout == ("mx1.example.net, localhost.example.net, "
                        "localhost, example.net, mail.example.net\n")
    r = ternconf("-c", str(confdir), "smtpd_banner")
    assert r.stdout == ("smtpd_banner = $myhostname ESMTP $mail_name "
                        "(${office_name})\n")


def test_no_arguments_lists_every_parameter_sorted(confdir):
    r = ternconf("-c", str(confdir))
    assert r.returncode == 0, r.stderr
    names = [line.split(" =")[0] for line in r.stdout.splitlines()]
    assert names == sorted(names)
    assert len(names) > 100
    assert "message_size_limit = 52428800" in r.stdout.splitlines()
    assert "mail_name = Tern" in r.stdout.splitlines()


def test_d_prints_defaults_without_reading_main_cf(tmp_path, confdir):
    r = ternconf("-c", str(confdir), "-d")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "message_size_limit = 10240000" in lines
    assert "myorigin = $myhostname" in lines
    assert "smtpd_timeout = 300s" in lines
    assert "mydestination = $myhostname, localhost.$mydomain, localhost" \
        in lines
    assert "relayhost =" in lines
    # Same parameters as the full listing, other values.
    full = ternconf("-c", str(confdir)).stdout.splitlines()
    assert [x.split(" =")[0] for x in lines] == \
        [x.split(" =")[0] for x in full]
    # No main.cf at all is fine for -d.
    r = ternconf("-c", str(tmp_path / "nowhere"), "-d", "mail_name")
    assert (r.returncode, r.stdout) == (0, "mail_name = Tern\n")
    r = ternconf("-c", str(tmp_path / "nowhere"), "-dx", "smtpd_banner")
    assert r.returncode == 0
    assert re.fullmatch(r"smtpd_banner = \S+\.\S+ ESMTP Tern\n", r.stdout)


def test_unknown_name_warns_and_exits_1(confdir):
    r = ternconf("-c", str(confdir), "mail_name", "no_such_thing",
                 "relayhost")
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["mail_name = Tern", "relayhost ="]
    assert "warning: no_such_thing: unknown parameter" in r.stderr


def test_loop_is_a_quick_clear_error(tmp_path):
    (tmp_path / "main.cf").write_text("# loop\na = $b\nb = $a\n")
    r = ternconf("-c", str(tmp_path), "-n", timeout=5)
    assert r.returncode != 0
    assert r.stdout == ""
    assert "fatal: " in r.stderr
    assert "main.cf, line 3" in r.stderr
    assert "a -> b -> a" in r.stderr
    (tmp_path / "main.cf").write_text("myorigin = $myorigin\n")
    r = ternconf("-c", str(tmp_path), timeout=5)
    assert r.returncode != 0
    assert "myorigin -> myorigin" in r.stderr


def test_bad_value_names_file_line_and_type(tmp_path):
    (tmp_path / "main.cf").write_text(
        "myhostname = mx.example\n\nsmtpd_timeout = soon\n")
    r = ternconf("-c", str(tmp_path), "-n")
    assert r.returncode == 1
    assert (f"fatal: {tmp_path}/main.cf, line 3: bad value for "
            "smtpd_timeout: expected time") in r.stderr
    assert r.stdout == ""


def test_config_dir_from_environment(confdir):
    env = dict(os.environ, TERN_CONFIG_DIR=str(confdir))
    r = ternconf("-h", "myhostname", env=env)
    assert (r.returncode, r.stdout) == (0, "mx1.example.net\n")


def test_o_overrides_for_one_run(confdir):
    r = ternconf("-c", str(confdir), "-o", "myhostname=other.example", "-x",
                 "smtpd_banner")
    assert r.stdout == "smtpd_banner = other.example ESMTP Tern " \
        "(Example Net)\n"
    r = ternconf("-c", str(confdir), "-o", "smtpd_timeout=never")
    assert r.returncode == 1
    assert "bad value for smtpd_timeout" in r.stderr


def test_e_edits_in_place_keeping_comments_and_order(confdir):
    before = (confdir / "main.cf").read_text().splitlines()
    r = ternconf("-c", str(confdir), "-e", "smtpd_timeout=5m",
                 "mydestination = $myhostname, localhost",
                 "site_motto=hello", "message_size_limit=1000")
    assert r.returncode == 0, r.stderr
    after = (confdir / "main.cf").read_text().splitlines()
    # Every comment and blank line is still there, in the same order.
    keep = [x for x in before if not x.strip() or x.lstrip().startswith("#")]
    assert [x for x in after
            if not x.strip() or x.lstrip().startswith("#")] == keep
    # Replaced where they stood; the continuation lines went with them
    # (two lines of mydestination, so what follows moves up by two).
    assert after[before.index("smtpd_timeout = 2m") - 2] == \
        "smtpd_timeout = 5m"
    i = before.index("mydestination = $myhostname, localhost.$mydomain, "
                     "localhost,")
    assert after[i] == "mydestination = $myhostname, localhost"
    assert "    $mydomain," not in after
    assert "    mail.$mydomain" not in after
    assert after[i + 1] == before[i + 2]   # the comment inside the value
    assert after[-1] == "site_motto = hello"
    assert len(after) == len(before) - 2 + 1
    # Other settings are untouched.
    j = before.index("mynetworks = 127.0.0.0/8 [::1]/128")
    assert after[j - 2:j] == before[j:j + 2]
    # No temporary file is left behind.
    assert sorted(p.name for p in confdir.iterdir()) == \
        ["main.cf", "master.cf"]
    r = ternconf("-c", str(confdir), "-n")
    lines = r.stdout.splitlines()
    assert "smtpd_timeout = 5m" in lines
    assert "message_size_limit = 1000" in lines
    assert "mydestination = $myhostname, localhost" in lines
    assert "site_motto = hello" in lines


def test_e_with_a_bad_value_leaves_main_cf_alone(confdir):
    before = (confdir / "main.cf").read_bytes()
    r = ternconf("-c", str(confdir), "-e", "smtpd_timeout=5m",
                 "message_size_limit=huge")
    assert r.returncode == 1
    assert "bad value for message_size_limit" in r.stderr
    assert (confdir / "main.cf").read_bytes() == before
    assert sorted(p.name for p in confdir.iterdir()) == \
        ["main.cf", "master.cf"]


def test_e_can_repair_a_broken_main_cf(tmp_path):
    (tmp_path / "main.cf").write_text("# keep me\nsmtpd_timeout = soon\n")
    r = ternconf("-c", str(tmp_path), "-e", "smtpd_timeout=30s")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "main.cf").read_text() == \
        "# keep me\nsmtpd_timeout = 30s\n"


def test_M_prints_services_in_columns(confdir):
    r = ternconf("-c", str(confdir), "-M")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "smtp       inet  n       y       y       -       -       smtpd",
        "submission inet  n       y       y       -       -       smtpd "
        "-o syslog_name=tern/submission -o smtpd_tls_security_level=encrypt "
        "-o smtpd_sasl_auth_enable=yes",
        "qmgr       unix  n       y       n       300     1       qmgr",
        "local      unix  y       n       n       -       -       local",
        "smtp       unix  y       y       n       -       -       smtp",
        "relay      unix  y       y       n       -       -       smtp "
        "-o syslog_name=tern/relay -v",
    ]
    r = ternconf("-c", str(confdir), "-M", "smtp/unix", "qmgr")
    assert [x.split()[0:2] for x in r.stdout.splitlines()] == \
        [["qmgr", "unix"], ["smtp", "unix"]]


def test_M_reports_master_cf_errors(confdir):
    with open(confdir / "master.cf", "a") as f:
        f.write("broken unix - - n - smtp\n")
    n = len((confdir / "master.cf").read_text().splitlines())
    r = ternconf("-c", str(confdir), "-M")
    assert r.returncode == 1
    assert r.stdout == ""
    assert (f"fatal: {confdir}/master.cf, line {n}: service broken has 7 "
            "columns") in r.stderr


def test_man_page_lists_every_parameter():
    page = BUILD / "man" / "main.cf.5"
    assert page.exists(), f"{page} is not built"
    text = page.read_text()
    names = [x.split(" =")[0] for x in ternconf("-d").stdout.splitlines()]
    assert len(names) > 100
    missing = [n for n in names if f"\n.B {n}\n" not in text]
    assert missing == []
    # The generated part is exactly what the program prints now.
    assert ternconf("--man").stdout in text
    assert "@PARAMETERS@" not in text
    assert text.startswith(".\\\"")
    assert "\n.SH SEE ALSO\n" in text
