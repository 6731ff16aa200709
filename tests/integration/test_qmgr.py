"""
qmgr on its own: a real qmgr process, started stand-alone with its
listening socket on descriptor 3 (as master would give it), a queue
folder filled by a Python writer of the documented queue file format
(lib/queue.h), and a FAKE local delivery agent: a Unix-socket server at
private/local that speaks lib/deliver.h and answers sent / deferred /
bounced as each test scripts it. What is checked is what an operator
sees: files moving between queue folders, next-try times, notes in the
file, log lines, and delivery status notifications that Python's email
package parses as multipart/report.
"""
import email
import email.policy
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import binary
# xtext (RFC 3461, queue files) and lib/attr.h escapes, shared.
from queuefile import attr_escape, attr_unescape, unxtext, xtext


# ---- queue files ----

FOLDERS = ("incoming", "active", "deferred", "hold", "corrupt", "maildrop")


def write_queue_file(queue_dir, sender, rcpts, content, folder="incoming",
                     arrival=None, attrs=()):
    """Write a complete queue file the way queue_commit() does: a
    temporary name, fsync, rename to its queue ID. rcpts: addresses or
    (address, notify, orcpt) tuples. Returns the queue ID."""
    if arrival is None:
        arrival = time.time()
    if isinstance(content, str):
        content = content.encode()
    lines = ["TERN 1", "T %d.%06d" % (int(arrival),
                                       int((arrival % 1) * 1e6)),
             "S " + xtext(sender)]
    for name, value in attrs:
        lines.append("A %s=%s" % (xtext(name), xtext(value)))
    for r in rcpts:
        addr, notify, orcpt = (r, None, None) if isinstance(r, str) else r
        lines.append("R R %s %s %s" % (notify or "-",
                                       xtext(orcpt) if orcpt else "-",
                                       xtext(addr)))
    lines.append("M %020d" % len(content))
    data = ("\n".join(lines) + "\n").encode() + content + b"E\n"
    d = os.path.join(str(queue_dir), folder)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".tmp-test-%d-%f" % (os.getpid(), time.time()))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        ino = os.fstat(f.fileno()).st_ino
    qid = "%013X%X" % (int(arrival * 1e6), ino)
    os.rename(tmp, os.path.join(d, qid))
    return qid


def read_queue_file(path):
    """(envelope dict, content bytes, notes list) of a queue file."""
    with open(path, "rb") as f:
        data = f.read()
    env = {"rcpts": [], "attrs": {}}
    pos = 0
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode()
        pos = end + 1
        if line.startswith("S "):
            env["sender"] = unxtext(line[2:])
        elif line.startswith("A "):
            k, v = line[2:].split("=", 1)
            env["attrs"][unxtext(k)] = unxtext(v)
        elif line.startswith("R "):
            _, st, notify, orcpt, addr = line.split(" ")
            env["rcpts"].append((st, unxtext(addr)))
        elif line.startswith("M "):
            n = int(line[2:])
            break
    content = data[pos:pos + n]
    assert data[pos + n:pos + n + 2] == b"E\n"
    notes = []
    for line in data[pos + n + 2:].decode().splitlines():
        _, idx, dsn, reason = line.split(" ")
        notes.append((int(idx), unxtext(dsn), unxtext(reason)))
    return env, content, notes


def where(queue_dir, qid):
    """Folders that hold qid right now."""
    return [f for f in FOLDERS
            if os.path.exists(os.path.join(str(queue_dir), f, qid))]


# ---- the fake local delivery agent ----

class FakeAgent:
    """Listens on private/local and answers delivery requests. script(addr,
    request) returns ("sent"|"deferred"|"bounced", dsn, reason), or the
    whole request may be answered with "die" (close without a reply) or
    "hang" (never answer) by returning that string. Each request is
    recorded with the message content read from active/, as the real
    agent reads it."""

    def __init__(self, queue_dir, script=None, delay=0.0, service="local",
                 relay="local", many=False):
        self.queue_dir = str(queue_dir)
        self.many = many
        self.batches = []
        self.relay = relay
        self.script = script or (lambda a, r: ("sent", "2.0.0",
                                               "delivered to maildir"))
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        path = os.path.join(self.queue_dir, "private", service)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _parse(self, raw):
        req = {"rcpt": []}
        for line in raw.decode().split("\n"):
            name, value = line.split("=", 1)
            value = attr_unescape(value)
            if name == "rcpt":
                idx, addr = value.split(" ", 1)
                req["rcpt"].append((int(idx), unxtext(addr)))
            else:
                req[name] = value
        path = os.path.join(self.queue_dir, req.get("folder", ""),
                            req.get("queue_id", ""))
        try:
            req["content"] = read_queue_file(path)[1]
        except (OSError, ValueError, AssertionError):
            req["content"] = None
        return req

    def _handle(self, conn):
        """One request per connection, then close (many=False); or, like
        the real agents, requests until qmgr closes (many=True): each turn
        takes the requests already sent after the delay and answers them
        in order, and self.batches records how many that was."""
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        buf = b""
        try:
            conn.settimeout(10)
            while True:
                while b"\n\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                raw, buf = buf.split(b"\n\n", 1)
                batch = [self._parse(raw)]
                with self.lock:
                    self.requests.append(batch[0])
                if self.delay:
                    time.sleep(self.delay)
                conn.setblocking(False)
                try:
                    while data := conn.recv(65536):
                        buf += data
                except BlockingIOError:
                    pass
                conn.settimeout(10)
                # What qmgr has sent so far is this turn's batch; an agent
                # of one request per connection answers its first only.
                received = 1 + buf.count(b"\n\n")
                while self.many and b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    batch.append(self._parse(raw))
                with self.lock:
                    self.requests.extend(batch[1:])
                    self.batches.append(received)
                for req in batch:
                    answers = [(i, self.script(a, req))
                               for i, a in req["rcpt"]]
                    if any(ans == "die" for _, ans in answers):
                        return
                    if any(ans == "hang" for _, ans in answers):
                        time.sleep(30)
                        return
                    out = []
                    for i, (status, dsn, reason) in answers:
                        out.append("result=" + attr_escape(
                            "%d %s %s %s" % (i, status, dsn,
                                             xtext(reason))))
                    out.append("relay=" + attr_escape(
                        self.relay(req) if callable(self.relay)
                        else self.relay))
                    out.append("status=0")
                    conn.sendall(("\n".join(out) + "\n\n").encode())
                if not self.many:
                    return
        except OSError:
            pass
        finally:
            with self.lock:
                self.running -= 1
            conn.close()

    def rcpts(self):
        with self.lock:
            return [a for r in self.requests for _, a in r["rcpt"]]


# ---- qmgr started stand-alone ----

class Qmgr:
    """qmgr with its listening socket on descriptor 3, as master starts
    it, but run directly by the test."""

    def __init__(self, inst, wakeup=300):
        self.inst = inst
        self.path = os.path.join(str(inst.queue_dir), "public", "qmgr")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        fd = self.sock.fileno()
        # master's status pipe: qmgr writes busy/idle notes to 4 and
        # stops when the read end closes, as when master goes away.
        self.status_r, status_w = os.pipe()
        self.stderr = open(os.path.join(str(inst.root), "qmgr.stderr"),
                           "ab")

        def to_fd3():
            os.dup2(fd, 3)
            os.dup2(status_w, 4)
            os.closerange(5, 65536)

        self.proc = subprocess.Popen(
            [binary("qmgr"), "-c", str(inst.config_dir), "-n", "qmgr",
             "-t", "unix", "-w", str(wakeup)],
            stdin=subprocess.DEVNULL, stdout=self.stderr,
            stderr=self.stderr, preexec_fn=to_fd3, close_fds=False,
            env=inst.env())
        os.close(status_w)

    def request(self, **attrs):
        """Send one request; the reply as a dict."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.path)
        s.sendall(("".join("%s=%s\n" % (k, attr_escape(v))
                           for k, v in attrs.items()) + "\n").encode())
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return dict(line.split("=", 1)
                    for line in data.decode().splitlines() if line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        os.close(self.status_r)
        self.sock.close()
        self.stderr.close()


@pytest.fixture
def q(instance):
    """The instance, a fake agent and a way to start qmgr; cleaned up."""
    class Ctx:
        pass
    ctx = Ctx()
    ctx.inst = instance
    ctx.queue = instance.queue_dir
    ctx.agent = None
    ctx.agents = []
    ctx.qmgr = None
    instance.write_main_cf(minimal_backoff_time="300s",
                           maximal_backoff_time="4000s",
                           queue_run_delay="300s",
                           daemon_timeout="30s")

    def start_agent(script=None, delay=0.0, service="local", relay="local",
                    many=False):
        agent = FakeAgent(ctx.queue, script, delay, service, relay, many)
        ctx.agents.append(agent)
        if service == "local":
            ctx.agent = agent
        return agent

    def start_qmgr(wakeup=300):
        ctx.qmgr = Qmgr(instance, wakeup)
        return ctx.qmgr

    ctx.start_agent = start_agent
    ctx.start_qmgr = start_qmgr
    yield ctx
    if ctx.qmgr is not None:
        ctx.qmgr.stop()
    for agent in ctx.agents:
        agent.stop()


def wait_log(inst, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in inst.log():
            return
        time.sleep(0.05)
    err = inst.root / "qmgr.stderr"
    pytest.fail(f"timed out after {timeout}s waiting for a log line "
                f"containing {text!r}\nlog:\n{inst.log()}\nqmgr stderr:\n"
                + (err.read_text() if err.exists() else ""))


def log_line(inst, *parts):
    """The first log line that contains every part."""
    for line in inst.log().splitlines():
        if all(p in line for p in parts):
            return line
    return None


MESSAGE = ("From: Alice <alice@example.test>\n"
           "To: demo@example.test\n"
           "Subject: qmgr test\n"
           "Message-ID: <qmgr-test@example.test>\n"
           "\n"
           "Hello from the qmgr test.\n")


def sent(addr, req):
    return ("sent", "2.0.0", "delivered to maildir")


# ---- tests ----

def test_sent_message_is_delivered_removed_and_logged(q):
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert where(q.queue, qid) == []
    assert len(agent.requests) == 1
    req = agent.requests[0]
    assert req["request"] == "deliver"
    assert req["queue_id"] == qid
    assert req["folder"] == "active"
    assert req["sender"] == "alice@example.test"
    assert req["nexthop"] == "example.test"
    assert req["rcpt"] == [(0, "demo@example.test")]
    assert req["content"] == MESSAGE.encode()
    assert log_line(q.inst, f"{qid}: from=<alice@example.test>, "
                    f"size={len(MESSAGE)}, nrcpt=1 (queue active)")
    line = log_line(q.inst, f"{qid}: to=<demo@example.test>, relay=local, "
                    "delay=")
    assert line is not None, q.inst.log()
    assert "delays=" in line and line.count("/") >= 3
    assert line.endswith("dsn=2.0.0, status=sent (delivered to maildir)")
    # the Postfix order of the life of a message
    log = q.inst.log()
    assert log.index("(queue active)") < log.index("status=sent") < \
        log.index(f"{qid}: removed")


def test_new_request_picks_up_incoming_promptly(q):
    agent = q.start_agent()
    qm = q.start_qmgr(wakeup=300)   # no periodic scan during the test
    # answered: qmgr is past its start-up scan of the empty queue
    assert qm.request(request="flush") == {"status": "0"}
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    reply = qm.request(request="new", queue_id=qid)
    assert reply == {"status": "0"}
    wait_log(q.inst, f"{qid}: removed", timeout=5)
    assert agent.rcpts() == ["demo@example.test"]


def test_a_request_with_reply_no_gets_no_answer(q):
    """smtpd's "new" carries reply=no and does not wait: qmgr acts on it
    without answering; a later request on the same connection is
    answered as usual."""
    agent = q.start_agent()
    qm = q.start_qmgr(wakeup=300)
    assert qm.request(request="flush") == {"status": "0"}
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(qm.path)
    s.sendall(f"request=new\nqueue_id={qid}\nreply=no\n\n"
              "request=flush\n\n".encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data == b"status=0\n\n"          # the flush's answer only
    wait_log(q.inst, f"{qid}: removed", timeout=5)
    assert agent.rcpts() == ["demo@example.test"]


def test_bad_request_gets_an_error_status(q):
    q.start_agent()
    qm = q.start_qmgr()
    time.sleep(0.3)
    reply = qm.request(request="frobnicate")
    assert reply["status"] == "1"
    # qmgr is still there and answers the next one
    assert qm.request(request="flush") == {"status": "0"}


def test_deferred_goes_to_deferred_with_future_mtime_and_note(q):
    agent = q.start_agent(lambda a, r: ("deferred", "4.2.0",
                                        "mailbox busy, try later"))
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, "status=deferred (mailbox busy, try later)")
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    path = os.path.join(str(q.queue), "deferred", qid)
    # a young message waits minimal_backoff_time (300s)
    assert os.stat(path).st_mtime > time.time() + 250
    env, content, notes = read_queue_file(path)
    assert env["rcpts"] == [("R", "demo@example.test")]
    assert notes[-1] == (0, "4.2.0", "mailbox busy, try later")
    assert content == MESSAGE.encode()
    assert len(agent.requests) == 1
    assert f"{qid}: removed" not in q.inst.log()


def test_backoff_grows_with_the_message_age(q):
    q.start_agent(lambda a, r: ("deferred", "4.2.0", "busy"))
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE,
                           arrival=time.time() - 1000)
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    wait = os.stat(os.path.join(str(q.queue), "deferred", qid)).st_mtime \
        - time.time()
    # 1000s old: next try in about 1000s (between 300s and 4000s)
    assert 950 < wait < 1050


def test_deferred_mail_is_retried_when_its_time_comes(q):
    q.inst.write_main_cf(minimal_backoff_time="1s",
                         maximal_backoff_time="1s", queue_run_delay="1s")
    answers = [("deferred", "4.2.0", "busy")]
    agent = q.start_agent(
        lambda a, r: answers.pop() if answers else ("sent", "2.0.0", "ok"))
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed", timeout=10)
    assert len(agent.requests) == 2
    assert log_line(q.inst, qid, "status=deferred (busy)")


def test_flush_request_moves_deferred_mail_back_and_delivers_it(q):
    answer = {"status": ("deferred", "4.2.0", "mailbox busy")}
    agent = q.start_agent(lambda a, r: answer["status"])
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    qm = q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    answer["status"] = ("sent", "2.0.0", "delivered to maildir")
    assert qm.request(request="flush") == {"status": "0"}
    wait_log(q.inst, f"{qid}: removed")
    assert where(q.queue, qid) == []
    assert len(agent.requests) == 2
    assert log_line(q.inst, qid, "status=sent")


def test_deliver_request_retries_one_message(q):
    answer = {"status": ("deferred", "4.2.0", "mailbox busy")}
    q.start_agent(lambda a, r: answer["status"])
    one = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    two = write_queue_file(q.queue, "alice@example.test",
                           ["bob@example.test"], MESSAGE)
    qm = q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, one) == ["deferred"] and
                    where(q.queue, two) == ["deferred"],
                    what="both deferred")
    answer["status"] = ("sent", "2.0.0", "delivered")
    assert qm.request(request="deliver", queue_id=two) == {"status": "0"}
    wait_log(q.inst, f"{two}: removed")
    assert where(q.queue, one) == ["deferred"]


def test_bounce_queues_a_dsn_that_email_parses_as_multipart_report(q):
    def script(addr, req):
        if addr == "bob@example.test":
            return ("bounced", "5.1.1", "unknown user: \"bob\"")
        return ("sent", "2.0.0", "delivered to maildir")
    agent = q.start_agent(script)
    qid = write_queue_file(
        q.queue, "alice@example.test",
        ["demo@example.test",
         ("bob@example.test", "FAILURE", "rfc822;Bob@Example.TEST")],
        MESSAGE, attrs=[("envid", "ENV-123")])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: sender non-delivery notification: ")
    wait_log(q.inst, f"{qid}: removed")
    assert log_line(q.inst, f"{qid}: to=<bob@example.test>",
                    "dsn=5.1.1, status=bounced (unknown user: \"bob\")")
    new_id = log_line(q.inst, "sender non-delivery notification").split(
        "notification: ")[1].strip()
    # The report is delivered like any mail: from <> to alice.
    wait_log(q.inst, f"{new_id}: removed")
    dsn_req = [r for r in agent.requests if r["queue_id"] == new_id]
    assert len(dsn_req) == 1
    assert dsn_req[0]["sender"] == ""
    assert dsn_req[0]["rcpt"] == [(0, "alice@example.test")]
    assert log_line(q.inst, f"{new_id}: from=<>")

    msg = email.message_from_bytes(dsn_req[0]["content"],
                                   policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"] == "alice@example.test"
    assert msg["From"].addresses[0].addr_spec == \
        "MAILER-DAEMON@mx.example.test"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"] and msg["Date"]
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "message/rfc822"]
    assert "bob@example.test" in parts[0].get_content()
    status = parts[1].get_payload()
    assert status[0]["Reporting-MTA"] == "dns; mx.example.test"
    assert status[0]["X-Tern-Queue-ID"] == qid
    assert status[0]["Original-Envelope-Id"] == "ENV-123"
    assert status[0]["Arrival-Date"]
    assert len(status) == 2     # only bob failed
    assert status[1]["Final-Recipient"] == "rfc822; bob@example.test"
    assert status[1]["Original-Recipient"] == "rfc822; Bob@Example.TEST"
    assert status[1]["Action"] == "failed"
    assert status[1]["Status"] == "5.1.1"
    assert status[1]["Diagnostic-Code"].startswith("x-unix; unknown user")
    original = parts[2].get_payload()[0]
    assert original["Subject"] == "qmgr test"
    assert "Hello from the qmgr test." in original.get_content()


def test_ret_hdrs_dsn_returns_only_the_headers(q):
    def script(addr, req):
        if addr == "bob@example.test":
            return ("bounced", "5.1.1", "unknown user")
        return ("sent", "2.0.0", "delivered to maildir")
    agent = q.start_agent(script)
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["bob@example.test"], MESSAGE,
                           attrs=[("ret", "HDRS")])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: sender non-delivery notification: ")
    new_id = log_line(q.inst, "sender non-delivery notification").split(
        "notification: ")[1].strip()
    wait_log(q.inst, f"{new_id}: removed")
    req = [r for r in agent.requests if r["queue_id"] == new_id][0]
    msg = email.message_from_bytes(req["content"],
                                   policy=email.policy.default)
    parts = list(msg.iter_parts())
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: qmgr test" in req["content"]
    assert b"Hello from the qmgr test." not in req["content"]


def test_null_sender_bounce_makes_no_dsn(q):
    agent = q.start_agent(lambda a, r: ("bounced", "5.1.1", "unknown user"))
    qid = write_queue_file(q.queue, "", ["nobody@example.test"], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert log_line(q.inst, qid, "status=bounced")
    assert "non-delivery notification" not in q.inst.log()
    time.sleep(0.5)
    assert len(agent.requests) == 1
    for f in FOLDERS:
        d = os.path.join(str(q.queue), f)
        if os.path.isdir(d):
            assert [n for n in os.listdir(d) if not n.startswith(".")] == []


def test_notify_never_makes_no_dsn(q):
    agent = q.start_agent(lambda a, r: ("bounced", "5.1.1", "unknown user"))
    qid = write_queue_file(q.queue, "alice@example.test",
                           [("bob@example.test", "NEVER", None)], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert "sender non-delivery notification" not in q.inst.log()
    assert len(agent.requests) == 1


def test_expired_message_returns_dsn_with_5_4_7(q):
    def script(addr, req):
        if addr == "bob@example.test":
            return ("deferred", "4.2.2", "mailbox full")
        return ("sent", "2.0.0", "delivered to maildir")
    agent = q.start_agent(script)
    six_days_ago = time.time() - 6 * 86400
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["bob@example.test"], MESSAGE,
                           arrival=six_days_ago)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: from=<alice@example.test>, status=expired, "
             "returned to sender")
    wait_log(q.inst, f"{qid}: removed")
    new_id = log_line(q.inst, "sender non-delivery notification").split(
        "notification: ")[1].strip()
    wait_log(q.inst, f"{new_id}: removed")
    req = [r for r in agent.requests if r["queue_id"] == new_id][0]
    msg = email.message_from_bytes(req["content"],
                                   policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    status = list(msg.iter_parts())[1].get_payload()
    assert status[1]["Status"] == "5.4.7"
    assert status[1]["Action"] == "failed"
    assert "message expired: mailbox full" in status[1]["Diagnostic-Code"]


def test_expired_null_sender_mail_is_dropped_without_dsn(q):
    q.inst.write_main_cf(bounce_queue_lifetime="1d")
    q.start_agent(lambda a, r: ("deferred", "4.2.2", "mailbox full"))
    qid = write_queue_file(q.queue, "", ["bob@example.test"], MESSAGE,
                           arrival=time.time() - 2 * 86400)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert log_line(q.inst, qid, "status=expired")
    assert "sender non-delivery notification" not in q.inst.log()


def test_corrupt_file_is_moved_to_corrupt_never_deleted(q):
    q.start_agent()
    qid = "%013X%X" % (int(time.time() * 1e6), 4242)
    d = os.path.join(str(q.queue), "incoming")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, qid), "wb") as f:
        f.write(b"this is not a queue file\n")
    q.start_qmgr()
    wait_log(q.inst, f"warning: corrupt queue file {qid} moved to corrupt/")
    assert where(q.queue, qid) == ["corrupt"]
    with open(os.path.join(str(q.queue), "corrupt", qid), "rb") as f:
        assert f.read() == b"this is not a queue file\n"


def test_file_left_in_active_at_start_is_delivered(q):
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE, folder="active")
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert agent.rcpts() == ["demo@example.test"]


def test_recipients_already_done_are_not_delivered_again(q):
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test", "bob@example.test"],
                           MESSAGE, folder="active")
    # a previous run delivered to demo and marked it before crashing
    path = os.path.join(str(q.queue), "active", qid)
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(data.index(b"R R - - demo@example.test") + 2)
        f.write(b"D")
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert agent.rcpts() == ["bob@example.test"]


def test_hold_is_never_touched(q):
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE, folder="hold")
    qm = q.start_qmgr()
    time.sleep(0.5)
    assert qm.request(request="flush") == {"status": "0"}
    assert qm.request(request="deliver", queue_id=qid) == {"status": "0"}
    time.sleep(0.5)
    assert where(q.queue, qid) == ["hold"]
    assert agent.requests == []


def test_relay_recipient_goes_to_the_smtp_transport(q):
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["someone@elsewhere.example"], MESSAGE)
    q.start_qmgr()
    # No smtp agent runs here: the smtp transport is unavailable.
    wait_log(q.inst, "status=deferred (delivery agent smtp unavailable")
    line = log_line(q.inst, qid, "to=<someone@elsewhere.example>")
    assert "relay=smtp" in line and "dsn=4.3.0" in line
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    assert agent.requests == []


def test_agent_that_dies_defers_every_recipient_of_its_request(q):
    q.start_agent(lambda a, r: "die")
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test", "bob@example.test"],
                           MESSAGE)
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    for addr in ("demo@example.test", "bob@example.test"):
        line = log_line(q.inst, f"to=<{addr}>", "status=deferred")
        assert line and "dsn=4.3.0" in line
        assert "delivery agent local failed" in line
    _, _, notes = read_queue_file(
        os.path.join(str(q.queue), "deferred", qid))
    assert sorted(n[0] for n in notes) == [0, 1]


def test_agent_that_does_not_answer_is_timed_out(q):
    q.inst.write_main_cf(daemon_timeout="1s")
    q.start_agent(lambda a, r: "hang")
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    start = time.monotonic()
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    timeout=10, what="file in deferred/")
    assert time.monotonic() - start < 8
    assert log_line(q.inst, qid, "status=deferred (delivery agent local "
                    "failed: no reply within 1s)")


def test_missing_agent_defers(q):
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["demo@example.test"], MESSAGE)
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    assert log_line(q.inst, qid, "dsn=4.3.0",
                    "delivery agent local unavailable")


def test_virtual_alias_rewrite_logs_orig_to(q):
    q.inst.write_main_cf(
        virtual_alias_maps="inline:{ info@virt.test=demo@example.test }",
        virtual_alias_domains="virt.test")
    agent = q.start_agent()
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["info@virt.test", "ghost@virt.test"], MESSAGE)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert [r["rcpt"] for r in agent.requests if r["queue_id"] == qid] == \
        [[(0, "demo@example.test")]]
    assert log_line(q.inst, qid, "to=<demo@example.test>, "
                    "orig_to=<info@virt.test>, relay=local", "status=sent")
    assert log_line(q.inst, qid, "to=<ghost@virt.test>", "dsn=5.1.1",
                    "status=bounced")


def test_one_to_many_alias_partial_failure_is_not_delivered_twice(q):
    q.inst.write_main_cf(
        virtual_alias_maps="inline:{ { team@virt.test = demo@example.test, "
                           "bob@example.test } }",
        virtual_alias_domains="virt.test")
    answer = {"bob@example.test": ("deferred", "4.2.0", "busy")}
    agent = q.start_agent(
        lambda a, r: answer.get(a, ("sent", "2.0.0", "delivered")))
    qid = write_queue_file(q.queue, "alice@example.test",
                           ["team@virt.test"], MESSAGE)
    qm = q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    line = log_line(q.inst, qid, "to=<team@virt.test>", "status=expanded")
    assert line, q.inst.log()
    new_id = line.split("queued as ")[1].rstrip(")")
    q.inst.wait_for(lambda: where(q.queue, new_id) == ["deferred"],
                    what="expansion deferred")
    assert log_line(q.inst, new_id, "to=<demo@example.test>, "
                    "orig_to=<team@virt.test>", "status=sent")
    answer.clear()
    assert qm.request(request="flush") == {"status": "0"}
    wait_log(q.inst, f"{new_id}: removed")
    assert sorted(agent.rcpts()) == ["bob@example.test", "bob@example.test",
                                     "demo@example.test"]


def test_mixed_results_bounce_one_defer_one(q):
    def script(addr, req):
        return {"demo@example.test": ("sent", "2.0.0", "delivered"),
                "bob@example.test": ("bounced", "5.2.2", "mailbox full"),
                "alice@example.test": ("deferred", "4.2.0", "busy")}[addr]
    q.start_agent(script)
    qid = write_queue_file(
        q.queue, "carol@example.org",
        ["demo@example.test", "bob@example.test", "alice@example.test"],
        MESSAGE)
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="file in deferred/")
    wait_log(q.inst, f"{qid}: sender non-delivery notification")
    env, _, _ = read_queue_file(os.path.join(str(q.queue), "deferred", qid))
    # delivered: done; bounced: done once its report is queued; the
    # deferred one is still to deliver
    assert env["rcpts"] == [("D", "demo@example.test"),
                            ("D", "bob@example.test"),
                            ("R", "alice@example.test")]


def test_destination_concurrency_limit_is_kept(q):
    q.inst.write_main_cf(local_destination_concurrency_limit="2")
    agent = q.start_agent(delay=0.4)
    ids = [write_queue_file(q.queue, "alice@example.test",
                            ["demo@example.test"], MESSAGE)
           for _ in range(6)]
    q.start_qmgr()
    for qid in ids:
        wait_log(q.inst, f"{qid}: removed", timeout=20)
    assert agent.max_running == 2


def test_local_concurrency_limit_is_per_recipient(q):
    """local_destination_recipient_limit is 1 by default: each local
    recipient is a destination of its own, so one mailbox's deliveries
    do not wait for another's (Postfix's meaning of
    local_destination_concurrency_limit)."""
    q.inst.write_main_cf(local_destination_concurrency_limit="1")
    agent = q.start_agent(delay=0.4)
    ids = [write_queue_file(q.queue, "alice@example.test", [rcpt], MESSAGE)
           for rcpt in ["demo@example.test", "bob@example.test"] * 3]
    # One message to both: one delivery each.
    both = write_queue_file(q.queue, "alice@example.test",
                            ["demo@example.test", "bob@example.test"],
                            MESSAGE)
    q.start_qmgr()
    for qid in ids + [both]:
        wait_log(q.inst, f"{qid}: removed", timeout=20)
    assert agent.max_running == 2
    assert sorted(len(r["rcpt"]) for r in agent.requests
                  if r["queue_id"] == both) == [1, 1]


def test_local_recipient_limit_above_one_limits_per_domain(q):
    q.inst.write_main_cf(local_destination_concurrency_limit="1",
                         local_destination_recipient_limit="2")
    agent = q.start_agent(delay=0.3)
    ids = [write_queue_file(q.queue, "alice@example.test", [rcpt], MESSAGE)
           for rcpt in ["demo@example.test", "bob@example.test"] * 2]
    q.start_qmgr()
    for qid in ids:
        wait_log(q.inst, f"{qid}: removed", timeout=20)
    assert agent.max_running == 1


def one_mailbox(q, count, batch_limit):
    """count messages to demo, one local delivery at a time for it, at
    most batch_limit requests on a connection at once."""
    q.inst.write_main_cf(local_destination_concurrency_limit="1",
                         local_delivery_batch_limit=str(batch_limit))
    return [write_queue_file(q.queue, "alice@example.test",
                             ["demo@example.test"], MESSAGE)
            for _ in range(count)]


def wait_removed(q, ids):
    for qid in ids:
        wait_log(q.inst, f"{qid}: removed", timeout=20)


def test_mail_for_a_busy_mailbox_goes_in_batches(q):
    """With the recipient's concurrency full, its waiting mail is sent on
    the running connection behind the request in progress, up to
    local_delivery_batch_limit at a time, one reply each, in order."""
    ids = one_mailbox(q, 7, 3)
    agent = q.start_agent(lambda a, r: ("sent", "2.0.0",
                                        "delivered " + r["queue_id"]),
                          delay=0.3, many=True)
    q.start_qmgr()
    wait_removed(q, ids)
    # Each reply went to its own request: the reason names the message.
    for qid in ids:
        assert log_line(q.inst, f"{qid}: to=<demo@example.test>",
                        f"status=sent (delivered {qid})"), qid
    assert agent.max_running == 1
    assert sum(agent.batches) == 7
    assert max(agent.batches) == 3, agent.batches
    assert sorted(r["queue_id"] for r in agent.requests) == sorted(ids)
    assert "deferred" not in q.inst.log()


def test_batch_limit_one_sends_one_request_at_a_time(q):
    ids = one_mailbox(q, 4, 1)
    agent = q.start_agent(delay=0.2, many=True)
    q.start_qmgr()
    wait_removed(q, ids)
    assert agent.batches == [1, 1, 1, 1]


def test_agent_lost_mid_batch_defers_the_whole_batch(q):
    """An agent that dies with a batch in hand answered none of it: every
    request of the batch is deferred (after the one new try that a kept
    connection gets), the later mail goes on."""
    ids = one_mailbox(q, 6, 3)
    holder = []
    doomed = []

    def die_in_first_batch(addr, req):
        # The first turn to carry more than one request dies at its
        # first, and so does its second try: on a kept connection an end
        # without a reply byte sends the requests once more on a new
        # one, as for a kept connection the agent closed.
        agent = holder[0]
        with agent.lock:
            n = agent.batches[-1]
            batch = [r["queue_id"] for r in agent.requests[-n:]]
        if n > 1 and not doomed:
            doomed.extend(batch)
        if n > 1 and req["queue_id"] in doomed:
            return "die"
        return sent(addr, req)

    holder.append(q.start_agent(die_in_first_batch, delay=0.3, many=True))
    q.start_qmgr()
    wait_log(q.inst, "lost connection", timeout=20)
    assert len(doomed) > 1
    assert holder[0].batches.count(len(doomed)) >= 2
    for qid in doomed:
        wait_log(q.inst, f"{qid}: to=<demo@example.test>, relay=local",
                 timeout=10)
        assert log_line(q.inst, f"{qid}: to=<demo@example.test>",
                        "status=deferred",
                        "delivery agent local failed: lost connection")
    wait_removed(q, set(ids) - set(doomed))


def test_batch_survives_an_agent_that_serves_one_request_per_connection(q):
    """The agent may close after any reply, as on a kept connection: the
    requests sent behind go again on a new connection, none is lost or
    deferred."""
    ids = one_mailbox(q, 4, 3)
    agent = q.start_agent(delay=0.3)
    q.start_qmgr()
    wait_removed(q, ids)
    assert max(agent.batches) > 1, agent.batches
    assert "deferred" not in q.inst.log()
    assert sorted(r["queue_id"] for r in agent.requests) == sorted(ids)


def test_active_queue_limit_is_kept(q):
    q.inst.write_main_cf(qmgr_message_active_limit="2")
    agent = q.start_agent(delay=0.3)
    ids = [write_queue_file(q.queue, "alice@example.test",
                            ["demo@example.test"], MESSAGE)
           for _ in range(5)]
    q.start_qmgr()
    most = 0
    deadline = time.monotonic() + 20
    active = os.path.join(str(q.queue), "active")
    while time.monotonic() < deadline:
        if os.path.isdir(active):
            most = max(most, len(os.listdir(active)))
        if all(f"{i}: removed" in q.inst.log() for i in ids):
            break
        time.sleep(0.02)
    assert all(f"{i}: removed" in q.inst.log() for i in ids)
    assert 1 <= most <= 2
    assert len(agent.requests) == 5
