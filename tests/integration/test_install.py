"""
`make install DESTDIR=...` from the build folder: programs, the mailq and
newaliases links, man pages, the default configuration, an empty queue
with the modes lib/queue.c and lib/submit.h want, the systemd unit and
the logrotate file; an existing main.cf survives a second install; and
`tern check` on the installed tree.
"""
import os
import re
import stat
import subprocess

import pytest

from conftest import BUILD
from optools import login


def make_install(destdir):
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={destdir}"],
                       cwd=BUILD, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def find(root, suffix):
    """The one installed path ending in suffix."""
    hits = []
    for d, dirs, files in os.walk(root):
        for n in files + dirs:
            p = os.path.join(d, n)
            if p.endswith(suffix):
                hits.append(p)
    assert len(hits) == 1, (suffix, hits)
    return hits[0]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make_install(dest)
    return dest


def test_programs_and_links(installed):
    sbin = os.path.dirname(find(installed, "/sbin/sendmail"))
    for prog in ("sendmail", "ternqueue", "ternsuper", "tern", "ternconf",
                 "ternmap", "terncat"):
        assert os.access(os.path.join(sbin, prog), os.X_OK), prog
    for link in ("mailq", "newaliases"):
        p = os.path.join(sbin, link)
        assert os.path.islink(p) and os.readlink(p) == "sendmail"
    libexec = os.path.dirname(find(installed, "/tern/pickup"))
    for daemon in ("master", "smtpd", "qmgr", "local", "pickup", "showq"):
        assert os.access(os.path.join(libexec, daemon), os.X_OK), daemon


def test_man_pages(installed):
    for page in ("man1/sendmail.1", "man1/ternqueue.1", "man8/ternsuper.8",
                 "man8/pickup.8", "man8/showq.8"):
        text = open(find(installed, page)).read()
        assert text.startswith(".\\\"") or ".TH" in text


def test_configuration_and_queue_tree(installed):
    etc = installed / "etc" / "tern"
    main_cf = (etc / "main.cf").read_text()
    for f in ("master.cf", "aliases"):
        assert (etc / f).is_file()
    assert "pickup     unix  n       -       n       60      1       " \
        "pickup" in (etc / "master.cf").read_text()
    assert "showq      unix  n       -       n       -       -       " \
        "showq" in (etc / "master.cf").read_text()
    paths = dict(re.findall(r"^(\w+_directory) = (\S+)$", main_cf, re.M))
    assert set(paths) == {"queue_directory", "data_directory",
                          "daemon_directory", "command_directory"}
    assert "@" not in main_cf.split("queue_directory")[1].split("\n")[0]
    queue = str(installed) + paths["queue_directory"]
    want = {"incoming": 0o700, "active": 0o700, "deferred": 0o700,
            "hold": 0o700, "corrupt": 0o700, "maildrop": 0o3733,
            "private": 0o700, "public": 0o711}
    assert {d: mode(os.path.join(queue, d)) for d in want} == want
    assert os.listdir(os.path.join(queue, "maildrop")) == []
    assert mode(str(installed) + paths["data_directory"]) == 0o700
    assert os.path.isfile(str(installed) + paths["command_directory"] +
                          "/sendmail")
    unit = open(find(installed, "systemd/system/tern.service")).read()
    assert "Type=forking" in unit
    assert re.search(r"^ExecStart=/\S+/sbin/tern start$", unit, re.M)
    assert re.search(r"^ExecStop=/\S+/sbin/tern stop$", unit, re.M)
    assert re.search(r"^ExecReload=/\S+/sbin/tern reload$", unit, re.M)
    rotate = open(find(installed, "logrotate.d/tern")).read()
    assert "copytruncate" in rotate


def test_second_install_keeps_the_administrators_main_cf(tmp_path):
    make_install(tmp_path)
    main_cf = tmp_path / "etc" / "tern" / "main.cf"
    main_cf.write_text(main_cf.read_text() + "myhostname = kept.example\n")
    r = make_install(tmp_path)
    assert "keeping the existing" in r.stdout
    assert "myhostname = kept.example" in main_cf.read_text()


def tern_check(installed):
    """`tern check` on the installed tree, pointed at it: paths moved
    under DESTDIR, mail_owner the invoking user."""
    etc = installed / "etc" / "tern"
    text = (etc / "main.cf").read_text()
    for name in ("queue_directory", "data_directory", "daemon_directory",
                 "command_directory"):
        text = re.sub(rf"^{name} = (\S+)$",
                      lambda m: f"{name} = {installed}{m.group(1)}",
                      text, flags=re.M)
    text = text.replace("mail_owner = tern", f"mail_owner = {login()}")
    (etc / "main.cf").write_text(text)
    tern = find(installed, "/sbin/tern")
    return subprocess.run([tern, "-c", str(etc), "check"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TERN_CONFIG_DIR=str(etc)))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    dest = tmp_path_factory.mktemp("checked")
    make_install(dest)
    return dest, tern_check(dest)


def test_tern_check_accepts_the_installed_tree(checked):
    dest, r = checked
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower()


def test_tern_check_leaves_the_maildrop_mode_alone(checked):
    dest, r = checked
    maildrop = find(dest, "/spool/tern/maildrop")
    assert mode(maildrop) == 0o3733, r.stdout + r.stderr
    assert "maildrop" not in r.stdout + r.stderr


def test_tern_check_agrees_with_public_0711_and_puts_an_old_one_right(
        checked):
    """public/ is 0711 (every user's mailq reaches showq there): the
    installed mode is what `tern check` wants, and a 0710 public/ from an
    older installation is opened up by it."""
    dest, r = checked
    public = find(dest, "/spool/tern/public")
    assert mode(public) == 0o711, r.stdout + r.stderr
    assert "public" not in r.stdout + r.stderr
    os.chmod(public, 0o710)
    etc = dest / "etc" / "tern"      # main.cf already points into dest
    r = subprocess.run([find(dest, "/sbin/tern"), "-c", str(etc), "check"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TERN_CONFIG_DIR=str(etc)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{public}: mode changed from 0710 to 0711" in r.stdout + r.stderr
    assert mode(public) == 0o711
