"""
smtpd against a running instance (`tern start`), driven by real
clients: Python's smtplib, swaks, and a raw socket where a test needs
bytes no polite client sends. Each test asserts what a user sees: the
reply code, what arrives in the Maildir (or that nothing does), what is
left in the queue, and the log line.

The protocol grammar in detail is in the golden files (tests/smtpd/,
test_smtpd_golden.py); these tests show the same rules hold over TCP,
through master, with qmgr and local delivering.
"""
import os
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time

import pytest


def maildir_messages(inst, user="demo"):
    new = inst.maildir(user) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def queue_files(inst):
    out = []
    for folder in ("incoming", "active", "deferred", "hold", "corrupt"):
        d = inst.queue_dir / folder
        if d.is_dir():
            out += [f"{folder}/{n}" for n in os.listdir(d)
                    if not n.startswith(".")]
    return out


def settle(inst, seconds=1.5):
    """Give qmgr and local time to deliver anything that was queued."""
    time.sleep(seconds)
    inst.wait_for(lambda: queue_files(inst) == [], timeout=20,
                  what="the queue to empty")


class Client:
    """A raw SMTP client: bytes out, whole replies in."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.file = self.sock.makefile("rb")

    def reply(self):
        """(code, [lines]) of one reply; (None, lines) at EOF."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return None, lines
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def eof(self):
        """True when the server closed (nothing more to read)."""
        try:
            return self.file.readline() == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.file.close()
        self.sock.close()


def test_unknown_local_user_gets_550_and_the_log_says_why(instance):
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("alice@example.test")
        code, text = s.rcpt("nosuchuser@example.test")
        assert (code, text) == (550, b"5.1.1 <nosuchuser@example.test>: "
                                b"Recipient address rejected: User unknown "
                                b"in local recipient table")
    instance.wait_for(lambda: "disconnect from" in instance.log(),
                      what="the disconnect line")
    assert re.search(
        r"tern/smtpd\[\d+\]: NOQUEUE: reject: RCPT from "
        r"localhost\[127\.0\.0\.1\]: 550 5\.1\.1 <nosuchuser@example\.test>: "
        r"Recipient address rejected: User unknown in local recipient "
        r"table; from=<alice@example\.test> to=<nosuchuser@example\.test> "
        r"proto=ESMTP helo=<client\.example>", instance.log()), instance.log()
    assert queue_files(instance) == []


def test_relay_from_outside_mynetworks_is_refused_local_mail_is_not(instance):
    instance.write_main_cf(mynetworks="192.0.2.0/24")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("alice@example.test")
        code, text = s.rcpt("someone@elsewhere.example")
        assert code == 554, (code, text)
        assert text == b"5.7.1 <someone@elsewhere.example>: " \
            b"Relay access denied"
        code, text = s.rcpt("demo@example.test")
        assert code == 250
        code, text = s.data(b"Subject: local only\r\n\r\nhello\r\n")
        assert code == 250, text
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="the local copy")
    settle(instance)
    assert "Relay access denied; from=<alice@example.test> " \
        "to=<someone@elsewhere.example>" in instance.log()
    # Nothing for elsewhere.example waits in the queue either.
    assert queue_files(instance) == []


SMUGGLING = {
    "lf_dot_lf": b"\n.\n",
    "cr_dot_lf": b"\r.\n",
    "lf_dot_crlf": b"\n.\r\n",
    "bare_cr": b"\r.\r",
}


def smuggle(port, seq):
    """One DATA with a second message hidden behind seq. Returns the
    replies the client got after its data."""
    c = Client(port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: first\r\n\r\nfirst message" + seq +
           b"MAIL FROM:<evil@example.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\n"
           b"DATA\r\n"
           b"Subject: smuggled\r\n\r\nsecond message\r\n.\r\n")
    replies = []
    code, lines = c.reply()
    replies.append(code)
    if code == 250:
        replies.append(c.cmd("QUIT")[0])
    c.close()
    return replies


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_from_an_exempt_client_gives_exactly_one_message(
        instance, name):
    # 127.0.0.1 is in mynetworks, and so exempt from
    # smtpd_forbid_bare_newline: the sequence is message text.
    instance.start()
    assert smuggle(instance.smtp_port, SMUGGLING[name]) == [250, 221]
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="the one message")
    settle(instance)
    msgs = maildir_messages(instance)
    assert len(msgs) == 1
    assert b"second message" in msgs[0]     # as text of the first
    assert maildir_messages(instance, "bob") == []


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_from_other_clients_is_refused_or_one_message(
        instance, name):
    instance.write_main_cf(smtpd_forbid_bare_newline_exclusions="")
    instance.start()
    replies = smuggle(instance.smtp_port, SMUGGLING[name])
    if b"\n" in SMUGGLING[name]:
        assert replies == [521]
        time.sleep(1.5)
        assert maildir_messages(instance) == []
        assert queue_files(instance) == []
        assert "bare <LF> received" in instance.log()
    else:
        assert replies == [250, 221]
        instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                          what="the one message")
        settle(instance)
        assert len(maildir_messages(instance)) == 1
    assert maildir_messages(instance, "bob") == []


def test_message_over_size_limit_gets_552_and_nothing_is_queued(instance):
    instance.write_main_cf(message_size_limit="2000")
    instance.start()
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
    big = big * 60
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        assert b"SIZE 2000" in s.ehlo_resp
        s.mail("alice@example.test")
        s.rcpt("demo@example.test")
        code, text = s.data(big)
        assert (code, text) == (552, b"5.3.4 Error: message file too big")
        # Declared too big: refused at MAIL already.
        code, text = s.mail("alice@example.test", ["SIZE=5000"])
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed "
                                b"limit")
    time.sleep(1)
    assert queue_files(instance) == []
    assert maildir_messages(instance) == []
    assert os.listdir(instance.queue_dir / "incoming") == []


def test_command_line_too_long_gets_500_and_the_session_goes_on(instance):
    instance.write_main_cf(smtpd_line_length_limit="512")
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    code, lines = c.cmd("NOOP " + "x" * 5000)
    assert code == 500 and lines == ["500 5.5.2 Error: line too long"]
    # The rest of the long line was not taken for commands.
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_too_many_recipients_get_452_and_the_rest_are_delivered(instance):
    instance.write_main_cf(smtpd_recipient_limit="2")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("carol@example.org")
        assert s.rcpt("demo@example.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test") == \
            (452, b"4.5.3 Error: too many recipients")
        assert s.data(b"Subject: two of three\r\n\r\nhi\r\n")[0] == 250
    instance.wait_for(lambda: len(maildir_messages(instance, "alice")) == 1,
                      what="alice's copy")
    settle(instance)
    assert len(maildir_messages(instance, "demo")) == 1
    assert maildir_messages(instance, "bob") == []


def test_silent_client_is_dropped_while_another_is_served(instance):
    instance.write_main_cf(smtpd_timeout="2s")
    instance.start()
    silent = Client(instance.smtp_port, timeout=15)
    assert silent.reply()[0] == 220
    start = time.monotonic()
    # Meanwhile another client is served from start to end.
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: not waiting\r\n\r\nserved\r\n")
    assert time.monotonic() - start < 2
    code, lines = silent.reply()
    waited = time.monotonic() - start
    assert code == 421 and "4.4.2" in lines[0], lines
    assert 1.5 < waited < 6, waited
    assert silent.eof()
    silent.close()
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="the other client's message")
    assert re.search(r"timeout after CONNECT from localhost\[127\.0\.0\.1\]",
                     instance.log())


def test_unauthorized_pipelining_is_cut_off_with_554(instance):
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    c.send(b"EHLO client.example\r\nMAIL FROM:<alice@example.test>\r\n")
    code, lines = c.reply()
    assert (code, lines) == (554, ["554 5.5.0 Error: SMTP protocol "
                                   "synchronization"])
    assert c.eof()
    c.close()
    instance.wait_for(lambda: "improper command pipelining after EHLO"
                      in instance.log(), what="the log line")


def test_connection_count_limit_per_client(instance):
    instance.write_main_cf(smtpd_client_connection_count_limit="2",
                           smtpd_client_event_limit_exceptions="")
    instance.start()
    first = Client(instance.smtp_port)
    second = Client(instance.smtp_port)
    assert first.reply()[0] == 220
    assert second.reply()[0] == 220
    third = Client(instance.smtp_port)
    code, lines = third.reply()
    assert code == 421 and "too many connections from 127.0.0.1" in \
        lines[0], lines
    third.close()
    assert first.cmd("QUIT")[0] == 221
    first.close()
    # The slot is free again once the first session has ended.
    deadline = time.monotonic() + 5
    while True:
        fourth = Client(instance.smtp_port)
        code, _ = fourth.reply()
        if code == 220 or time.monotonic() > deadline:
            break
        fourth.close()
        time.sleep(0.2)
    assert code == 220
    fourth.cmd("QUIT")
    fourth.close()
    second.cmd("QUIT")
    second.close()
    assert "Connection concurrency limit exceeded" in instance.log()


def test_swaks_with_and_without_pipelining_delivers(instance):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/deps test installs it)")
    instance.start()
    for extra in (["--pipeline"], []):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port",
             str(instance.smtp_port), "--from", "bob@example.test",
             "--to", "demo@example.test", "--header", "Subject: swaks",
             "--body", "pipelined", "--timeout", "10", *extra],
            capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"<[-~]  250 2\.0\.0 Ok: queued as [0-9A-F]+",
                         r.stdout), r.stdout
    instance.wait_for(lambda: len(maildir_messages(instance)) == 2,
                      what="both messages")


def test_bdat_message_is_delivered_byte_for_byte(instance):
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    code, lines = c.cmd("EHLO client.example")
    assert "250-CHUNKING" in lines or "250 CHUNKING" in lines
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 250
    body = b"Subject: chunks\r\n\r\n.leading dot kept\r\nend\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0]
    c.cmd("QUIT")
    c.close()
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    raw = maildir_messages(instance)[0]
    assert raw.endswith(b"\n\n.leading dot kept\nend\n")
