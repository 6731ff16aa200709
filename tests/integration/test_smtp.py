"""
The smtp client on its own: `smtp` (or `lmtp`, the same program under
its other name) is started the way master starts it (listening socket on
descriptor 3, status pipe on 4), DNS comes from a local unbound serving
test zones (the `dns` fixture), the receiving servers are scripted
SmtpSinks on 127.0.0.x, a queue file is written into active/, and the
test speaks qmgr's side of lib/deliver.h. What qmgr -- and so the
operator -- would see is checked: each recipient's status, DSN code and
reason, the relay, and what the receiving server got, byte for byte.
"""
import os
import socket
import subprocess
import time

import pytest

from conftest import binary, free_port_on
from queuefile import deliver_request, write_queue_file
from smtpsink import SmtpSink

CONTENT = (b"From: Alice <alice@example.test>\n"
           b"To: Bob <bob@b.test>\n"
           b"Subject: relay test\n"
           b"\n"
           b"First line.\n"
           b".A line that starts with a dot\n"
           b".\n"
           b"..two dots\n"
           b"8-bit: caf\xc3\xa9\n"
           b"Last line.\n")

SENDER = "alice@example.test"


def wait_quit(sink, n, timeout=10):
    """Session n at the sink ends with QUIT. A session outlives the
    request that used it (smtp_connection_cache_on_demand) and ends when
    the agent's connection from qmgr does, so the QUIT comes a moment
    after the reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cmds = sink.sessions[n].commands
        if cmds and cmds[-1] == "QUIT":
            return
        time.sleep(0.05)
    pytest.fail("session %d did not end with QUIT: %r"
                % (n, sink.sessions[n].commands))


def crlf(content):
    return content.replace(b"\n", b"\r\n")


class Agent:
    """One smtp/lmtp process serving a Unix socket, as master runs it."""

    def __init__(self, inst, program="smtp"):
        self.inst = inst
        self.path = str(inst.root / f"{program}.sock")
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.status_r, status_w = os.pipe()
        lfd = self.sock.fileno()
        self.out_path = inst.root / f"{program}.out"
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c",
                 f'exec -a "$0" "$0" "$@" 3<&{lfd} 4>&{status_w} '
                 f"{lfd}<&- {status_w}>&-",
                 binary(program), "-c", str(inst.config_dir),
                 "-n", program, "-t", "unix"],
                pass_fds=(lfd, status_w), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=inst.env())
        os.close(status_w)

    def deliver(self, qid, nexthop, rcpts, sender=SENDER, timeout=60):
        reply = deliver_request(self.path, qid, sender, nexthop, rcpts,
                                timeout=timeout)
        assert reply.status == "0", reply.attrs
        assert len(reply.results) == len(rcpts), reply.attrs
        return reply

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.sock.close()
        os.close(self.status_r)
        return self.out_path.read_text(errors="replace")


@pytest.fixture
def relay(instance, dns):
    """Starts DNS, sinks and agents for a test and stops them after."""

    class Ctx:
        inst = instance
        agents = []
        sinks = []

        def zones(self, records, zones=None):
            srv = dns(records, zones)
            instance.write_main_cf(
                dns_forwarders=srv.forwarder,
                dns_lookup_timeout="10s",
                smtp_connect_timeout="5s",
                smtp_helo_timeout="10s",
                smtp_mail_timeout="10s",
                smtp_rcpt_timeout="10s",
                smtp_data_init_timeout="10s",
                smtp_data_xfer_timeout="10s",
                smtp_data_done_timeout="10s",
                smtp_quit_timeout="5s")
            return srv

        def agent(self, program="smtp"):
            a = Agent(instance, program)
            self.agents.append(a)
            return a

        def sink(self, host="127.0.0.2", port=0, **kw):
            s = SmtpSink(host, port, **kw).start()
            self.sinks.append(s)
            return s

        def queue(self, rcpts, content=CONTENT, sender=SENDER, attrs=()):
            return write_queue_file(instance.queue_dir, sender, rcpts,
                                    content, folder="active", attrs=attrs)

    ctx = Ctx()
    yield ctx
    for s in ctx.sinks:
        s.stop()
    for a in ctx.agents:
        out = a.stop()
        assert "AddressSanitizer" not in out and "runtime error" not in out, \
            out
        assert "panic:" not in out and "fatal:" not in out, out
    log = instance.log()
    assert "panic:" not in log and "fatal:" not in log, log


MX_B = ["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.2"]


# --- finding the server -------------------------------------------------

def test_mail_goes_to_the_mx_found_in_dns_byte_for_byte(relay):
    relay.zones(MX_B)
    sink = relay.sink()
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("sent", "2.0.0"), r.results
    assert reason == "250 2.0.0 Ok: queued as SINK"
    assert r.relay == f"mx.b.test[127.0.0.2]:{sink.port}"
    [m] = sink.wait_messages(1)
    assert m.data == crlf(CONTENT)
    assert m.mail_from == SENDER
    assert m.rcpts == ["bob@b.test"]
    assert m.helo == "mx.example.test"      # smtp_helo_name = $myhostname
    assert f"SIZE={len(CONTENT)}" in m.mail_line
    # QUIT ends the session politely.
    wait_quit(sink, 0)


def test_large_message_is_streamed_intact(relay):
    relay.zones(MX_B)
    sink = relay.sink()
    agent = relay.agent()
    # Lines starting with "." fall on every kind of chunk boundary.
    body = b"".join(b"." * (i % 5) + b"line %d\n" % i for i in range(40000))
    content = b"Subject: big\n\n" + body
    qid = relay.queue(["bob@b.test"], content=content)
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    [m] = sink.wait_messages(1)
    assert m.data == crlf(content)


def test_first_mx_refusing_connections_hands_over_to_the_second(relay):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    relay.zones(["b.test. MX 10 mx1.b.test.", "b.test. MX 20 mx2.b.test.",
                 "mx1.b.test. A 127.0.0.3", "mx2.b.test. A 127.0.0.2"])
    sink = relay.sink("127.0.0.2", port)
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert r.relay == f"mx2.b.test[127.0.0.2]:{port}"
    assert len(sink.wait_messages(1)) == 1


def test_all_mx_refusing_defers_with_the_connect_error(relay):
    port = free_port_on("127.0.0.3", "127.0.0.5")
    relay.zones(["b.test. MX 10 mx1.b.test.", "b.test. MX 20 mx2.b.test.",
                 "mx1.b.test. A 127.0.0.3", "mx2.b.test. A 127.0.0.5"])
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("deferred", "4.4.1"), r.results
    assert reason == (f"connect to mx2.b.test[127.0.0.5]:{port}: "
                      "Connection refused")
    assert r.relay == "none"


def test_domain_without_mx_gets_mail_at_its_address(relay):
    relay.zones(["a.test. A 127.0.0.2"])
    sink = relay.sink()
    agent = relay.agent()
    qid = relay.queue(["bob@a.test"])
    r = agent.deliver(qid, f"a.test:{sink.port}", ["bob@a.test"])
    assert r["bob@a.test"][0] == "sent", r.results
    assert r.relay == f"a.test[127.0.0.2]:{sink.port}"


def test_bracketed_next_hop_skips_mx(relay):
    # b.test's MX points nowhere useful; [b.test] means its own address.
    relay.zones(["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3",
                 "b.test. A 127.0.0.2"])
    sink = relay.sink()
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"[b.test]:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert r.relay == f"b.test[127.0.0.2]:{sink.port}"
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"[127.0.0.2]:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert r.relay == f"127.0.0.2[127.0.0.2]:{sink.port}"


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_inet_protocols_decides_between_ipv6_and_ipv4(relay):
    relay.zones(["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.2",
                 "mx.b.test. AAAA ::1"])
    v6 = relay.sink("::1")
    v4 = relay.sink("127.0.0.2", v6.port)
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{v6.port}", ["bob@b.test"])
    assert r.relay == f"mx.b.test[127.0.0.2]:{v6.port}"     # ipv4 only
    relay.inst.write_main_cf(inet_protocols="all")
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{v6.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert r.relay == f"mx.b.test[::1]:{v6.port}"           # IPv6 first
    assert len(v4.messages) == 1 and len(v6.messages) == 1


def test_null_mx_bounces_at_once_without_connecting(relay):
    relay.zones(["null.test. MX 0 .", "null.test. A 127.0.0.2"])
    sink = relay.sink()
    agent = relay.agent()
    qid = relay.queue(["bob@null.test"])
    r = agent.deliver(qid, f"null.test:{sink.port}", ["bob@null.test"])
    st, dsn, reason = r["bob@null.test"]
    assert (st, dsn) == ("bounced", "5.1.10"), r.results
    assert reason == "Domain null.test does not accept mail (nullMX)"
    time.sleep(0.2)
    assert sink.connections == 0


def test_nxdomain_bounces(relay):
    relay.zones(MX_B)
    agent = relay.agent()
    qid = relay.queue(["bob@nx.test"])
    r = agent.deliver(qid, "nx.test", ["bob@nx.test"])
    st, dsn, reason = r["bob@nx.test"]
    assert (st, dsn) == ("bounced", "5.1.2"), r.results
    assert reason == ("Host or domain name not found. Name service error "
                      "for name=nx.test type=MX: Host not found")


def test_servfail_defers_with_a_dns_reason_never_bounces(relay):
    relay.zones(MX_B, zones={"fail.test.": "always_refuse"})
    agent = relay.agent()
    qid = relay.queue(["bob@fail.test"])
    r = agent.deliver(qid, "fail.test", ["bob@fail.test"])
    st, dsn, reason = r["bob@fail.test"]
    assert (st, dsn) == ("deferred", "4.4.3"), r.results
    assert reason.startswith("Host or domain name not found. Name service "
                             "error for name=fail.test type=MX: Host not "
                             "found, try again")


def test_mx_host_without_address_bounces(relay):
    relay.zones(["b.test. MX 10 gone.b.test."])
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, "b.test", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("bounced", "5.4.4"), r.results
    assert "name=gone.b.test type=A: Host not found" in reason


# --- what the server says ---------------------------------------------

def test_4xx_defers_then_2xx_on_the_next_attempt_delivers(relay):
    relay.zones(MX_B)
    sink = relay.sink(rcpt={"bob@b.test": ["450 4.2.0 Try again later",
                                           "250 2.1.5 Ok"]})
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("deferred", "4.2.0"), r.results
    assert reason == ("host mx.b.test[127.0.0.2] said: 450 4.2.0 Try again "
                      "later (in reply to RCPT TO command)")
    assert sink.messages == []
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert len(sink.wait_messages(1)) == 1


def test_one_of_three_rejected_is_bounced_two_are_sent(relay):
    relay.zones(MX_B)
    sink = relay.sink(rcpt={
        "nobody@b.test": "550-5.1.1 <nobody@b.test>: Recipient address\n"
                         "550 5.1.1 rejected: User unknown"})
    agent = relay.agent()
    rcpts = ["bob@b.test", "nobody@b.test", "carol@b.test"]
    qid = relay.queue(rcpts)
    r = agent.deliver(qid, f"b.test:{sink.port}", rcpts)
    assert r["bob@b.test"][0] == "sent"
    assert r["carol@b.test"][0] == "sent"
    st, dsn, reason = r["nobody@b.test"]
    assert (st, dsn) == ("bounced", "5.1.1")
    assert reason == ("host mx.b.test[127.0.0.2] said: 550 5.1.1 "
                      "<nobody@b.test>: Recipient address rejected: User "
                      "unknown (in reply to RCPT TO command)")
    [m] = sink.wait_messages(1)
    assert m.rcpts == ["bob@b.test", "carol@b.test"]


def test_envelope_is_pipelined_only_when_offered(relay):
    relay.zones(MX_B)
    rcpts = ["bob@b.test", "nobody@b.test", "carol@b.test"]
    script = {"nobody@b.test": "550 5.1.1 User unknown"}
    for extensions, pipelined in ((SmtpSink.DEFAULT_EXTENSIONS, True),
                                  (("SIZE 10240000", "DSN"), False)):
        sink = relay.sink(extensions=extensions, rcpt=script)
        agent = relay.agent()
        qid = relay.queue(rcpts)
        r = agent.deliver(qid, f"b.test:{sink.port}", rcpts)
        assert [r[a][0] for a in rcpts] == ["sent", "bounced", "sent"]
        assert sink.sessions[0].pipelined is pipelined
        [m] = sink.wait_messages(1)
        assert m.rcpts == ["bob@b.test", "carol@b.test"]


def test_4xx_greeting_moves_on_to_the_next_mx(relay):
    port = free_port_on("127.0.0.2", "127.0.0.4")
    relay.zones(["b.test. MX 10 mx1.b.test.", "b.test. MX 20 mx2.b.test.",
                 "mx1.b.test. A 127.0.0.2", "mx2.b.test. A 127.0.0.4"])
    busy = relay.sink("127.0.0.2", port, greeting="421 4.3.2 Too busy")
    good = relay.sink("127.0.0.4", port)
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert r.relay == f"mx2.b.test[127.0.0.4]:{port}"
    assert busy.connections == 1 and busy.messages == []
    assert len(good.wait_messages(1)) == 1


def test_only_server_greeting_4xx_defers_with_its_words(relay):
    relay.zones(MX_B)
    sink = relay.sink(greeting="554 5.7.1 Go away")
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    # A server that will not talk says nothing final about the mailbox.
    assert (st, dsn) == ("deferred", "4.7.1"), r.results
    assert reason == ("host mx.b.test[127.0.0.2] refused to talk to me: "
                      "554 5.7.1 Go away")


def test_mail_from_rejection_bounces_every_recipient(relay):
    relay.zones(MX_B)
    sink = relay.sink(mail="553 5.7.1 Sender refused")
    agent = relay.agent()
    rcpts = ["bob@b.test", "carol@b.test"]
    qid = relay.queue(rcpts)
    r = agent.deliver(qid, f"b.test:{sink.port}", rcpts)
    for a in rcpts:
        st, dsn, reason = r[a]
        assert (st, dsn) == ("bounced", "5.7.1"), r.results
        assert reason.endswith("(in reply to MAIL FROM command)")
    wait_quit(sink, 0)


def test_rejection_after_data_applies_to_all_recipients(relay):
    relay.zones(MX_B)
    sink = relay.sink(done="554 5.6.0 Message content rejected")
    agent = relay.agent()
    rcpts = ["bob@b.test", "carol@b.test"]
    qid = relay.queue(rcpts)
    r = agent.deliver(qid, f"b.test:{sink.port}", rcpts)
    for a in rcpts:
        st, dsn, reason = r[a]
        assert (st, dsn) == ("bounced", "5.6.0"), r.results
        assert reason.endswith("(in reply to end of DATA command)")


def test_ehlo_refused_falls_back_to_helo_without_extensions(relay):
    relay.zones(MX_B)
    sink = relay.sink(ehlo="502 5.5.2 EHLO not supported")
    agent = relay.agent()
    qid = relay.queue([("bob@b.test", "SUCCESS", None)],
                      attrs=[("envid", "E1"), ("ret", "HDRS")])
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    cmds = sink.sessions[0].commands
    assert cmds[0].startswith("EHLO ") and cmds[1].startswith("HELO ")
    [m] = sink.wait_messages(1)
    assert m.mail_line == f"MAIL FROM:<{SENDER}>"
    assert m.rcpt_lines == ["RCPT TO:<bob@b.test>"]


def test_dsn_parameters_are_sent_only_when_offered(relay):
    relay.zones(MX_B)
    rcpts = [("bob@b.test", "SUCCESS,FAILURE", "rfc822;orig+x@b.test"),
             ("carol@b.test", "NEVER", None)]
    attrs = [("envid", "QQ 1+2"), ("ret", "HDRS")]
    with_dsn = relay.sink()
    agent = relay.agent()
    qid = relay.queue(rcpts, attrs=attrs)
    r = agent.deliver(qid, f"b.test:{with_dsn.port}",
                      ["bob@b.test", "carol@b.test"])
    assert {v[0] for v in r.results.values()} == {"sent"}, r.results
    [m] = with_dsn.wait_messages(1)
    assert " RET=HDRS" in m.mail_line
    assert " ENVID=QQ+201+2B2" in m.mail_line
    assert m.rcpt_lines == [
        "RCPT TO:<bob@b.test> NOTIFY=SUCCESS,FAILURE "
        "ORCPT=rfc822;orig+2Bx@b.test",
        "RCPT TO:<carol@b.test> NOTIFY=NEVER ORCPT=rfc822;carol@b.test"]

    without = relay.sink(extensions=("PIPELINING", "SIZE 10240000",
                                     "8BITMIME"))
    qid = relay.queue(rcpts, attrs=attrs)
    r = agent.deliver(qid, f"b.test:{without.port}",
                      ["bob@b.test", "carol@b.test"])
    assert {v[0] for v in r.results.values()} == {"sent"}, r.results
    [m] = without.wait_messages(1)
    assert "RET=" not in m.mail_line and "ENVID=" not in m.mail_line
    assert m.rcpt_lines == ["RCPT TO:<bob@b.test>", "RCPT TO:<carol@b.test>"]


def test_8bitmime_body_is_declared_when_offered(relay):
    relay.zones(MX_B)
    sink = relay.sink()
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"], attrs=[("body", "8BITMIME")])
    agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    [m] = sink.wait_messages(1)
    assert " BODY=8BITMIME" in m.mail_line


def test_message_over_the_servers_size_limit_bounces_unsent(relay):
    relay.zones(MX_B)
    sink = relay.sink(extensions=("PIPELINING", "SIZE 100"))
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("bounced", "5.3.4"), r.results
    assert reason == (f"message size {len(CONTENT)} exceeds size limit 100 "
                      "of server mx.b.test[127.0.0.2]")
    assert not any(c.startswith("MAIL") for c in sink.sessions[0].commands)


def test_utf8_address_needs_smtputf8(relay):
    relay.zones(MX_B)
    plain = relay.sink(extensions=("PIPELINING", "8BITMIME"))
    agent = relay.agent()
    qid = relay.queue(["bjørn@b.test"], attrs=[("smtputf8", "yes")])
    r = agent.deliver(qid, f"b.test:{plain.port}", ["bjørn@b.test"])
    st, dsn, reason = r["bjørn@b.test"]
    assert (st, dsn) == ("bounced", "5.6.7"), r.results
    assert "SMTPUTF8 is required" in reason

    utf8 = relay.sink()
    qid = relay.queue(["bjørn@b.test"], attrs=[("smtputf8", "yes")])
    r = agent.deliver(qid, f"b.test:{utf8.port}", ["bjørn@b.test"])
    assert r["bjørn@b.test"][0] == "sent", r.results
    [m] = utf8.wait_messages(1)
    assert m.mail_line.endswith(" SMTPUTF8")
    assert m.rcpts == ["bjørn@b.test"]


def test_slow_final_reply_crosses_the_data_done_timeout(relay):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_data_done_timeout="1s")
    sink = relay.sink(delay=3)
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    t0 = time.monotonic()
    r = agent.deliver(qid, f"b.test:{sink.port}", ["bob@b.test"])
    assert time.monotonic() - t0 < 3
    st, dsn, reason = r["bob@b.test"]
    # The message may have arrived: defer (at-least-once), never bounce,
    # and do not try another server now.
    assert (st, dsn) == ("deferred", "4.4.2"), r.results
    assert reason == ("conversation timed out with mx.b.test[127.0.0.2] "
                      "while sending end of data -- message may be sent "
                      "more than once")


# --- LMTP -----------------------------------------------------------------

def test_lmtp_over_a_unix_socket_gives_per_recipient_results(relay):
    relay.zones(MX_B)
    path = str(relay.inst.root / "lmtp-server.sock")
    sink = relay.sink(unix_path=path, lmtp=True, lmtp_done={
        "carol@b.test": "452 4.2.2 Mailbox full",
        "dave@b.test": "550 5.1.1 No such mailbox"})
    agent = relay.agent("lmtp")
    rcpts = ["bob@b.test", "carol@b.test", "dave@b.test"]
    qid = relay.queue(rcpts)
    r = agent.deliver(qid, f"unix:{path}", rcpts)
    assert r["bob@b.test"][:2] == ("sent", "2.0.0"), r.results
    assert r["carol@b.test"] == (
        "deferred", "4.2.2", f"host localhost[{path}] said: 452 4.2.2 "
        "Mailbox full (in reply to end of DATA command)")
    assert r["dave@b.test"][:2] == ("bounced", "5.1.1")
    assert r.relay == f"localhost[{path}]"
    [m] = sink.wait_messages(1)
    assert m.rcpts == ["bob@b.test"]
    assert m.data == crlf(CONTENT)
    assert sink.sessions[0].commands[0].startswith("LHLO ")


def test_lmtp_over_tcp(relay):
    relay.zones(MX_B)
    sink = relay.sink(lmtp=True)
    agent = relay.agent("lmtp")
    rcpts = ["bob@b.test", "carol@b.test"]
    qid = relay.queue(rcpts)
    r = agent.deliver(qid, f"inet:127.0.0.2:{sink.port}", rcpts)
    assert {v[0] for v in r.results.values()} == {"sent"}, r.results
    assert r.relay == f"127.0.0.2[127.0.0.2]:{sink.port}"
    [m] = sink.wait_messages(1)
    assert m.rcpts == rcpts


def test_lmtp_client_does_not_speak_smtp_to_an_smtp_server(relay):
    relay.zones(MX_B)
    sink = relay.sink()     # an SMTP server: LHLO is "500"
    agent = relay.agent("lmtp")
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"inet:127.0.0.2:{sink.port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "deferred", r.results
    assert "in reply to LHLO command" in r["bob@b.test"][2]
    assert sink.messages == []
