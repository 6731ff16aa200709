"""
TLS in smtpd against a running instance: STARTTLS (RFC 3207) with
Python's smtplib, swaks and a raw client; what the client pipelined
before the handshake is thrown away (CVE-2011-0411); STARTTLS inside TLS
and before a certificate exists; level encrypt; implicit TLS on a
wrappermode port; session resumption between smtpd processes; a new
certificate after `tern reload`. Each test asserts what a client and
an operator see: replies, the Received: header of the delivered
message, the log.
"""
import hashlib
import re
import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

from conftest import free_port
from smtpd_tlsclient import TIMEOUT, Client, client_tls_context, \
    tls_settings

TLS_LOG = re.compile(
    r"tern/smtpd\[\d+\]: Anonymous TLS connection established from "
    r"localhost\[127\.0\.0\.1\]: (TLSv1\.[23]) with cipher (\S+) "
    r"\((\d+)/(\d+) bits\)")


def maildir_messages(inst, user="demo"):
    new = inst.maildir(user) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def received_tls_line(msg):
    """The "(using ...)" line of the first Received: header."""
    head = msg.split(b"\n\n", 1)[0].decode()
    m = re.search(r"^Received: from [^\n]*\n\t\(using ([^\n]*)\)\n"
                 r"\t\(No client certificate requested\)\n"
                 r"\tby mx\.example\.test \(Tern\) with (\w+) id ", head,
                  re.M)
    assert m, head
    return m.group(1), m.group(2)


def test_smtplib_starttls_delivers_and_received_names_the_cipher(instance):
    tls_settings(instance)
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        assert s.starttls(context=client_tls_context())[0] == 220
        name, version, bits = s.sock.cipher()
        s.ehlo("client.example")
        # Inside TLS it is not offered again.
        assert not s.has_extn("starttls")
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: over TLS\r\n\r\nsecret\r\n")
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    using, proto = received_tls_line(maildir_messages(instance)[0])
    assert using == f"{version} with cipher {name} ({bits}/{bits} bits)"
    assert proto == "ESMTPS"
    m = TLS_LOG.search(instance.log())
    assert m and m.group(1, 2) == (version, name), instance.log()
    assert re.search(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=2 "
                     r"starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
                     instance.log()), instance.log()


def test_swaks_tls_delivers_and_received_names_tls(instance):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/deps test installs it)")
    tls_settings(instance)
    instance.start()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port",
         str(instance.smtp_port), "--tls", "--from", "bob@example.test",
         "--to", "demo@example.test", "--header", "Subject: swaks tls",
         "--body", "encrypted", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"=== TLS started with cipher TLSv1\.[23]:", r.stdout), \
        r.stdout
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]+", r.stdout), \
        r.stdout
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    using, proto = received_tls_line(maildir_messages(instance)[0])
    assert re.fullmatch(r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)",
                        using)
    assert proto == "ESMTPS"


def test_commands_pipelined_after_starttls_are_thrown_away(instance):
    tls_settings(instance)
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    c.ehlo()
    # A man in the middle appends RSET to the client's STARTTLS.
    c.send(b"STARTTLS\r\nRSET\r\n")
    code, lines = c.reply()
    assert (code, lines) == (220, ["220 2.0.0 Ready to start TLS"])
    # Nothing else came in clear: no reply to RSET before the handshake.
    assert c.buf == b""
    c.sock = client_tls_context().wrap_socket(c.sock)
    # Nor inside TLS.
    assert c.nothing_within(1.5)
    code, lines = c.cmd("EHLO client.example")
    assert code == 250 and lines[0] == "250-mx.example.test", lines
    assert c.cmd("QUIT")[0] == 221
    c.close()
    instance.wait_for(lambda: "disconnect from" in instance.log(),
                      what="the disconnect line")
    assert "improper command pipelining after STARTTLS from " \
        "localhost[127.0.0.1]: RSET\\r\\n" in instance.log()
    assert " rset=" not in instance.log()


def test_starttls_twice_and_in_a_transaction_are_refused(instance):
    tls_settings(instance)
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("STARTTLS") == (503, ["503 5.5.1 Error: MAIL transaction "
                                       "in progress"])
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("STARTTLS now") == (501, ["501 5.5.4 Syntax: STARTTLS"])
    c.starttls()
    # The session starts over (RFC 3207 4.2): the EHLO name is forgotten
    # and a new EHLO says what is offered inside TLS.
    extensions = c.ehlo()
    assert "STARTTLS" not in extensions
    assert c.cmd("STARTTLS") == (554, ["554 5.5.1 Error: TLS already "
                                       "active"])
    # The session still works.
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_level_encrypt_refuses_mail_before_starttls(instance):
    tls_settings(instance, smtpd_tls_security_level="encrypt")
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    assert "STARTTLS" in c.ehlo()
    must = (530, ["530 5.7.0 Must issue a STARTTLS command first"])
    assert c.cmd("MAIL FROM:<alice@example.test>") == must
    assert c.cmd("VRFY demo") == must
    assert c.cmd("NOOP")[0] == 250
    c.starttls()
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_no_certificate_means_no_starttls_and_a_clear_454(instance):
    instance.write_main_cf(smtpd_tls_security_level="may")
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    assert "STARTTLS" not in c.ehlo()
    assert c.cmd("STARTTLS") == (454, ["454 4.7.0 TLS not available due "
                                       "to local problem"])
    # Mail still flows in clear at level may.
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert re.search(r"warning: cannot start TLS: .*; STARTTLS is not "
                     r"offered", instance.log()), instance.log()


def test_no_tls_configured_starttls_is_not_implemented(instance):
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    assert "STARTTLS" not in c.ehlo()
    assert c.cmd("STARTTLS") == (502, ["502 5.5.1 Error: command not "
                                       "implemented"])
    c.close()


def wrapper_master_cf(inst, port):
    inst.write_master_cf(
        f"127.0.0.1:{inst.smtp_port} inet n - n - - smtpd\n"
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        "  -o smtpd_tls_wrappermode=yes\n"
        "pickup    unix  n - n 60 1 pickup\n"
        "qmgr      unix  n - n 300 1 qmgr\n"
        "local     unix  - n n - - local\n")


def test_implicit_tls_on_a_wrappermode_port(instance):
    port = free_port()
    tls_settings(instance)
    wrapper_master_cf(instance, port)
    instance.start()
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=TIMEOUT,
                          context=client_tls_context()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: port 465\r\n\r\nimplicit\r\n")
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    using, proto = received_tls_line(maildir_messages(instance)[0])
    assert proto == "ESMTPS"
    assert TLS_LOG.search(instance.log()), instance.log()
    # A client that talks in clear on that port gets no greeting, only
    # a failed handshake; the other port still serves it.
    c = Client(port)
    c.send(b"EHLO client.example\r\n")
    while not c.eof():
        pass
    assert b"220" not in c.buf, c.buf
    c.close()
    instance.wait_for(lambda: "SSL_accept error from localhost[127.0.0.1]"
                      in instance.log(), what="the handshake error")
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    c.close()


def test_wrappermode_without_a_certificate_does_not_serve_in_clear(
        instance):
    port = free_port()
    wrapper_master_cf(instance, port)
    instance.start()
    c = Client(port, timeout=3)
    try:
        code, lines = c.reply()
    except (ConnectionError, OSError):
        code, lines = None, []
    assert code != 220, lines
    c.close()
    instance.wait_for(lambda: "smtpd_tls_wrappermode requires TLS" in
                      instance.log(), what="the fatal error")


def test_garbage_handshake_ends_only_that_session(instance):
    tls_settings(instance)
    instance.start()
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    c.ehlo()
    assert c.cmd("STARTTLS")[0] == 220
    c.send(b"this is not a TLS client hello\r\n" * 4)
    assert c.eof()
    c.close()
    instance.wait_for(lambda: "SSL_accept error from localhost[127.0.0.1]"
                      in instance.log(), what="the handshake error")
    assert "lost connection after STARTTLS from localhost[127.0.0.1]" in \
        instance.log()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        assert s.starttls(context=client_tls_context())[0] == 220
        assert s.noop()[0] == 250


def tls_session(port, session=None):
    """A STARTTLS session; returns the client (still connected) and
    its TLS session once the server's tickets have arrived."""
    c = Client(port)
    assert c.reply()[0] == 220
    c.ehlo()
    c.starttls(session=session)
    c.ehlo()        # TLS 1.3 tickets come after the handshake
    return c


def test_tls_sessions_resume_in_another_smtpd_process(instance):
    tls_settings(instance)
    instance.start()
    first = tls_session(instance.smtp_port)
    sess = first.sock.session
    assert sess is not None and first.sock.session_reused is False
    # While the first client keeps its process busy, the second is
    # served by another one, which must know the ticket key.
    second = tls_session(instance.smtp_port, session=sess)
    assert second.sock.session_reused is True
    for c in (first, second):
        assert c.cmd("QUIT")[0] == 221
        c.close()
    instance.wait_for(lambda: "TLS connection reused from" in
                      instance.log(), what="the reuse log line")
    pids = set(re.findall(r"tern/smtpd\[(\d+)\]: Anonymous TLS connection",
                          instance.log()))
    assert len(pids) == 2, instance.log()
    keys = list(instance.data_dir.glob("smtpd_tls_ticket.*.key"))
    assert len(keys) == 1 and keys[0].stat().st_mode & 0o077 == 0


def cert_fingerprint(port):
    c = Client(port)
    assert c.reply()[0] == 220
    c.ehlo()
    c.starttls()
    der = c.sock.getpeercert(binary_form=True)
    c.cmd("QUIT")
    c.close()
    return hashlib.sha256(der).hexdigest()


def test_reload_picks_up_a_new_certificate(instance):
    cert, key = tls_settings(instance)
    # One smtpd process, so every connection meets the process that saw
    # each renewal: with several, one that never loaded the good new
    # certificate rightly keeps the old one when the next is broken.
    instance.write_master_cf(
        f"{instance.smtp_host}:{instance.smtp_port} inet n - n - 1 smtpd\n"
        "pickup    unix  n - n 60 1 pickup\n"
        "qmgr      unix  n - n 300 1 qmgr\n"
        "local     unix  - n n - - local\n")
    instance.start()
    old = cert_fingerprint(instance.smtp_port)
    # A renewal: new files under the same names, then `tern reload`.
    instance.make_tls_cert()
    r = instance.run("tern", "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    new = cert_fingerprint(instance.smtp_port)
    assert new != old
    # A broken renewal keeps the certificate that works.
    cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n")
    r = instance.run("tern", "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cert_fingerprint(instance.smtp_port) == new
    assert "new TLS certificate not loaded, the old one stays in use" in \
        instance.log()
