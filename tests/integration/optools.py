"""
Helpers shared by the tests of the operator tools and local submission
(test_sendmail.py, test_ternqueue.py, test_ternsuper.py): queue and
Maildir inspection, a way to make local delivery defer, and running a
program as another user.
"""
import os
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
