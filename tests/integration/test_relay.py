"""
Relaying end to end: instance A takes mail over SMTP, qmgr routes it to
the smtp transport, the smtp client finds the receiving server through
DNS (a local unbound serving test zones, the `dns` fixture) and hands the
message on -- to instance B, a second Tern listening on 127.0.0.2 as the
MX of b.test, or to a scripted receiving server (smtpsink.py) on another
loopback address. What is checked is what users and operators see: the
message in B's Maildir, A's log lines (relay=host[ip]:port, dsn=,
status=), bounces in the local sender's Maildir on A, the queue folders,
and how many connections the receivers saw.

The smtp client connects to port 25 of an MX host unless the next hop
names a port, and tests must not use port 25: every test domain is
routed with transport_maps "domain=smtp:domain:PORT", which still looks
up its MX records (only "[host]" skips them).
"""
import email
import email.policy
import os
import smtplib
import socket
import threading
import time

import pytest

from conftest import Instance, free_port_on
from smtpsink import SmtpSink

SENDER = "alice@example.test"


def message(subject, rcpts):
    return (f"From: Alice <{SENDER}>\r\nTo: {', '.join(rcpts)}\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n"
            f"\r\nThis is {subject}.\r\n").encode()


def send(inst, subject, rcpts, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
        s.sendmail(sender, list(rcpts), message(subject, rcpts))


def maildir(inst, user):
    new = inst.maildir(user) / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] \
        if new.is_dir() else []


def queued(inst, folder):
    d = inst.queue_dir / folder
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) \
        if d.is_dir() else []


def wait_log(inst, *parts, timeout=30):
    """The first log line with every part, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in inst.log().splitlines():
            if all(p in line for p in parts):
                return line
        time.sleep(0.1)
    pytest.fail(f"no log line with {parts} after {timeout}s:\n{inst.log()}")


def lines(inst, *parts):
    return [l for l in inst.log().splitlines() if all(p in l for p in parts)]


def dsn_report(raw):
    """(Action/Status/Final-Recipient per recipient, headers) of a DSN."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    status = msg.get_payload()[1].get_payload()
    return msg, [dict(p.items()) for p in status[1:]]


class Relay:
    """Instance A (the sender), optionally B (the receiving MX), DNS and
    sinks, all stopped at the end."""

    def __init__(self, tmp_path, dns):
        self.tmp = tmp_path
        self.dns_start = dns
        self.sinks = []
        self.b = None
        self.a = Instance(tmp_path / "a")
        self.routes = {}
        self.a.write_master_cf(
            f"127.0.0.1:{self.a.smtp_port} inet n - n - - smtpd\n"
            "pickup    unix  n - n 60 1 pickup\n"
            "qmgr      unix  n - n 1 1 qmgr\n"
            "local     unix  - n n - - local\n"
            "smtp      unix  - - n - - smtp\n")
        self.a.write_main_cf(
            smtp_connect_timeout="5s", smtp_helo_timeout="10s",
            smtp_mail_timeout="10s", smtp_rcpt_timeout="10s",
            smtp_data_init_timeout="10s", smtp_data_xfer_timeout="10s",
            smtp_data_done_timeout="10s", smtp_quit_timeout="5s",
            dns_lookup_timeout="5s", minimal_backoff_time="300s",
            maximal_backoff_time="600s", queue_run_delay="300s")

    def zones(self, records, zones=None):
        srv = self.dns_start(records, zones)
        self.a.write_main_cf(dns_forwarders=srv.forwarder)
        return srv

    def route(self, port, *domains):
        """Send mail for domains to PORT of their MX hosts."""
        for d in domains:
            self.routes[d] = f"smtp:{d}:{port}"
        self.a.write_main_cf(transport_maps="inline:{ " + ", ".join(
            f"{d}={v}" for d, v in self.routes.items()) + " }")

    def start_b(self, port, host="127.0.0.2", domains="b.test, a.test"):
        b = self.b = Instance(self.tmp / "b")
        b.smtp_host, b.smtp_port = host, port
        b.write_main_cf(myhostname="mx.b.test", mydomain="b.test",
                        mydestination=f"$myhostname, {domains}",
                        inet_interfaces=host)
        b.write_master_cf()
        b.start()
        return b

    def sink(self, host="127.0.0.2", port=0, **kw):
        s = SmtpSink(host, port, **kw).start()
        self.sinks.append(s)
        return s

    def stop(self):
        for s in self.sinks:
            s.stop()
        for inst in (self.a, self.b):
            if inst is None:
                continue
            try:
                inst.stop()
            finally:
                inst.kill_leftovers()
        for inst in (self.a, self.b):
            if inst is not None:
                log = inst.log()
                assert "panic:" not in log and "fatal:" not in log, log


@pytest.fixture
def relay(tmp_path, dns):
    r = Relay(tmp_path, dns)
    yield r
    r.stop()


MX_B = ["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.2"]


# ---- delivered ----

def test_mail_for_b_test_arrives_in_bs_maildir_through_its_mx(relay):
    port = free_port_on("127.0.0.2")
    relay.zones(MX_B)
    relay.route(port, "b.test")
    b = relay.start_b(port)
    relay.a.start()
    send(relay.a, "first relay", ["bob@b.test"])
    line = wait_log(relay.a, "to=<bob@b.test>", "status=sent")
    assert f"relay=mx.b.test[127.0.0.2]:{port}," in line
    assert "dsn=2.0.0" in line and "delays=" in line
    # The delivery agent logs it, as Postfix's smtp does; once.
    assert " tern/smtp[" in line, line
    assert len(lines(relay.a, "to=<bob@b.test>", "status=")) == 1
    b.wait_for(lambda: len(maildir(b, "bob")) == 1, what="B's Maildir")
    got = maildir(b, "bob")[0]
    assert b"Subject: first relay" in got
    assert b"This is first relay." in got
    # B's smtpd took it from A's smtp client, which said EHLO as A.
    assert wait_log(b, "client=", "127.0.0.1")
    assert wait_log(relay.a, "removed")
    assert queued(relay.a, "deferred") == []


def test_first_mx_refusing_connections_hands_over_to_the_second(relay):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    relay.zones(["b.test. MX 10 mx1.b.test.", "b.test. MX 20 mx2.b.test.",
                 "mx1.b.test. A 127.0.0.3", "mx2.b.test. A 127.0.0.2"])
    relay.route(port, "b.test")
    b = relay.start_b(port)
    relay.a.start()
    send(relay.a, "second mx", ["bob@b.test"])
    line = wait_log(relay.a, "to=<bob@b.test>", "status=sent")
    assert f"relay=mx2.b.test[127.0.0.2]:{port}," in line
    b.wait_for(lambda: len(maildir(b, "bob")) == 1, what="B's Maildir")


def test_domain_without_mx_gets_mail_at_its_address(relay):
    port = free_port_on("127.0.0.2")
    relay.zones(["a.test. A 127.0.0.2"])
    relay.route(port, "a.test")
    b = relay.start_b(port)
    relay.a.start()
    send(relay.a, "no mx", ["bob@a.test"])
    line = wait_log(relay.a, "to=<bob@a.test>", "status=sent")
    assert f"relay=a.test[127.0.0.2]:{port}," in line
    b.wait_for(lambda: len(maildir(b, "bob")) == 1, what="B's Maildir")


# ---- bounced ----

def test_null_mx_bounces_at_once_to_the_local_sender(relay):
    sink = relay.sink()
    relay.zones(["null.test. MX 0 .", "null.test. A 127.0.0.2"])
    relay.route(sink.port, "null.test")
    relay.a.start()
    send(relay.a, "null mx", ["bob@null.test"])
    line = wait_log(relay.a, "to=<bob@null.test>", "status=bounced")
    assert "dsn=5.1.10" in line
    assert "does not accept mail (nullMX)" in line
    relay.a.wait_for(lambda: len(maildir(relay.a, "alice")) == 1,
                     what="the bounce in alice's Maildir")
    msg, rcpts = dsn_report(maildir(relay.a, "alice")[0])
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert [(r["Final-Recipient"], r["Action"], r["Status"])
            for r in rcpts] == [("rfc822; bob@null.test", "failed",
                                 "5.1.10")]
    assert sink.connections == 0
    assert queued(relay.a, "deferred") == []


def test_nxdomain_bounces(relay):
    relay.zones(MX_B)
    relay.route(2525, "nx.test")
    relay.a.start()
    send(relay.a, "nxdomain", ["bob@nx.test"])
    line = wait_log(relay.a, "to=<bob@nx.test>", "status=bounced")
    assert "dsn=5.1.2" in line and "Host not found" in line
    relay.a.wait_for(lambda: len(maildir(relay.a, "alice")) == 1,
                     what="the bounce in alice's Maildir")
    _, rcpts = dsn_report(maildir(relay.a, "alice")[0])
    assert rcpts[0]["Status"] == "5.1.2"


def test_one_of_three_rejected_gets_one_bounce_two_are_delivered(relay):
    sink = relay.sink(rcpt={"nobody@b.test": "550 5.1.1 <nobody@b.test>: "
                            "Recipient address rejected: User unknown"})
    relay.zones(MX_B)
    relay.route(sink.port, "b.test")
    relay.a.start()
    rcpts = ["bob@b.test", "nobody@b.test", "carol@b.test"]
    send(relay.a, "three rcpts", rcpts)
    relay.a.wait_for(lambda: len(maildir(relay.a, "alice")) == 1,
                     what="the bounce in alice's Maildir")
    [m] = sink.wait_messages(1)
    assert m.rcpts == ["bob@b.test", "carol@b.test"]
    # 2 relayed, then the bounce delivered to alice
    relay.a.wait_for(lambda: len(lines(relay.a, "status=sent")) == 3,
                     what="three deliveries logged")
    for rcpt in ("bob@b.test", "carol@b.test"):
        assert lines(relay.a, f"to=<{rcpt}>", "status=sent")
    line = wait_log(relay.a, "to=<nobody@b.test>", "status=bounced")
    assert "dsn=5.1.1" in line
    assert f"relay=mx.b.test[127.0.0.2]:{sink.port}," in line
    _, report = dsn_report(maildir(relay.a, "alice")[0])
    assert [r["Final-Recipient"] for r in report] == \
        ["rfc822; nobody@b.test"]
    assert report[0]["Status"] == "5.1.1"
    assert "User unknown" in str(report[0]["Diagnostic-Code"])


# ---- deferred ----

def test_4xx_then_2xx_is_deferred_then_delivered_on_retry(relay):
    sink = relay.sink(rcpt={"bob@b.test": ["450 4.2.0 Try again later",
                                           "250 2.1.5 Ok"]})
    relay.zones(MX_B)
    relay.route(sink.port, "b.test")
    relay.a.write_main_cf(minimal_backoff_time="1s",
                          maximal_backoff_time="2s", queue_run_delay="1s")
    relay.a.start()
    send(relay.a, "greylisted", ["bob@b.test"])
    line = wait_log(relay.a, "to=<bob@b.test>", "status=deferred")
    assert "dsn=4.2.0" in line and "450 4.2.0 Try again later" in line
    line = wait_log(relay.a, "to=<bob@b.test>", "status=sent", timeout=30)
    assert f"relay=mx.b.test[127.0.0.2]:{sink.port}," in line
    assert len(sink.wait_messages(1)) == 1
    assert sink.connections == 2
    assert maildir(relay.a, "alice") == []      # no bounce, no warning


def test_4xx_greeting_moves_on_to_the_next_mx(relay):
    port = free_port_on("127.0.0.2", "127.0.0.4")
    busy = relay.sink("127.0.0.2", port, greeting="421 4.3.2 Too busy")
    good = relay.sink("127.0.0.4", port)
    relay.zones(["b.test. MX 10 mx1.b.test.", "b.test. MX 20 mx2.b.test.",
                 "mx1.b.test. A 127.0.0.2", "mx2.b.test. A 127.0.0.4"])
    relay.route(port, "b.test")
    relay.a.start()
    send(relay.a, "busy first mx", ["bob@b.test"])
    line = wait_log(relay.a, "to=<bob@b.test>", "status=sent")
    assert f"relay=mx2.b.test[127.0.0.4]:{port}," in line
    assert busy.connections == 1 and busy.messages == []
    assert len(good.wait_messages(1)) == 1


def test_servfail_defers_with_a_dns_reason_and_never_bounces(relay):
    relay.zones(MX_B, zones={"fail.test.": "always_refuse"})
    relay.route(2525, "fail.test")
    relay.a.write_main_cf(minimal_backoff_time="1s",
                          maximal_backoff_time="1s", queue_run_delay="1s")
    relay.a.start()
    send(relay.a, "servfail", ["bob@fail.test"])
    line = wait_log(relay.a, "to=<bob@fail.test>", "status=deferred")
    assert "dsn=4.4.3" in line
    assert "Name service error for name=fail.test type=MX" in line
    # Retried, and still only deferred.
    deadline = time.monotonic() + 30
    while len(lines(relay.a, "to=<bob@fail.test>", "status=deferred")) < 2:
        assert time.monotonic() < deadline, relay.a.log()
        time.sleep(0.2)
    assert lines(relay.a, "status=bounced") == []
    assert maildir(relay.a, "alice") == []
    relay.a.wait_for(lambda: len(queued(relay.a, "deferred")) == 1,
                     what="the message in deferred/")


class ClosingServer:
    """Accepts connections and closes them at once (a host whose SMTP
    server is broken), counting them."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.times = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.times.append(time.monotonic())
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def test_dead_destination_gets_no_new_connections_until_backoff(relay):
    port = free_port_on("127.0.0.2")
    server = ClosingServer("127.0.0.2", port)
    try:
        relay.zones(MX_B)
        relay.route(port, "b.test")
        relay.a.write_main_cf(initial_destination_concurrency="1",
                              minimal_backoff_time="4s",
                              maximal_backoff_time="4s",
                              queue_run_delay="1s")
        relay.a.start()
        with smtplib.SMTP("127.0.0.1", relay.a.smtp_port, timeout=10) as s:
            for i in range(4):
                s.sendmail(SENDER, ["bob@b.test"],
                           message(f"dead {i}", ["bob@b.test"]))
        wait_log(relay.a, "delivery to smtp:b.test:%d suspended for 4s"
                 % port)
        relay.a.wait_for(
            lambda: len(lines(relay.a, "to=<bob@b.test>",
                              "status=deferred")) >= 4,
            timeout=20, what="four deferrals")
        first = server.times[0]
        suspended = lines(relay.a, "to=<bob@b.test>", "status=deferred "
                          "(delivery temporarily suspended: lost "
                          "connection with mx.b.test[127.0.0.2]")
        assert len(suspended) >= 1, relay.a.log()
        # Within the backoff nobody connects again; afterwards mail is
        # tried again (and the destination found dead again).
        time.sleep(max(0.0, first + 3.0 - time.monotonic()))
        assert len(server.times) == 1, server.times
        relay.a.wait_for(lambda: len(server.times) >= 2, timeout=20,
                         what="a new attempt after the backoff")
        assert server.times[1] - first >= 3.5
        assert lines(relay.a, "status=bounced") == []
    finally:
        server.stop()


# ---- concurrency and fairness ----

def test_slow_destination_keeps_its_limit_and_does_not_starve_another(relay):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    slow = relay.sink("127.0.0.2", port, delay=0.25)
    fast = relay.sink("127.0.0.3", port)
    relay.zones(["slow.test. MX 10 mx.slow.test.",
                 "mx.slow.test. A 127.0.0.2",
                 "fast.test. MX 10 mx.fast.test.",
                 "mx.fast.test. A 127.0.0.3"])
    relay.route(port, "slow.test", "fast.test")
    relay.a.write_main_cf(smtp_destination_concurrency_limit="3")
    relay.a.start()
    with smtplib.SMTP("127.0.0.1", relay.a.smtp_port, timeout=30) as s:
        for i in range(60):
            s.sendmail(SENDER, [f"u{i}@slow.test"],
                       message(f"slow {i}", [f"u{i}@slow.test"]))
        for i in range(3):
            s.sendmail(SENDER, [f"u{i}@fast.test"],
                       message(f"fast {i}", [f"u{i}@fast.test"]))
    fast.wait_messages(3, timeout=30)
    # The three went through while the slow destination still had most
    # of its sixty to go.
    assert len(slow.messages) < 40, len(slow.messages)
    slow.wait_messages(60, timeout=120)
    assert slow.max_concurrent <= 3
    assert slow.max_concurrent >= 2
    relay.a.wait_for(lambda: len(lines(relay.a, "status=sent")) >= 63,
                     timeout=30, what="63 deliveries logged")


@pytest.mark.parametrize("idle, most", [("2s", 3), ("0", None)])
def test_mail_to_one_destination_rides_few_connections(relay, idle, most):
    """qmgr keeps its connection to the smtp agent for the
    destination's next message, and the agent keeps its session, so a
    burst to one place costs a connection or two, not one per message;
    with qmgr_agent_idle_time_limit = 0 every message connects anew."""
    port = free_port_on("127.0.0.2")
    sink = relay.sink("127.0.0.2", port)
    relay.zones(MX_B)
    relay.route(port, "b.test")
    relay.a.write_main_cf(smtp_destination_concurrency_limit="2",
                          qmgr_agent_idle_time_limit=idle)
    relay.a.start()
    with smtplib.SMTP("127.0.0.1", relay.a.smtp_port, timeout=30) as s:
        for i in range(20):
            s.sendmail(SENDER, ["bob@b.test"],
                       message(f"burst {i}", ["bob@b.test"]))
    sink.wait_messages(20, timeout=60)
    assert sink.max_concurrent <= 2
    if most is None:
        assert sink.connections == 20
    else:
        assert sink.connections <= most, sink.connections
        # Each reused session started its next message with RSET.
        assert any("RSET" in x.commands for x in sink.sessions)
    relay.a.wait_for(lambda: len(lines(relay.a, "status=sent")) >= 20,
                     timeout=30, what="20 deliveries logged")


# ---- flush ----

def test_flush_retries_deferred_relay_mail_and_site_flush_only_its_own(relay):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    answer = {"code": "451 4.3.0 Not now"}
    b = relay.sink("127.0.0.2", port,
                   rcpt_default=lambda sess, addr=None: answer["code"])
    c = relay.sink("127.0.0.3", port,
                   rcpt_default=lambda sess, addr=None: answer["code"])
    relay.route(port, "b.test", "sub.b.test", "c.test")
    relay.zones(["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.2",
                 "sub.b.test. MX 10 mx.b.test.",
                 "c.test. MX 10 mx.c.test.", "mx.c.test. A 127.0.0.3"])
    relay.a.start()
    send(relay.a, "for b", ["bob@b.test"])
    send(relay.a, "for sub b", ["bob@sub.b.test"])
    send(relay.a, "for c", ["carol@c.test"])
    relay.a.wait_for(lambda: len(queued(relay.a, "deferred")) == 3,
                     timeout=30, what="three deferred messages")
    answer["code"] = "250 2.1.5 Ok"
    r = relay.a.run("ternqueue", "-s", "b.test")
    assert r.returncode == 0, r.stderr
    b.wait_messages(2, timeout=30)
    time.sleep(1.0)
    assert c.messages == []
    assert len(queued(relay.a, "deferred")) == 1
    r = relay.a.run("tern", "flush")
    assert r.returncode == 0, r.stderr
    c.wait_messages(1, timeout=30)
    relay.a.wait_for(lambda: queued(relay.a, "deferred") == [],
                     what="an empty deferred queue")
