"""
Connection reuse in the smtp client: one agent process, one connection
from "qmgr" (this test) carrying several delivery requests one after
another, and a scripted sink that counts TCP connections. A healthy
session is kept for smtp_connection_cache_time_limit and carries the
next message to the same next hop after RSET; a kept session that went
stale costs a new connection, never a message; when qmgr's connection
ends the kept sessions end with QUIT.
"""
import socket
import time

from queuefile import (DeliverReply, attr_escape, attr_unescape, xtext)
from test_smtp import CONTENT, MX_B, crlf, relay, wait_quit  # noqa: F401


class AgentConn:
    """One connection to an agent's socket, as qmgr holds it, carrying
    lib/deliver.h requests one after another."""

    def __init__(self, agent, timeout=60):
        self.c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.c.settimeout(timeout)
        self.c.connect(agent.path)
        self.buf = b""

    def deliver(self, qid, nexthop, rcpts, sender="alice@example.test"):
        lines = ["request=deliver", "queue_id=" + qid, "folder=active",
                 "sender=" + attr_escape(sender),
                 "nexthop=" + attr_escape(nexthop)]
        lines += ["rcpt=%d %s" % (i, xtext(r)) for i, r in enumerate(rcpts)]
        self.c.sendall(("\n".join(lines) + "\n\n").encode())
        while b"\n\n" not in self.buf:
            chunk = self.c.recv(65536)
            if not chunk:
                raise AssertionError("agent closed: %r" % self.buf)
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n\n", 1)
        attrs = [(n, attr_unescape(v)) for n, v in
                 (line.split("=", 1) for line in raw.decode().splitlines())]
        reply = DeliverReply(list(rcpts), attrs)
        assert reply.status == "0", attrs
        return reply

    def close(self):
        self.c.close()


def deliver_sent(relay, conn, nexthop, rcpt="bob@b.test"):
    qid = relay.queue([rcpt])
    r = conn.deliver(qid, nexthop, [rcpt])
    st, dsn, reason = r[rcpt]
    assert (st, dsn) == ("sent", "2.0.0"), r.results
    return r


def test_second_message_to_the_same_next_hop_rides_the_same_connection(
        relay):
    relay.zones(MX_B)
    sink = relay.sink()
    agent = AgentConn(relay.agent())
    hop = f"b.test:{sink.port}"
    r1 = deliver_sent(relay, agent, hop)
    r2 = deliver_sent(relay, agent, hop)
    assert r1.relay == r2.relay == f"mx.b.test[127.0.0.2]:{sink.port}"
    msgs = sink.wait_messages(2)
    assert sink.connections == 1
    assert [m.data for m in msgs] == [crlf(CONTENT)] * 2
    cmds = sink.sessions[0].commands
    # One greeting, one EHLO; RSET before the second MAIL FROM.
    assert [c.split()[0] for c in cmds if c.split()[0] in
            ("EHLO", "HELO", "RSET", "MAIL")] == \
        ["EHLO", "MAIL", "RSET", "MAIL"], cmds
    wait_quit(sink, 0)


def test_a_different_next_hop_gets_its_own_connection(relay):
    relay.zones(MX_B + ["c.test. MX 10 mx.b.test."])
    sink = relay.sink()
    agent = AgentConn(relay.agent())
    deliver_sent(relay, agent, f"b.test:{sink.port}")
    deliver_sent(relay, agent, f"c.test:{sink.port}", "carol@c.test")
    assert sink.connections == 2
    # Both are kept: b.test's session is still there for b.test.
    deliver_sent(relay, agent, f"b.test:{sink.port}")
    sink.wait_messages(3)
    assert sink.connections == 2
    assert [m.rcpts for m in sink.messages] == \
        [["bob@b.test"], ["carol@c.test"], ["bob@b.test"]]
    assert "RSET" in sink.sessions[0].commands
    assert "RSET" not in sink.sessions[1].commands


def test_server_that_hung_up_meanwhile_costs_a_connection_not_a_message(
        relay):
    relay.zones(MX_B)
    sink = relay.sink(hangup_after_message=True)
    agent = AgentConn(relay.agent())
    hop = f"b.test:{sink.port}"
    deliver_sent(relay, agent, hop)
    sink.wait_messages(1)
    deliver_sent(relay, agent, hop)
    sink.wait_messages(2)
    assert sink.connections == 2
    assert "RSET" not in sink.sessions[1].commands


def test_kept_session_refusing_rset_is_replaced(relay):
    relay.zones(MX_B)
    sink = relay.sink(rset=["421 4.4.2 sink.test Error: timeout exceeded",
                            "250 2.0.0 Ok"])
    agent = AgentConn(relay.agent())
    hop = f"b.test:{sink.port}"
    deliver_sent(relay, agent, hop)
    deliver_sent(relay, agent, hop)
    sink.wait_messages(2)
    assert sink.connections == 2
    assert sink.sessions[0].commands[-1] == "RSET"
    assert "RSET" not in sink.sessions[1].commands


def test_session_past_the_time_limit_is_closed_and_not_reused(relay):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_connection_cache_time_limit="1s")
    sink = relay.sink()
    agent = AgentConn(relay.agent())
    hop = f"b.test:{sink.port}"
    deliver_sent(relay, agent, hop)
    # Closed with QUIT when its second is up, with no request coming.
    t0 = time.monotonic()
    wait_quit(sink, 0, timeout=5)
    assert time.monotonic() - t0 < 3
    deliver_sent(relay, agent, hop)
    sink.wait_messages(2)
    assert sink.connections == 2
    assert "RSET" not in sink.sessions[0].commands


def test_no_reuse_when_the_cache_is_off(relay):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_connection_cache_on_demand="no")
    sink = relay.sink()
    agent = AgentConn(relay.agent())
    hop = f"b.test:{sink.port}"
    deliver_sent(relay, agent, hop)
    # QUIT at once, not after a time limit.
    assert sink.sessions[0].commands[-1] == "QUIT"
    deliver_sent(relay, agent, hop)
    assert sink.connections == 2


def test_kept_session_ends_with_quit_when_qmgr_closes_its_connection(
        relay):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_connection_cache_time_limit="60s")
    sink = relay.sink()
    agent = AgentConn(relay.agent())
    deliver_sent(relay, agent, f"b.test:{sink.port}")
    time.sleep(0.3)
    assert sink.sessions[0].commands[-1] != "QUIT"
    agent.close()
    wait_quit(sink, 0, timeout=5)


def test_requests_on_separate_qmgr_connections_do_not_share_a_session(
        relay):
    # Each connection qmgr holds to an agent is one delivery slot: an
    # idle agent process holding a session would put the destination
    # over its concurrency limit, counted at the receiver.
    relay.zones(MX_B)
    sink = relay.sink()
    agent = relay.agent()
    for _ in range(2):
        conn = AgentConn(agent)
        deliver_sent(relay, conn, f"b.test:{sink.port}")
        conn.close()
        wait_quit(sink, sink.connections - 1, timeout=5)
    assert sink.connections == 2
    assert "RSET" not in sink.sessions[1].commands
