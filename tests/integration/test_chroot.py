"""
A daemon chrooted by master.cf (the "chroot" column) still works: inside
the jail the queue is "/", and smtpd queues mail there that qmgr and local
deliver. Needs root to chroot; skipped otherwise.
"""
import os
import smtplib

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="chroot needs root")


def test_chrooted_smtpd_queues_mail_that_gets_delivered(instance):
    instance.write_master_cf(
        f"127.0.0.1:{instance.smtp_port} inet n - y - - smtpd\n"
        "qmgr      unix  n - n 300 1 qmgr\n"
        "local     unix  - n n - - local\n")
    # The passwd file lies outside the jail; recipient checks are the
    # local agent's business in this test.
    instance.write_main_cf(local_recipient_maps="")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: from the jail\r\n\r\nbody\r\n")
    new = instance.maildir("demo") / "new"
    instance.wait_for(lambda: new.is_dir() and len(os.listdir(new)) == 1,
                      what="delivery of mail a chrooted smtpd queued")
    bad = [l for l in instance.log().splitlines()
           if ("warning:" in l or "fatal:" in l) and "chroot" in l]
    assert bad == []


def test_unix_sockets_are_created_world_connectable_without_chmod(instance):
    instance.start()
    sock = instance.queue_dir / "public" / "qmgr"
    if not sock.exists():
        sock = instance.queue_dir / "private" / "qmgr"
    assert sock.is_socket()
    assert sock.stat().st_mode & 0o777 == 0o666
