"""
Local submission: sendmail (and its -bs, -bi, mailq and newaliases
faces) feeding maildrop/, pickup moving the file into the queue, local
delivery to a Maildir. Driven with subprocess, as cron, a web
application or a mail reader would run /usr/sbin/sendmail; the sender
identity is checked in the Return-Path local delivery writes.
"""
import email
import email.policy
import os
import pwd
import re
import shutil
import stat
import subprocess

import pytest

from conftest import binary
from optools import (ids_in, login, maildir_messages, open_instance, run_as,
                     queue_files)

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = \
    64, 65, 69, 75, 78


def sendmail(inst, *args, input="", name=None, timeout=30):
    """Run sendmail (or a link to it called name) on this instance."""
    prog = binary("sendmail")
    if name is not None:
        link = inst.root / name
        if not link.exists():
            link.symlink_to(prog)
        prog = str(link)
    binary_io = isinstance(input, bytes)
    r = subprocess.run([prog, *args], input=input, capture_output=True,
                       text=not binary_io, env=inst.env(), timeout=timeout)
    if binary_io:
        # SMTP replies end in CRLF: keep them, as bytes decoded by hand.
        r.stdout = r.stdout.decode()
        r.stderr = r.stderr.decode()
    return r


def delivered(inst, user="demo", count=1):
    inst.wait_for(lambda: len(maildir_messages(inst, user)) >= count,
                  timeout=20, what=f"delivery to {user}")
    return maildir_messages(inst, user)


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_sendmail_t_i_delivers_with_the_invoking_user_as_sender(instance):
    instance.start()
    body = "first line\n.\nafter a lone dot (kept with -i)\n"
    r = sendmail(instance, "-t", "-i",
                 input=f"To: Demo <demo@example.test>\n"
                       f"Subject: via sendmail\n\n{body}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    raw = delivered(instance)[0]
    me = login()
    assert raw.startswith(f"Return-Path: <{me}@mx.example.test>\n".encode())
    msg = parsed(raw)
    # pickup added what a local submission lacks, as Postfix's cleanup.
    assert msg["From"].addresses[0].addr_spec == f"{me}@mx.example.test"
    assert msg["Date"] is not None
    assert re.fullmatch(r"<\d{14}\.[0-9A-F]+@mx\.example\.test>",
                        msg["Message-ID"])
    received = msg.get_all("Received")
    assert any(f"by mx.example.test (Tern, from userid {os.getuid()})"
               in " ".join(r.split()) for r in received), received
    assert raw.split(b"\n\n", 1)[1] == body.encode()
    log = instance.log()
    assert re.search(rf"tern/pickup\[\d+\]: [0-9A-F]+: uid={os.getuid()} "
                     rf"from=<{me}@mx\.example\.test>", log), log
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")


def test_forged_sender_is_replaced_when_forging_is_not_allowed(instance):
    instance.write_main_cf(local_sender_forge_users="")
    instance.start()
    r = sendmail(instance, "-f", "ceo@bank.example", "-t", "-i",
                 input="To: demo@example.test\nFrom: ceo@bank.example\n"
                       "Subject: forged\n\nbody\n")
    assert r.returncode == 0, r.stderr
    raw = delivered(instance)[0]
    me = login()
    assert raw.startswith(f"Return-Path: <{me}@mx.example.test>\n".encode())
    # The header is the user's to write; the envelope is not.
    assert parsed(raw)["From"] == "ceo@bank.example"
    log = instance.log()
    assert re.search(r"sender <ceo@bank\.example> given by uid=\d+ "
                     r"replaced \(local_sender_forge_users\)", log), log
    assert "from=<ceo@bank.example>" not in log


def test_forging_allowed_user_keeps_the_sender_given_with_f(instance):
    instance.write_main_cf(local_sender_forge_users=f"bob, {login()}")
    instance.start()
    r = sendmail(instance, "-f", "<list-bounces@lists.example>",
                 "-F", "Mailing List", "demo@example.test",
                 input="Subject: list mail\n\nbody\n")
    assert r.returncode == 0, r.stderr
    raw = delivered(instance)[0]
    assert raw.startswith(b"Return-Path: <list-bounces@lists.example>\n")
    assert parsed(raw)["From"] == "Mailing List <list-bounces@lists.example>"


def test_accepted_while_the_daemons_are_down_and_delivered_after_start(
        instance):
    instance.start()    # creates the queue folders
    instance.stop()
    r = sendmail(instance, "-i", "demo@example.test",
                 input="Subject: while down\n\nwaited in maildrop\n")
    assert r.returncode == 0, r.stderr
    waiting = ids_in(instance, "maildrop")
    assert len(waiting) == 1
    path = instance.queue_dir / "maildrop" / waiting[0]
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640      # the group reads it
    assert st.st_uid == os.getuid()
    folder = stat.S_IMODE((instance.queue_dir / "maildrop").stat().st_mode)
    assert folder == 0o3733
    assert maildir_messages(instance) == []
    instance.start()
    raw = delivered(instance)[0]
    assert raw.endswith(b"\n\nwaited in maildrop\n")
    instance.wait_for(lambda: ids_in(instance, "maildrop") == [],
                      what="maildrop/ to empty")


def test_bs_speaks_smtp_on_stdin_and_stdout(instance):
    instance.start()
    script = ("EHLO client.example\r\n"
              "MAIL FROM:<alice@example.test>\r\n"
              "RCPT TO:<demo@example.test>\r\n"
              "DATA\r\n"
              "Subject: over -bs\r\n\r\n"
              "..a stuffed dot line\r\n.\r\n"
              "QUIT\r\n")
    r = sendmail(instance, "-bs", input=script.encode())
    assert r.returncode == 0, r.stderr
    replies = r.stdout.split("\r\n")
    assert replies[0] == "220 mx.example.test ESMTP Tern"
    assert "250-mx.example.test" in replies
    codes = [line[:4] for line in replies if line and line[3] == " "]
    assert codes == ["220 ", "250 ", "250 ", "250 ", "354 ", "250 ",
                     "221 "], r.stdout
    assert re.search(r"250 2\.0\.0 Ok: queued as [0-9A-F]+\r\n", r.stdout)
    raw = delivered(instance)[0]
    assert raw.endswith(b"\n\n.a stuffed dot line\n")
    # The SMTP sender is a -f: root and mail_owner may keep it.
    assert raw.startswith(b"Return-Path: <alice@example.test>\n")


def test_bs_refuses_out_of_order_commands(instance):
    r = sendmail(instance, "-bs",
                 input=b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                       b"MAIL FROM:<a@b.example> SIZE=999999999999\r\n"
                       b"FROB\r\nQUIT\r\n")
    lines = r.stdout.split("\r\n")
    assert lines[1].startswith("503 5.5.1")
    assert lines[2].startswith("503 5.5.1")
    assert lines[3].startswith("552 5.3.4")
    assert lines[4].startswith("502 5.5.2")
    assert lines[5] == "221 2.0.0 Bye"


def test_lone_dot_ends_the_message_without_i(instance):
    instance.start()
    r = sendmail(instance, "demo@example.test",
                 input="Subject: dot\n\nkept\n.\nnot part of it\n")
    assert r.returncode == 0, r.stderr
    assert delivered(instance)[0].endswith(b"\n\nkept\n")


def test_crlf_becomes_lf_and_long_lines_survive(instance):
    instance.start()
    long_line = "x" * 200000
    r = sendmail(instance, "-i", "demo@example.test",
                 input=f"Subject: long\r\n\r\n{long_line}\r\nend\r\n")
    assert r.returncode == 0, r.stderr
    raw = delivered(instance)[0]
    assert b"\r" not in raw
    assert raw.endswith(f"\n\n{long_line}\nend\n".encode())


def test_t_takes_to_cc_bcc_and_removes_bcc(instance):
    instance.start()
    r = sendmail(instance, "-t", "-i",
                 input="To: Demo <demo@example.test>\n"
                       "Cc: alice@example.test (Alice)\n"
                       "Bcc: bob@example.test,\n  undisclosed:;\n"
                       "Subject: three\n\nhello\n")
    assert r.returncode == 0, r.stderr
    for user in ("demo", "alice", "bob"):
        raw = delivered(instance, user)[0]
        assert b"Bcc:" not in raw and b"undisclosed" not in raw, user
        assert b"Cc: alice@example.test (Alice)\n" in raw


def test_bare_recipient_and_header_less_message_get_qualified(instance):
    instance.start()
    r = sendmail(instance, "-i", "bob", input="no header at all\n")
    assert r.returncode == 0, r.stderr
    raw = delivered(instance, "bob")[0]
    assert b"Delivered-To: bob@mx.example.test\n" in raw
    # The body starts after the headers pickup added and a blank line.
    assert raw.endswith(b"\n\nno header at all\n")


def test_exit_codes_follow_sysexits(instance):
    r = sendmail(instance, input="Subject: x\n\n")
    assert r.returncode == EX_USAGE
    assert "Recipient addresses must be specified" in r.stderr
    r = sendmail(instance, "-t", input="Subject: no rcpt\n\n")
    assert r.returncode == EX_USAGE
    assert "No recipient addresses found in message header" in r.stderr
    r = sendmail(instance, "-Y", "demo@example.test")
    assert r.returncode == EX_USAGE
    r = sendmail(instance, "-N", "sometimes", "demo@example.test")
    assert r.returncode == EX_USAGE
    # The queue folders do not exist yet: maildrop/ cannot be written.
    r = sendmail(instance, "demo@example.test", input="Subject: x\n\n")
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert r.stderr.startswith("sendmail: fatal: cannot queue the message")
    # Daemons down: no flush.
    r = sendmail(instance, "-q")
    assert r.returncode == EX_UNAVAILABLE
    assert "mail system is down" in r.stderr
    env = dict(instance.env(), TERN_CONFIG_DIR=str(instance.root / "none"))
    r = subprocess.run([binary("sendmail"), "demo@example.test"], input="",
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == EX_CONFIG


def test_message_over_the_size_limit_is_refused(instance):
    instance.write_main_cf(message_size_limit="2000")
    instance.start()
    r = sendmail(instance, "-i", "demo@example.test",
                 input="Subject: big\n\n" + ("y" * 99 + "\n") * 30)
    assert r.returncode == EX_DATAERR
    assert "message_size_limit" in r.stderr
    r = sendmail(instance, "-i", "demo@example.test",
                 input="Subject: one long line\n\n" + "z" * 5000)
    assert r.returncode == EX_DATAERR
    assert ids_in(instance, "maildrop") == []
    assert not any(n for n in os.listdir(instance.queue_dir / "maildrop"))


def test_q_flushes_deferred_mail(instance):
    from optools import block_maildir, defer_config, unblock_maildir
    block_maildir(instance)
    defer_config(instance)
    instance.start()
    r = sendmail(instance, "-i", "demo@example.test",
                 input="Subject: flush me\n\nbody\n")
    assert r.returncode == 0
    instance.wait_for(lambda: len(ids_in(instance, "deferred")) == 1,
                      timeout=20, what="deferral")
    unblock_maildir(instance)
    r = sendmail(instance, "-q")
    assert r.returncode == 0, r.stderr
    assert b"Subject: flush me" in delivered(instance)[0]


def test_newaliases_and_bi_build_the_alias_database(instance):
    text = instance.config_dir / "aliases.txt"
    text.write_text("# aliases(5)\npostmaster: demo\n"
                    "team: alice,\n  bob\n")
    instance.write_main_cf(alias_database=f"lmdb:{text}",
                           alias_maps=f"lmdb:{text}")
    r = sendmail(instance, name="newaliases")
    assert r.returncode == 0, r.stderr
    db = instance.config_dir / "aliases.txt.lmdb"
    assert db.exists()
    q = subprocess.run([binary("ternmap"), "-q", "team", f"lmdb:{text}"],
                       capture_output=True, text=True, env=instance.env(),
                       timeout=30)
    assert q.stdout.replace(" ", "").strip() == "alice,bob", q
    # The aliases work for delivery.
    instance.start()
    r = sendmail(instance, "-i", "team@example.test",
                 input="Subject: to the team\n\nhi\n")
    assert r.returncode == 0
    delivered(instance, "alice")
    delivered(instance, "bob")
    db.unlink()
    r = sendmail(instance, "-bi")
    assert r.returncode == 0 and db.exists()
    text.unlink()
    r = sendmail(instance, "-bi")
    assert r.returncode == 66       # EX_NOINPUT


def test_mailq_is_the_queue_listing(instance):
    r = sendmail(instance, name="mailq")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Mail queue is empty\n"
    r2 = sendmail(instance, "-bp")
    assert r2.stdout == r.stdout


@pytest.fixture
def open_inst():
    inst, root = open_instance("/tmp")
    yield inst
    try:
        inst.stop()
    finally:
        inst.kill_leftovers()
        shutil.rmtree(root, ignore_errors=True)


def test_an_ordinary_user_submits_as_themself(open_inst):
    """Run as nobody: maildrop/ lets anyone drop a file, and the sender is
    the file's owner even when nobody claims to be someone else."""
    inst = open_inst
    inst.start()
    nobody = pwd.getpwnam("nobody")
    r = run_as(inst, "nobody", "sendmail", "-f", "root@example.test",
               "-t", "-i",
               input="To: demo@example.test\nSubject: from nobody\n\nhi\n")
    assert r.returncode == 0, r.stderr
    raw = delivered(inst)[0]
    assert raw.startswith(b"Return-Path: <nobody@mx.example.test>\n")
    assert f"uid={nobody.pw_uid} from=<nobody@mx.example.test>" in inst.log()
    # ... and lists the queue through showq(8), as Postfix users may
    # (test_ternqueue.py has the listing itself), and flushes it through
    # public/qmgr.
    r = run_as(inst, "nobody", "ternqueue", "-p")
    assert (r.returncode, r.stdout) == (0, "Mail queue is empty\n"), r.stderr
    r = run_as(inst, "nobody", "sendmail", "-q")
    assert r.returncode == 0, r.stderr
    inst.wait_for(lambda: "flush requested" in inst.log(),
                  what="the flush asked by nobody")


def test_a_user_outside_authorized_submit_users_is_refused(open_inst):
    inst = open_inst
    inst.write_main_cf(authorized_submit_users="!nobody, static:anyone")
    inst.start()
    r = run_as(inst, "nobody", "sendmail", "demo@example.test",
               input="Subject: no\n\n")
    assert r.returncode == 77       # EX_NOPERM
    assert "is not allowed to submit mail" in r.stderr
    assert ids_in(inst, "maildrop") == []


def test_pickup_removes_what_can_never_be_mail(instance):
    """maildrop/ is writable by every local user: links, folders, junk
    and hard links there are removed with a warning, never followed,
    and real submissions still flow."""
    from queuefile import write_queue_file
    instance.start()
    instance.stop()
    drop = instance.queue_dir / "maildrop"
    secret = instance.root / "secret"
    secret.write_text("To: demo@example.test\n\nnot for pickup\n")
    (drop / "0000000000000A1").symlink_to(secret)
    (drop / "0000000000000A2").write_text("not a queue file\n")
    (drop / "0000000000000A3").mkdir()
    elsewhere = write_queue_file(instance.root, "x@example.test",
                                 ["demo@example.test"],
                                 "Subject: linked\n\nvia a hard link\n",
                                 folder="scratch")
    os.link(instance.root / "scratch" / elsewhere, drop / "0000000000000A4")
    r = sendmail(instance, "-i", "demo@example.test",
                 input="Subject: real\n\nreal mail\n")
    assert r.returncode == 0, r.stderr
    instance.start()
    raw = delivered(instance)[0]
    assert b"Subject: real\n" in raw
    instance.wait_for(lambda: ids_in(instance, "maildrop") == [],
                      what="maildrop/ to empty")
    log = instance.log()
    assert re.search(r"maildrop/0000000000000A1: uid=\d+: not a regular "
                     r"file; removed", log), log
    assert re.search(r"maildrop/0000000000000A2: uid=\d+: not a queue "
                     r"file; removed", log), log
    assert re.search(r"maildrop/0000000000000A3: uid=\d+: not a regular "
                     r"file; removed", log), log
    assert re.search(r"maildrop/0000000000000A4: uid=\d+: a file with more "
                     r"than one link; removed", log), log
    assert secret.read_text().endswith("not for pickup\n")
    assert (instance.root / "scratch" / elsewhere).exists()
    import time
    time.sleep(0.5)
    assert len(maildir_messages(instance)) == 1
