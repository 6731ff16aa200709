"""
SMTP AUTH (RFC 4954) in smtpd against a running instance, set up as
sites run submission: port 25 for the world, a submission port with
smtpd_tls_security_level=encrypt, smtpd_tls_auth_only=yes and
permit_sasl_authenticated,reject (master.cf -o overrides), and an
implicit-TLS port. Users live in a sasldb in the instance folder, made
with Debian's saslpasswd2. 127.0.0.1 is not in mynetworks here, so
only an authenticated client may relay.

Relayed mail is only queued: the instance runs no qmgr, so the queue
file stays in incoming/ to be read.

The AUTH grammar in detail (without TLS) is in the golden files
tests/smtpd/auth_*.in.
"""
import re
import smtplib
import threading
import time

import pytest

from conftest import free_port
from smtpd_tlsclient import TIMEOUT, Client, b64, client_tls_context, \
    plain, timed, tls_settings

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
OUTSIDE = "friend@elsewhere.example"
REFUSED = (554, "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: "
           "Access denied")


def submission_instance(inst, sender_check=False, **extra):
    """Port 25 (inst.smtp_port), submission (inst.sub_port) and
    implicit TLS (inst.smtps_port), the last two for customers only."""
    inst.sub_port = free_port()
    inst.smtps_port = free_port()
    tls_settings(inst, mynetworks="192.0.2.0/24",
                 smtpd_sasl_mechanism_list="PLAIN, LOGIN",
                 smtpd_sender_login_maps="inline:{ "
                 "alice@example.test=alice, bob@example.test=bob }",
                 **extra)
    for user, password in PASSWORDS.items():
        inst.add_sasl_user(user, password)
    customers = (
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
        "  -o smtpd_recipient_restrictions="
        "permit_sasl_authenticated,reject\n")
    if sender_check:
        customers += ("  -o smtpd_sender_restrictions="
                      "reject_sender_login_mismatch\n")
    inst.write_master_cf(
        f"127.0.0.1:{inst.smtp_port} inet n - n - - smtpd\n"
        f"127.0.0.1:{inst.sub_port} inet n - n - - smtpd\n"
        "  -o smtpd_tls_security_level=encrypt\n"
        "  -o smtpd_tls_auth_only=yes\n" + customers +
        f"127.0.0.1:{inst.smtps_port} inet n - n - - smtpd\n"
        "  -o smtpd_tls_wrappermode=yes\n" + customers +
        "pickup    unix  n - n 60 1 pickup\n"
        "local     unix  - n n - - local\n")
    inst.start()


def queued(inst):
    """The queue files smtpd wrote (no qmgr moves them on)."""
    d = inst.queue_dir / "incoming"
    return [p.read_bytes() for p in sorted(d.iterdir())
            if not p.name.startswith(".")]


def tls_client(port, source=None):
    """Connected, greeted, in TLS, after EHLO; and the EHLO keywords."""
    c = Client(port, source=source)
    assert c.reply()[0] == 220
    c.ehlo()
    c.starttls()
    return c, c.ehlo()


def test_submission_offers_no_auth_before_tls_and_refuses_it(instance):
    submission_instance(instance)
    c = Client(instance.sub_port)
    assert c.reply()[0] == 220
    keywords = c.ehlo()
    assert "STARTTLS" in keywords
    assert not [k for k in keywords if k.startswith("AUTH")], keywords
    must = (530, ["530 5.7.0 Must issue a STARTTLS command first"])
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")) == must
    assert c.cmd("MAIL FROM:<alice@example.test>") == must
    c.starttls()
    assert "AUTH PLAIN LOGIN" in c.ehlo()
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert "sasl_username" not in instance.log()


def test_auth_plain_after_starttls_relays_to_an_outside_domain(instance):
    submission_instance(instance)
    with smtplib.SMTP("127.0.0.1", instance.sub_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        s.starttls(context=client_tls_context())
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert s.login("alice", "alice-secret") == \
            (235, b"2.7.0 Authentication successful")
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt(OUTSIDE)[0] == 250
        code, text = s.data(b"Subject: out\r\n\r\nto the world\r\n")
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), \
            text
        qid = text.split()[-1].decode()
    files = queued(instance)
    assert len(files) == 1
    assert b"\nA sasl_method=PLAIN\nA sasl_username=alice\n" in files[0]
    assert re.search(rb"\tby mx\.example\.test \(Tern\) with ESMTPSA id ",
                     files[0])
    assert f"{qid}: client=localhost[127.0.0.1], sasl_method=PLAIN, " \
        "sasl_username=alice" in instance.log()


def test_wrong_password_gets_535_and_cannot_relay(instance):
    submission_instance(instance)
    with smtplib.SMTP("127.0.0.1", instance.sub_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        s.starttls(context=client_tls_context())
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "not-her-password")
        assert (e.value.smtp_code, e.value.smtp_error) == \
            (535, b"5.7.8 Error: authentication failed")
        assert s.mail("alice@example.test")[0] == 250
        code, text = s.rcpt(OUTSIDE)
        assert (code, "%d %s" % (code, text.decode())) == REFUSED
    assert queued(instance) == []
    assert "warning: localhost[127.0.0.1]: SASL PLAIN authentication " \
        "failed: authentication failure" in instance.log()
    # Nor on port 25, which is not for customers at all.
    with smtplib.SMTP("127.0.0.1", instance.smtp_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        s.mail("alice@example.test")
        assert s.rcpt(OUTSIDE) == (554, f"5.7.1 <{OUTSIDE}>: Relay access "
                                   "denied".encode())


HUGE = "A" * (100 * 1024)

# (what the client sends after EHLO inside TLS, the reply it gets)
MALFORMED = {
    "bad_base64": (["AUTH PLAIN !!not*base64"],
                   "501 5.5.2 Error: malformed authentication data"),
    "base64_with_junk": (["AUTH PLAIN " + plain("alice", "alice-secret")
                          + "%"],
                         "501 5.5.2 Error: malformed authentication data"),
    "no_nul": (["AUTH PLAIN " + b64(b"alicealice-secret")],
               "501 5.5.2 Error: malformed authentication data"),
    "one_nul": (["AUTH PLAIN " + b64(b"alice\0alice-secret")],
                "501 5.5.2 Error: malformed authentication data"),
    "three_nuls": (["AUTH PLAIN " + b64(b"\0alice\0alice-secret\0")],
                   "501 5.5.2 Error: malformed authentication data"),
    "authzid_of_another_user": (
        ["AUTH PLAIN " + plain("alice", "alice-secret", authzid="bob")],
        "535 5.7.8 Error: authentication failed"),
    "cancelled": (["AUTH PLAIN", "*"], "501 5.7.0 Authentication aborted"),
    "huge_exchange_line": (["AUTH PLAIN", HUGE],
                           "500 5.5.6 Authentication exchange line is too "
                           "long"),
    "huge_command_line": (["AUTH PLAIN " + HUGE],
                          "500 5.5.2 Error: line too long"),
    "login_bad_base64": (["AUTH LOGIN", b64(b"alice"), "c2VjcmV0!"],
                         "501 5.5.2 Error: malformed authentication data"),
    "unknown_mechanism": (["AUTH X-NOSUCH"],
                          "504 5.5.4 Unsupported authentication mechanism"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_auth_input_gets_5xx_and_never_authenticates(instance,
                                                               case):
    submission_instance(instance, smtpd_auth_failure_sleep_time="0")
    lines, want = MALFORMED[case]
    c, _ = tls_client(instance.sub_port)
    for line in lines[:-1]:
        code, reply = c.cmd(line)
        assert code == 334, reply
    code, reply = c.cmd(lines[-1])
    assert reply == [want]
    # Nothing of the long line was taken for commands, the session goes
    # on, and the client is not authenticated.
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, reply = c.cmd(f"RCPT TO:<{OUTSIDE}>")
    assert (code, reply[0]) == REFUSED
    # The right password still works afterwards.
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret"))[0] == 235
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert queued(instance) == []


def test_auth_in_a_transaction_and_twice_gets_503(instance):
    submission_instance(instance)
    c, _ = tls_client(instance.sub_port)
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")) == \
        (503, ["503 5.5.1 Error: MAIL transaction in progress"])
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret"))[0] == 235
    assert c.cmd("AUTH PLAIN " + plain("bob", "bob-secret")) == \
        (503, ["503 5.5.1 Error: already authenticated"])
    c.close()


def test_failures_are_slowed_then_refused_without_slowing_others(instance):
    submission_instance(instance, smtpd_auth_failure_limit="4",
                        smtpd_auth_failure_sleep_time="1s",
                        smtpd_auth_failure_lockout_time="10m",
                        smtpd_error_sleep_time="0")
    port = instance.sub_port
    wrong = "AUTH PLAIN " + plain("alice", "guess")
    right = "AUTH PLAIN " + plain("alice", "alice-secret")
    failed = (535, ["535 5.7.8 Error: authentication failed"])
    locked = (454, ["454 4.7.0 Error: too many failed authentications "
                    "from 127.0.0.1; try again later"])

    a, _ = tls_client(port)
    took, r = timed(a.cmd, wrong)
    assert r == failed and took < 0.9, took
    took, r = timed(a.cmd, wrong)
    assert r == failed and 0.9 <= took < 1.9, took
    # Another connection from the same client is another smtpd
    # process; the count is shared.
    b, _ = tls_client(port)
    took, r = timed(b.cmd, wrong)
    assert r == failed and 1.9 <= took < 2.9, took

    # While the fourth failure is made to wait, a client from another
    # address authenticates at once.
    other = {}

    def other_client():
        start = time.monotonic()
        c, _ = tls_client(port, source="127.0.0.2")
        other["reply"] = c.cmd(right)
        other["took"] = time.monotonic() - start
        other["done"] = time.monotonic()
        c.cmd("QUIT")
        c.close()

    t = threading.Thread(target=other_client)
    a.send(wrong.encode() + b"\r\n")
    time.sleep(0.3)
    t.start()
    r = a.reply()
    a_done = time.monotonic()
    t.join(TIMEOUT)
    assert r == failed
    assert other["reply"] == (235, ["235 2.7.0 Authentication successful"])
    assert other["took"] < 1.5 and other["done"] < a_done, other

    # From now on the client is refused at once, whatever it sends, in
    # any session, right password included; 30 attempts in all.
    clients = [a, b]
    for attempt in range(5, 31):
        c = clients[attempt % 2]
        line = right if attempt % 5 == 0 else wrong
        took, r = timed(c.cmd, line)
        if r[0] == 421:         # smtpd_hard_error_limit: reconnect
            c.close()
            c, _ = tls_client(port)
            clients[attempt % 2] = c
            took, r = timed(c.cmd, line)
        assert r == locked and took < 0.9, (attempt, took, r)
    for c in clients:
        c.close()
    # The other client is still welcome.
    c, _ = tls_client(port, source="127.0.0.2")
    assert c.cmd(right)[0] == 235
    c.close()
    log = instance.log()
    assert "warning: localhost[127.0.0.1]: 4 failed authentications: " \
        "AUTH refused for 600s" in log
    assert "warning: localhost[127.0.0.1]: SASL authentication refused: " \
        "too many failed authentications" in log
    assert "sasl_username=alice" not in log


def test_customer_cannot_send_as_another_customer(instance):
    submission_instance(instance, sender_check=True)
    with smtplib.SMTP("127.0.0.1", instance.sub_port,
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example")
        s.starttls(context=client_tls_context())
        s.ehlo("client.example")
        s.login("alice", "alice-secret")
        assert s.mail("bob@example.test")[0] == 250
        assert s.rcpt(OUTSIDE) == (553, b"5.7.1 <bob@example.test>: Sender "
                                   b"address rejected: not owned by user "
                                   b"alice")
        s.rset()
        s.mail("alice@example.test")
        assert s.rcpt(OUTSIDE)[0] == 250
        assert s.data(b"Subject: mine\r\n\r\nmine\r\n")[0] == 250
    assert len(queued(instance)) == 1
    assert "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 553 5.7.1 " \
        "<bob@example.test>: Sender address rejected: not owned by user " \
        "alice; from=<bob@example.test>" in instance.log()


def test_implicit_tls_port_authenticates_with_login(instance):
    submission_instance(instance)
    with smtplib.SMTP_SSL("127.0.0.1", instance.smtps_port, timeout=TIMEOUT,
                          context=client_tls_context()) as s:
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        s.user, s.password = "bob", "bob-secret"
        assert s.auth("LOGIN", s.auth_login, initial_response_ok=False) \
            == (235, b"2.7.0 Authentication successful")
        s.sendmail("bob@example.test", [OUTSIDE], b"Subject: 465\r\n\r\nx\r\n")
    assert len(queued(instance)) == 1
    assert re.search(r"client=localhost\[127\.0\.0\.1\], sasl_method=LOGIN, "
                     r"sasl_username=bob", instance.log())


def shipped_submission_services(inst, ports):
    """The submission and submissions examples of conf/master.cf,
    uncommented, on loopback ports instead of 587 and 465."""
    from conftest import TOP
    out, inside = [], False
    for line in (TOP / "conf" / "master.cf").read_text().splitlines():
        word = line[1:].split(" ", 1)[0] if line.startswith("#") else ""
        if word in ports:
            inside = True
            out.append(f"127.0.0.1:{ports[word]}" + line[1 + len(word):])
        elif inside and line.startswith("#  -o "):
            out.append(line[1:])
        elif inside and line.startswith("# "):
            continue
        else:
            inside = False
    assert len([ln for ln in out if not ln.startswith(" ")]) == len(ports)
    return "\n".join(out) + "\n"


def test_shipped_master_cf_submission_examples_work(instance):
    """conf/master.cf's examples, as an administrator would uncomment
    them: master passes each -o to smtpd, and smtpd honours it."""
    ports = {"submission": free_port(), "submissions": free_port()}
    tls_settings(instance, mynetworks="192.0.2.0/24",
                 smtpd_sender_login_maps="inline:{ alice@example.test=alice }")
    instance.add_sasl_user("alice", "alice-secret")
    instance.write_master_cf(
        f"127.0.0.1:{instance.smtp_port} inet n - n - - smtpd\n" +
        shipped_submission_services(instance, ports))
    instance.start()
    c = Client(ports["submission"])
    assert c.reply()[0] == 220
    assert not [k for k in c.ehlo() if k.startswith("AUTH")]
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    c.starttls()
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
    assert c.cmd(f"RCPT TO:<{OUTSIDE}>")[0] == 554
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret"))[0] == 235
    assert c.cmd("MAIL FROM:<bob@example.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{OUTSIDE}>")[0] == 553
    c.close()
    c = Client(ports["submissions"], wrap=True)
    assert c.reply()[0] == 220
    auth = [k.split()[1:] for k in c.ehlo() if k.startswith("AUTH ")]
    assert auth and "PLAIN" in auth[0], auth
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret"))[0] == 235
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{OUTSIDE}>")[0] == 250
    c.close()
    # Port 25 is untouched by the overrides: no AUTH before TLS there
    # either (smtpd_tls_auth_only), and no relaying.
    c = Client(instance.smtp_port)
    assert c.reply()[0] == 220
    assert "STARTTLS" in c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret"))[0] == 503
    c.close()
