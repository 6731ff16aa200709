"""
Helpers shared by the tests of the operator tools and local submission
(test_sendmail.py, test_ternqueue.py, test_ternsuper.py): queue and
Maildir inspection, a way to make local delivery defer, and running a
program as another user.
"""
import os
import pathlib
import pwd
import shutil
import smtplib
import subprocess
import tempfile

import pytest

from conftest import Instance, binary

FOLDERS = ("maildrop", "hold", "incoming", "active", "deferred", "corrupt")


def login():
    """The invoking user's login name, as pickup will find it."""
    return pwd.getpwuid(os.getuid()).pw_name


def queue_files(inst, folders=FOLDERS):
    """{"deferred/ID", ...} of the queue files (temporary ones left out)."""
    out = set()
    for folder in folders:
        d = inst.queue_dir / folder
        if d.is_dir():
            out |= {f"{folder}/{n}" for n in os.listdir(d)
                    if not n.startswith(".")}
    return out


def ids_in(inst, folder):
    d = inst.queue_dir / folder
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) \
        if d.is_dir() else []


def maildir_messages(inst, user="demo"):
    new = inst.maildir(user) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def block_maildir(inst, user="demo"):
    """A Maildir path that is a file: local delivery defers (4.x.x)."""
    maildir = inst.maildir(user)
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.parent.mkdir(parents=True, exist_ok=True)
    maildir.write_text("not a folder\n")


def unblock_maildir(inst, user="demo"):
    inst.maildir(user).unlink()


def slow_alias(inst, shared, name="slow"):
    """An alias whose delivery is a command that writes "started" to
    shared/started, waits until the file shared/go exists, then appends
    the message to shared/out: mail for name@ sits in a delivery in
    progress, in active/, for as long as a test wants (at most a minute:
    a test that dies before it says go leaves no endless loop behind). shared must be
    writable by default_privs (nobody) when the tests run as root."""
    inst.write_aliases(
        f'{name} "|echo started >> {shared}/started; '
        f'n=0; while [ ! -e {shared}/go ] && [ $n -lt 600 ]; do '
        f'sleep 0.1; n=$((n+1)); done; '
        f'cat >> {shared}/out"\n')


def shared_folder():
    """A new folder anyone may write (mode 1777), for slow_alias."""
    d = tempfile.mkdtemp(prefix="tern-shared-")
    os.chmod(d, 0o1777)
    return pathlib.Path(d)


def smtp_send(inst, subject, sender="alice@example.test",
              rcpts=("demo@example.test",)):
    msg = (f"From: {sender}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n"
           f"\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
        s.sendmail(sender, list(rcpts), msg.encode())


def wait_deferred(inst, count):
    inst.wait_for(lambda: len(ids_in(inst, "deferred")) == count
                  and not ids_in(inst, "active")
                  and not ids_in(inst, "incoming"),
                  timeout=20, what=f"{count} deferred message(s)")


def defer_config(inst, **extra):
    """Retries far away, so deferred mail stays put during a test."""
    inst.write_main_cf(minimal_backoff_time="300s",
                       maximal_backoff_time="600s",
                       queue_run_delay="300s", **extra)


def run_as(inst, user, program, *args, input=None, timeout=30):
    """Run a Tern program as another user (needs root and setpriv)."""
    setpriv = shutil.which("setpriv")
    if os.getuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv(1) to run as another user")
    pw = pwd.getpwnam(user)
    cmd = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
           "--clear-groups", binary(program), *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True,
                          env=inst.env(), timeout=timeout)


def open_instance(tmp_root):
    """An instance whose folders other users may traverse (for tests that
    run programs as nobody): its own temporary folder, mode 0755."""
    root = tempfile.mkdtemp(prefix="tern-open-", dir=tmp_root)
    os.chmod(root, 0o755)
    inst = Instance(os.path.join(root, "tern"))
    for p in (inst.root, inst.config_dir, inst.queue_dir):
        os.chmod(p, 0o755)
    return inst, root


def request_as(inst, user, path, request, until_close=False, timeout=10):
    """Send one attr.h request ({name: value}) to the Unix socket at path
    as another user (needs root and setpriv), the way a local user could
    without any Tern program. Returns the answer as text: its first
    attribute list, or (until_close) all the peer sent until it closed."""
    setpriv = shutil.which("setpriv")
    if os.getuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv(1) to run as another user")
    pw = pwd.getpwnam(user)
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.settimeout({timeout})\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(sys.argv[2].encode())\n"
        "data = b''\n"
        "while True:\n"
        "    chunk = s.recv(65536)\n"
        "    if not chunk:\n"
        "        break\n"
        "    data += chunk\n"
        "    if sys.argv[3] == 'list' and b'\\n\\n' in data:\n"
        "        break\n"
        "sys.stdout.write(data.decode())\n")
    text = "".join(f"{k}={v}\n" for k, v in request.items()) + "\n"
    cmd = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
           "--clear-groups", "/usr/bin/python3", "-c", code, str(path),
           text, "all" if until_close else "list"]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=inst.env(), timeout=timeout + 5)
    assert r.returncode == 0, r.stderr
    return r.stdout
