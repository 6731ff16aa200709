"""
The local delivery agent on its own: `local` is started the way master
starts it (listening socket on descriptor 3, status pipe on 4), a queue
file is written into active/ following lib/queue.h, and the test speaks
qmgr's side of lib/deliver.h to it. What a user would see is checked:
the result per recipient, and the mailbox, file or command output byte
for byte.

Run as root (CI), deliveries for the instance's users run as root, and
commands and files named by root-owned aliases run as default_privs
(nobody), so their outputs go to a world-writable folder.
"""
import os
import pathlib
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import binary

ROOT = os.geteuid() == 0

CONTENT = (b"From: Alice <alice@example.test>\n"
           b"To: Demo <demo@example.test>\n"
           b"Subject: local test\n"
           b"\n"
           b"First line.\n"
           b"From the start of a line\n"
           b"Last line with 8-bit: caf\xc3\xa9\n")


def xtext(s):
    out = []
    for b in s.encode():
        if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D):
            out.append(chr(b))
        else:
            out.append(f"+{b:02X}")
    return "".join(out)


def unxtext(s):
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)),
                  s)


_ids = [0]


def queue_id():
    _ids[0] += 1
    return f"{int(time.time() * 1e6):013X}{os.getpid():X}{_ids[0]:X}"


def write_queue_file(inst, rcpts, content=CONTENT,
                     sender="alice@example.test", folder="active"):
    """A queue file as lib/queue.h documents it; returns its ID."""
    qid = queue_id()
    now = time.time()
    head = [f"TERN 1", f"T {int(now)}.{int(now * 1e6) % 1000000:06d}",
            f"S {xtext(sender)}".rstrip() if sender else "S "]
    for r in rcpts:
        head.append(f"R R - - {xtext(r)}")
    head.append(f"M {len(content):020d}")
    data = ("\n".join(head) + "\n").encode() + content + b"E\n"
    for f in ("incoming", "active", "deferred"):
        (inst.queue_dir / f).mkdir(mode=0o700, parents=True, exist_ok=True)
    (inst.queue_dir / folder / qid).write_bytes(data)
    return qid


class Agent:
    """One `local` process serving a Unix socket, as master runs it:
    the listening socket on descriptor 3, the status pipe on 4, and -R
    because master.cf's unpriv column says n for local."""

    def __init__(self, inst):
        self.inst = inst
        self.path = str(inst.root / "local.sock")
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.status_r, status_w = os.pipe()
        lfd = self.sock.fileno()
        self.out_path = inst.root / "local.out"
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c",
                 f'exec "$0" "$@" 3<&{lfd} 4>&{status_w} '
                 f"{lfd}<&- {status_w}>&-",
                 binary("local"), "-c", str(inst.config_dir),
                 "-n", "local", "-t", "unix", "-R"],
                pass_fds=(lfd, status_w), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=inst.env())
        os.close(status_w)

    def deliver(self, qid, rcpts, sender="alice@example.test",
                timeout=30, folder="active"):
        """Send one request; {address: (status, dsn, reason)}."""
        lines = ["request=deliver", f"queue_id={qid}", f"folder={folder}",
                 f"sender={sender}", "nexthop="]
        lines += [f"rcpt={i} {xtext(r)}" for i, r in enumerate(rcpts)]
        req = ("\n".join(lines) + "\n\n").encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(timeout)
            c.connect(self.path)
            c.sendall(req)
            reply = b""
            while not reply.endswith(b"\n\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.endswith(b"\n\n"), (reply, self.inst.log())
        attrs = [l.split("=", 1) for l in reply.decode().splitlines() if l]
        out = {}
        for name, value in attrs:
            if name == "result":
                idx, st, dsn, reason = value.split(" ", 3)
                out[rcpts[int(idx)]] = (st, unxtext(dsn), unxtext(reason))
        assert dict(attrs)["status"] == "0"
        assert dict(attrs).get("relay") == "local"
        assert len(out) == len(rcpts)
        return out

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
def agent_of(instance):
    """agent_of() starts local on the instance's current main.cf."""
    agents = []

    def start():
        a = Agent(instance)
        agents.append(a)
        return a

    yield start
    for a in agents:
        out = a.stop()
        log = instance.log()
        assert "AddressSanitizer" not in out and "runtime error" not in out, out
        assert "panic:" not in log and "fatal:" not in log, log


@pytest.fixture
def shared_dir():
    """A folder the delivery's user can write: tmp for us, a world
    writable one when root hands commands to nobody."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="tern-local-"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def maildir_files(inst, user="demo"):
    new = inst.maildir(user) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def delivered(sender, rcpt, content=CONTENT):
    return (f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode()
            + content)


def wait_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path.read_bytes()
        time.sleep(0.05)
    pytest.fail(f"{path} never appeared")


# --- mailboxes ---------------------------------------------------------

def test_maildir_copy_is_byte_for_byte(instance, agent_of):
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    before = (instance.queue_dir / "active" / qid).read_bytes()
    res = agent.deliver(qid, ["demo@example.test"])
    assert res["demo@example.test"] == ("sent", "2.0.0",
                                        "delivered to maildir")
    files = list((instance.maildir("demo") / "new").iterdir())
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert raw == delivered("alice@example.test", "demo@example.test")
    assert files[0].name.endswith(f",S={len(raw)}")
    assert re.match(r"^\d+\.M\d+P\d+Q\d+\.", files[0].name)
    assert list((instance.maildir("demo") / "tmp").iterdir()) == []
    assert (instance.maildir("demo") / "cur").is_dir()
    mode = stat.S_IMODE((instance.maildir("demo") / "new").stat().st_mode)
    assert mode == 0o700
    # local never writes the queue file: results are qmgr's to record.
    assert (instance.queue_dir / "active" / qid).read_bytes() == before


def test_several_recipients_and_several_sessions(instance, agent_of):
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test",
                                      "Alice@Example.TEST", "nobody-here@example.test"])
    res = agent.deliver(qid, ["demo@example.test", "Alice@Example.TEST",
                              "nobody-here@example.test"])
    assert res["demo@example.test"][0] == "sent"
    assert res["Alice@Example.TEST"][0] == "sent"
    st, dsn, reason = res["nobody-here@example.test"]
    assert (st, dsn) == ("bounced", "5.1.1")
    assert 'unknown user: "nobody-here"' in reason
    assert maildir_files(instance, "alice") == [
        delivered("alice@example.test", "alice@example.test")]
    # The same process serves the next connection; names never clash.
    for _ in range(3):
        agent.deliver(qid, ["demo@example.test"])
    names = [p.name for p in (instance.maildir("demo") / "new").iterdir()]
    assert len(names) == 4 and len(set(names)) == 4


def test_requests_sent_together_are_answered_after_all_are_delivered(
        instance, agent_of, shared_dir):
    """qmgr may write several requests before reading a reply: local
    delivers them all, fsyncs each Maildir's new/ once (the unit tests
    of maildir.c pin that down), and only then replies, in order. The
    third message also goes to a command that waits for the test, so
    the agent is caught in the middle of the batch: by then an agent
    serving one request at a time would have answered the first two."""
    started, go = shared_dir / "started", shared_dir / "go"
    instance.write_aliases(
        f'gated "|echo 1 > {started}; n=0; while [ ! -e {go} ] && '
        f'[ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; cat > /dev/null", '
        f'demo\n')
    agent = agent_of()
    # Three messages; the recipient is the 1st, 2nd and 3rd of its file,
    # so each reply tells which request it answers.
    rcpts = [["demo@example.test"],
             ["x@example.test", "demo@example.test"],
             ["x@example.test", "y@example.test", "gated@example.test"]]
    qids = [write_queue_file(instance, r) for r in rcpts]
    reqs = b""
    for qid, r in zip(qids, rcpts):
        reqs += (f"request=deliver\nqueue_id={qid}\nfolder=active\n"
                 f"sender=alice@example.test\nnexthop=\n"
                 f"rcpt={len(r) - 1} {xtext(r[-1])}\n\n").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(30)
        c.connect(agent.path)
        try:
            c.sendall(reqs)              # one write: one batch
            wait_file(started)
            c.settimeout(0.5)
            with pytest.raises(socket.timeout):
                early = c.recv(65536)
                pytest.fail(f"replied before the batch was delivered: "
                            f"{early}")
        finally:
            go.touch()                   # never leave the command waiting
        c.settimeout(30)
        reply = b""
        while reply.count(b"\n\n") < 3:
            chunk = c.recv(65536)
            assert chunk, (reply, instance.log())
            reply += chunk
    replies = reply.decode().split("\n\n")
    assert replies[3:] == [""], replies
    for i, text in enumerate(replies[:3]):
        attrs = dict(l.split("=", 1) for l in text.splitlines())
        idx, st, dsn, reason = attrs["result"].split(" ", 3)
        assert (int(idx), st, unxtext(dsn)) == (i, "sent", "2.0.0"), text
        assert unxtext(reason).endswith("delivered to maildir")
        assert attrs["status"] == "0"
    assert sorted(maildir_files(instance)) == sorted(
        delivered("alice@example.test", "demo@example.test")
        for _ in range(3))
    assert list((instance.maildir("demo") / "tmp").iterdir()) == []
    # The folder kept open for the sync is closed once it is done.
    fd_dir = pathlib.Path(f"/proc/{agent.proc.pid}/fd")
    if fd_dir.is_dir():
        held = [os.readlink(f) for f in fd_dir.iterdir()]
        assert not [t for t in held if "Maildir" in t], held


def test_null_sender_and_extension(instance, agent_of):
    instance.write_main_cf(recipient_delimiter="+")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo+news@example.test"], sender="")
    res = agent.deliver(qid, ["demo+news@example.test"], sender="")
    assert res["demo+news@example.test"][0] == "sent"
    assert maildir_files(instance) == [
        delivered("", "demo+news@example.test")]


def test_mbox_home_mailbox_quotes_from_lines(instance, agent_of):
    instance.write_main_cf(home_mailbox="Mailbox")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    for _ in range(2):
        res = agent.deliver(qid, ["demo@example.test"])
        assert res["demo@example.test"] == ("sent", "2.0.0",
                                            "delivered to mailbox")
    text = (instance.home / "demo" / "Mailbox").read_bytes()
    one = delivered("alice@example.test", "demo@example.test").replace(
        b"\nFrom the start", b"\n>From the start") + b"\n"
    msgs = re.split(rb"(?m)^From alice@example\.test [A-Z][a-z]{2} .*\n",
                    text)
    assert msgs == [b"", one, one]
    assert not (instance.home / "demo" / "Mailbox.lock").exists()


def test_mailbox_size_limit_bounces(instance, agent_of):
    instance.write_main_cf(mailbox_size_limit=100)
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert (st, dsn) == ("bounced", "5.2.2")
    assert "size limit" in reason
    assert maildir_files(instance) == []


# --- failures that must defer ------------------------------------------

def test_maildir_that_is_a_file_defers_and_keeps_the_message(instance,
                                                              agent_of):
    md = instance.maildir("demo")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("not a folder\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert (st, dsn) == ("deferred", "4.2.0")
    assert "Not a directory" in reason
    assert (instance.queue_dir / "active" / qid).exists()
    # Fixed: the retry delivers.
    md.unlink()
    assert agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"][0] == "sent"


def test_missing_home_defers(instance, agent_of):
    shutil.rmtree(instance.home / "bob")
    agent = agent_of()
    qid = write_queue_file(instance, ["bob@example.test"])
    st, dsn, reason = agent.deliver(qid, ["bob@example.test"])[
        "bob@example.test"]
    assert st == "deferred" and dsn.startswith("4.")
    assert "No such file or directory" in reason
    assert not (instance.home / "bob").exists()   # never created for him


@pytest.mark.skipif(ROOT, reason="root writes through mode 000; the "
                    "file-in-the-way and missing-home tests cover this")
def test_unwritable_maildir_defers(instance, agent_of):
    md = instance.maildir("demo")
    (md / "tmp").mkdir(parents=True)
    (md / "new").mkdir()
    (md / "cur").mkdir()
    os.chmod(md / "tmp", 0)
    try:
        agent = agent_of()
        qid = write_queue_file(instance, ["demo@example.test"])
        st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
            "demo@example.test"]
    finally:
        os.chmod(md / "tmp", 0o700)
    assert (st, dsn) == ("deferred", "4.2.0")
    assert "Permission denied" in reason


def test_unreadable_alias_table_defers(instance, agent_of):
    instance.write_main_cf(alias_maps=f"lmdb:{instance.root}/no-such-table")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert (st, dsn) == ("deferred", "4.3.0")
    assert "alias database unavailable" in reason
    assert maildir_files(instance) == []


def test_missing_queue_file_defers_every_recipient(instance, agent_of):
    agent = agent_of()
    res = agent.deliver("0123456789ABCDEF", ["demo@example.test",
                                             "alice@example.test"])
    for st, dsn, reason in res.values():
        assert (st, dsn) == ("deferred", "4.3.0")
        assert "cannot open queue file" in reason


# --- aliases -----------------------------------------------------------

def test_alias_to_other_users_texthash(instance, agent_of):
    instance.write_aliases("# test\npostmaster alice\n"
                           "team alice, bob@example.test, team\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["postmaster@example.test",
                                      "team@example.test"])
    res = agent.deliver(qid, ["postmaster@example.test", "team@example.test"])
    assert res["postmaster@example.test"] == ("sent", "2.0.0",
                                              "delivered to maildir")
    # "team" names itself: that branch is a mailbox, and there is none.
    st, dsn, reason = res["team@example.test"]
    assert (st, dsn) == ("bounced", "5.1.1")
    assert "<team@example.test>" in reason and "unknown user" in reason
    assert sorted(maildir_files(instance, "alice")) == sorted([
        delivered("alice@example.test", "alice@example.test")] * 2)
    assert maildir_files(instance, "bob") == [
        delivered("alice@example.test", "bob@example.test")]


def test_alias_lmdb_built_by_ternmap(instance, agent_of):
    src = instance.config_dir / "aliases"   # aliases(5) syntax
    src.write_text("root: demo\nabuse: root\n")
    r = subprocess.run([binary("ternmap"), "-A", str(src)],
                       capture_output=True, text=True, timeout=30,
                       env=instance.env())
    assert r.returncode == 0, r.stderr
    instance.write_main_cf(alias_maps=f"lmdb:{src}")
    agent = agent_of()
    qid = write_queue_file(instance, ["abuse@example.test"])
    assert agent.deliver(qid, ["abuse@example.test"])[
        "abuse@example.test"][0] == "sent"
    assert maildir_files(instance) == [
        delivered("alice@example.test", "demo@example.test")]


def test_alias_file_changed_under_a_running_agent_is_read_again(
        instance, agent_of):
    """local keeps its tables open between requests; a changed, removed
    or restored alias file is seen at the next request all the same."""
    instance.write_aliases("team alice\n")
    time.sleep(2.5)         # old enough to be kept, not read every time
    agent = agent_of()

    def team():
        qid = write_queue_file(instance, ["team@example.test"])
        return agent.deliver(qid, ["team@example.test"])["team@example.test"]

    assert team()[0] == "sent"
    assert team()[0] == "sent"
    assert len(maildir_files(instance, "alice")) == 2
    instance.write_aliases("team bob\n")
    assert team()[0] == "sent"
    assert len(maildir_files(instance, "bob")) == 1
    instance.aliases_file.unlink()
    st, dsn, reason = team()
    assert st == "deferred" and "alias database unavailable" in reason
    instance.write_aliases("team demo\n")
    assert team()[0] == "sent"
    assert len(maildir_files(instance, "demo")) == 1
    assert len(maildir_files(instance, "alice")) == 2


def test_alias_self_reference_goes_to_the_mailbox(instance, agent_of):
    instance.write_aliases("demo demo, alice\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    st, _, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert st == "sent"
    assert reason == "delivered to maildir; delivered to maildir"
    assert maildir_files(instance) == [
        delivered("alice@example.test", "demo@example.test")]
    assert maildir_files(instance, "alice") == [
        delivered("alice@example.test", "alice@example.test")]


def test_alias_to_command_and_file(instance, agent_of, shared_dir):
    out = shared_dir / "out"
    env = shared_dir / "env"
    box = shared_dir / "archive"
    instance.write_aliases(
        f'pipe "|cat > {out}; env > {env}"\n'
        f"archive {box}\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["pipe@example.test",
                                      "archive@example.test"])
    res = agent.deliver(qid, ["pipe@example.test", "archive@example.test"])
    assert res["pipe@example.test"] == (
        "sent", "2.0.0", f"delivered to command: cat > {out}; env > {env}")
    assert res["archive@example.test"] == (
        "sent", "2.0.0", f"delivered to file: {box}")
    assert out.read_bytes() == delivered("alice@example.test",
                                         "pipe@example.test")
    environ = dict(l.split("=", 1) for l in env.read_text().splitlines()
                   if "=" in l)
    assert environ["SENDER"] == "alice@example.test"
    assert environ["RECIPIENT"] == "pipe@example.test"
    assert environ["LOCAL"] == "pipe"
    assert environ["DOMAIN"] == "example.test"
    text = box.read_bytes()
    assert text.startswith(b"From alice@example.test ")
    assert b"\n>From the start of a line\n" in text
    # Never as root: root's aliases run as default_privs.
    owner = out.stat().st_uid
    assert owner != 0
    if ROOT:
        assert owner == 65534 and box.stat().st_uid == 65534


def test_alias_commands_and_files_obey_allow_lists(instance, agent_of,
                                                   shared_dir):
    instance.write_aliases(f'pipe "|cat > {shared_dir}/x"\n'
                           f"archive {shared_dir}/y\n")
    instance.write_main_cf(allow_mail_to_commands="forward",
                           allow_mail_to_files="include")
    agent = agent_of()
    qid = write_queue_file(instance, ["pipe@example.test",
                                      "archive@example.test"])
    res = agent.deliver(qid, ["pipe@example.test", "archive@example.test"])
    assert res["pipe@example.test"][:2] == ("bounced", "5.7.1")
    assert "mail to command is restricted" in res["pipe@example.test"][2]
    assert res["archive@example.test"][:2] == ("bounced", "5.7.1")
    assert list(shared_dir.iterdir()) == []


def test_include_file(instance, agent_of):
    lst = instance.config_dir / "team.list"
    lst.write_text("# members\nalice\nbob\n")
    instance.write_aliases(f"team :include:{lst}\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["team@example.test"])
    assert agent.deliver(qid, ["team@example.test"])[
        "team@example.test"][0] == "sent"
    assert len(maildir_files(instance, "alice")) == 1
    assert len(maildir_files(instance, "bob")) == 1


def test_alias_to_remote_address_is_queued_again(instance, agent_of):
    instance.write_aliases("list someone@far.example, demo, sub\n"
                           "sub Someone@far.example\n"
                           "owner-list demo\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["list@example.test"])
    st, dsn, reason = agent.deliver(qid, ["list@example.test"])[
        "list@example.test"]
    assert st == "sent", reason
    m = re.search(r"forwarded as ([0-9A-F]+)", reason)
    assert m, reason
    new = (instance.queue_dir / "incoming" / m.group(1)).read_bytes()
    head, rest = new.split(b"\nM ", 1)
    assert b"\nS owner-list@example.test\n" in head + b"\n"
    assert re.search(rb"\nR R - - someone@far\.example$", head)
    assert b"demo" not in head.split(b"\nR ", 1)[1]
    body = rest.split(b"\n", 1)[1]
    assert body == b"Delivered-To: list@example.test\n" + CONTENT + b"E\n"
    assert maildir_files(instance) == [
        delivered("owner-list@example.test", "demo@example.test")]


# --- .forward ----------------------------------------------------------

def test_forward_file_keeps_a_copy_and_forwards(instance, agent_of):
    fwd = instance.home / "demo" / ".forward"
    fwd.write_text("\\demo, alice\n")
    os.chmod(fwd, 0o644)
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    assert agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"][0] == "sent"
    assert maildir_files(instance) == [
        delivered("alice@example.test", "demo@example.test")]
    assert maildir_files(instance, "alice") == [
        delivered("alice@example.test", "alice@example.test")]


def test_group_writable_forward_is_ignored(instance, agent_of):
    fwd = instance.home / "demo" / ".forward"
    fwd.write_text("alice\n")
    os.chmod(fwd, 0o664)
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    assert agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"][0] == "sent"
    assert len(maildir_files(instance)) == 1
    assert maildir_files(instance, "alice") == []
    assert ".forward: ignored" in instance.log()


def test_forward_to_command(instance, agent_of, shared_dir):
    out = shared_dir / "fwd-out"
    fwd = instance.home / "demo" / ".forward"
    fwd.write_text(f'"|cat > {out}"\n')
    os.chmod(fwd, 0o600)
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    res = agent.deliver(qid, ["demo@example.test"])["demo@example.test"]
    assert res == ("sent", "2.0.0", f"delivered to command: cat > {out}")
    assert out.read_bytes() == delivered("alice@example.test",
                                         "demo@example.test")


# --- loops -------------------------------------------------------------

def test_message_that_was_here_before_bounces(instance, agent_of):
    looped = b"Delivered-To: Demo@Example.test\n" + CONTENT
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"], content=looped)
    st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert (st, dsn) == ("bounced", "5.4.6")
    assert reason == "mail forwarding loop for demo@example.test"
    assert maildir_files(instance) == []


def test_alias_loop_between_two_names_ends(instance, agent_of):
    instance.write_aliases("ping pong\npong ping\n")
    agent = agent_of()
    qid = write_queue_file(instance, ["ping@example.test"])
    st, dsn, reason = agent.deliver(qid, ["ping@example.test"])[
        "ping@example.test"]
    # ping -> pong -> ping: the second ping is a mailbox, and there is
    # no user ping.
    assert (st, dsn) == ("bounced", "5.1.1")


# --- mailbox_command ---------------------------------------------------

@pytest.mark.parametrize("code,status,dsn", [
    (0, "sent", "2.0.0"),
    (75, "deferred", "4.3.0"),
    (67, "bounced", "5.1.1"),
    (1, "bounced", "5.3.0"),
])
def test_mailbox_command_exit_codes(instance, agent_of, shared_dir, code,
                                    status, dsn):
    out = shared_dir / "mbcmd"
    script = shared_dir / "deliver.sh"
    script.write_text(f"#!/bin/sh\ncat > {out}\nenv > {out}.env\n"
                      f"echo 'mailbox says no' >&2\nexit {code}\n")
    os.chmod(script, 0o755)
    instance.write_main_cf(mailbox_command=f"{script} -a $EXTENSION",
                           recipient_delimiter="+")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo+ext@example.test"])
    st, d, reason = agent.deliver(qid, ["demo+ext@example.test"])[
        "demo+ext@example.test"]
    assert (st, d) == (status, dsn), reason
    if code == 0:
        assert reason == f"delivered to command: {script} -a $EXTENSION"
    else:
        assert f"status {code}" in reason
        assert "mailbox says no" in reason
    assert out.read_bytes() == delivered("alice@example.test",
                                         "demo+ext@example.test")
    environ = dict(l.split("=", 1) for l in
                   pathlib.Path(f"{out}.env").read_text().splitlines()
                   if "=" in l)
    assert environ["USER"] == "demo"
    assert environ["EXTENSION"] == "ext"
    assert environ["RECIPIENT"] == "demo+ext@example.test"
    if not ROOT:
        assert environ["HOME"] == str(instance.home / "demo")


def test_mailbox_command_time_limit_defers(instance, agent_of, shared_dir):
    instance.write_main_cf(mailbox_command="sleep 20",
                           command_time_limit="1s")
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    t0 = time.monotonic()
    st, dsn, reason = agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"]
    assert time.monotonic() - t0 < 10
    assert (st, dsn) == ("deferred", "4.3.0")
    assert "time limit" in reason


# --- virtual mailbox domains -------------------------------------------

@pytest.fixture
def vbase(instance):
    """virtual_mailbox_base, owned by the uid virtual mail runs as."""
    if ROOT:
        base = pathlib.Path(tempfile.mkdtemp(prefix="tern-vbase-"))
        os.chown(base, 65534, 65534)
        uid = gid = 65534
    else:
        base = instance.root / "vmail"
        base.mkdir()
        uid, gid = os.getuid(), os.getgid()
    yield base, uid, gid
    if ROOT:
        shutil.rmtree(base, ignore_errors=True)


def test_virtual_mailbox_domain_delivery(instance, agent_of, vbase):
    base, uid, gid = vbase
    maps = instance.config_dir / "vmailbox"
    maps.write_text("info@virt.test virt.test/info/\n"
                    "sales@virt.test virt.test/sales.mbox\n")
    instance.write_main_cf(
        virtual_mailbox_domains="virt.test",
        virtual_mailbox_base=str(base),
        virtual_mailbox_maps=f"texthash:{maps}",
        virtual_uid_maps=f"static:{uid}",
        virtual_gid_maps=f"inline:{{ info@virt.test={gid}, "
                         f"sales@virt.test={gid} }}",
        virtual_minimum_uid=min(uid, 100) or 1)
    agent = agent_of()
    rcpts = ["info@virt.test", "sales@virt.test", "nobody@virt.test"]
    qid = write_queue_file(instance, rcpts)
    res = agent.deliver(qid, rcpts)
    assert res["info@virt.test"] == ("sent", "2.0.0", "delivered to maildir")
    assert res["sales@virt.test"] == ("sent", "2.0.0", "delivered to mailbox")
    assert res["nobody@virt.test"][:2] == ("bounced", "5.1.1")
    files = list((base / "virt.test" / "info" / "new").iterdir())
    assert [f.read_bytes() for f in files] == [
        delivered("alice@example.test", "info@virt.test")]
    assert files[0].stat().st_uid == uid
    assert (base / "virt.test" / "sales.mbox").read_bytes().startswith(
        b"From alice@example.test ")


def test_virtual_uid_below_minimum_defers(instance, agent_of, vbase):
    base, uid, gid = vbase
    instance.write_main_cf(
        virtual_mailbox_domains="virt.test",
        virtual_mailbox_base=str(base),
        virtual_mailbox_maps="inline:{ info@virt.test=info/ }",
        virtual_uid_maps="static:5",
        virtual_gid_maps="static:5",
        virtual_minimum_uid=100)
    agent = agent_of()
    qid = write_queue_file(instance, ["info@virt.test"])
    st, dsn, reason = agent.deliver(qid, ["info@virt.test"])[
        "info@virt.test"]
    assert (st, dsn) == ("deferred", "4.3.5")
    assert "virtual_minimum_uid" in reason
    assert not (base / "info").exists()


@pytest.mark.skipif(ROOT, reason="root may deliver as any uid")
def test_virtual_uid_not_ours_defers_when_unprivileged(instance, agent_of,
                                                       vbase):
    base, uid, gid = vbase
    instance.write_main_cf(
        virtual_mailbox_domains="virt.test",
        virtual_mailbox_base=str(base),
        virtual_mailbox_maps="inline:{ info@virt.test=info/ }",
        virtual_uid_maps=f"static:{uid + 1}",
        virtual_gid_maps=f"static:{gid}",
        virtual_minimum_uid=1)
    agent = agent_of()
    qid = write_queue_file(instance, ["info@virt.test"])
    st, dsn, reason = agent.deliver(qid, ["info@virt.test"])[
        "info@virt.test"]
    assert st == "deferred" and "not as root" in reason


def test_mail_spool_directory_mbox(instance, agent_of):
    spool = instance.root / "mail"
    spool.mkdir()
    instance.write_main_cf(home_mailbox="", mail_spool_directory=str(spool))
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    assert agent.deliver(qid, ["demo@example.test"])[
        "demo@example.test"] == ("sent", "2.0.0", "delivered to mailbox")
    text = (spool / "demo").read_bytes()
    assert text.startswith(b"From alice@example.test ")
    assert text.endswith(CONTENT.replace(b"\nFrom the", b"\n>From the")
                         + b"\n")
    assert stat.S_IMODE((spool / "demo").stat().st_mode) == 0o600


@pytest.mark.skipif(not ROOT, reason="needs a second uid")
def test_forward_include_is_read_with_the_users_privileges(instance,
                                                           agent_of):
    """A user's .forward cannot make root read a file for the user."""
    home = pathlib.Path(tempfile.mkdtemp(prefix="tern-nob-"))
    try:
        os.chown(home, 65534, 65534)
        secret = home / "secret"
        secret.write_text("carol@far.example\n")
        os.chmod(secret, 0o600)             # root's alone
        fwd = home / ".forward"
        fwd.write_text(f":include:{secret}\n")
        os.chown(fwd, 65534, 65534)
        with open(instance.passwd_file, "a") as f:
            f.write(f"nob:x:65534:65534:nob:{home}:/bin/sh\n")
        agent = agent_of()
        qid = write_queue_file(instance, ["nob@example.test"])
        st, dsn, reason = agent.deliver(qid, ["nob@example.test"])[
            "nob@example.test"]
        assert (st, dsn) == ("deferred", "4.3.0"), reason
        assert "Permission denied" in reason
        assert "carol" not in reason
        assert os.listdir(instance.queue_dir / "incoming") == []
        # Readable by the user: it works, and what it names is queued.
        os.chown(secret, 65534, 65534)
        st, dsn, reason = agent.deliver(qid, ["nob@example.test"])[
            "nob@example.test"]
        assert st == "sent" and reason.startswith("forwarded as "), reason
        # The user's own mailbox delivery runs as the user.
        fwd.unlink()
        assert agent.deliver(qid, ["nob@example.test"])[
            "nob@example.test"][0] == "sent"
        (f,) = (home / "Maildir" / "new").iterdir()
        assert f.stat().st_uid == 65534
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- as root: the user's effective ids, switched in process and back ---

def proc_ids(pid):
    """The Uid:, Gid: and Groups: lines of a process."""
    lines = pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
    return [l.split(None, 1)[-1].strip() for l in lines
            if l.startswith(("Uid:", "Gid:", "Groups:"))]


@pytest.fixture
def nob(instance):
    """A local user "nob" with uid/gid 65534 and a home of its own outside
    the instance folder (which is root's alone)."""
    if not ROOT:
        pytest.skip("needs a second uid")
    home = pathlib.Path(tempfile.mkdtemp(prefix="tern-nob-"))
    os.chown(home, 65534, 65534)
    with open(instance.passwd_file, "a") as f:
        f.write(f"nob:x:65534:65534:nob:{home}:/bin/sh\n")
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_root_delivers_as_the_user_and_stays_root(instance, agent_of, nob):
    agent = agent_of()
    before = proc_ids(agent.proc.pid)
    assert before[0].split() == ["0"] * 4
    for rcpt in ("nob@example.test", "demo@example.test",
                 "nob@example.test"):
        qid = write_queue_file(instance, [rcpt])
        assert agent.deliver(qid, [rcpt])[rcpt] == (
            "sent", "2.0.0", "delivered to maildir")
    maildir = nob / "Maildir"
    files = sorted((maildir / "new").iterdir())
    assert [f.read_bytes() for f in files] == [
        delivered("alice@example.test", "nob@example.test")] * 2
    # The folders and files are the user's, made by the user.
    for p in [maildir, maildir / "new", maildir / "tmp", maildir / "cur"]:
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (65534, 65534), p
        assert stat.S_IMODE(st.st_mode) == 0o700, p
    for f in files:
        st = f.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
            65534, 65534, 0o600)
    assert list((maildir / "tmp").iterdir()) == []
    # demo is uid 0 here: its copy is root's.
    (demo_file,) = (instance.maildir("demo") / "new").iterdir()
    assert demo_file.stat().st_uid == 0
    # Written by the agent itself, not by a child forked for each
    # delivery: the file names carry the writer's pid.
    for f in files + [demo_file]:
        assert f".M" in f.name and f"P{agent.proc.pid}Q" in f.name, f.name
    # The same process, back to root with root's groups after each.
    assert agent.proc.poll() is None
    assert proc_ids(agent.proc.pid) == before


def test_root_acting_as_the_user_cannot_write_where_the_user_cannot(
        instance, agent_of, nob):
    os.chown(nob, 0, 0)
    os.chmod(nob, 0o755)
    agent = agent_of()
    qid = write_queue_file(instance, ["nob@example.test"])
    st, dsn, reason = agent.deliver(qid, ["nob@example.test"])[
        "nob@example.test"]
    assert st == "deferred" and "Permission denied" in reason, reason
    assert not (nob / "Maildir").exists()
    # Once the home is the user's, the same process delivers.
    os.chown(nob, 65534, 65534)
    assert agent.deliver(qid, ["nob@example.test"])[
        "nob@example.test"][0] == "sent"
    assert proc_ids(agent.proc.pid)[0].split() == ["0"] * 4


def test_root_spool_mbox_is_created_by_root_and_written_as_the_user(
        instance, agent_of, nob):
    spool = pathlib.Path(tempfile.mkdtemp(prefix="tern-spool-"))
    try:
        os.chmod(spool, 0o755)      # like /var/mail: no dot-locks for users
        instance.write_main_cf(home_mailbox="",
                               mail_spool_directory=str(spool))
        agent = agent_of()
        for _ in range(2):
            qid = write_queue_file(instance, ["nob@example.test"])
            assert agent.deliver(qid, ["nob@example.test"])[
                "nob@example.test"] == ("sent", "2.0.0",
                                        "delivered to mailbox")
        box = spool / "nob"
        st = box.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o600)
        assert box.read_bytes().count(b"From alice@example.test ") == 2
        assert os.listdir(spool) == ["nob"]
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def test_root_runs_a_users_command_as_the_user_for_good(instance, agent_of,
                                                         nob, shared_dir):
    out = shared_dir / "ids"
    fwd = nob / ".forward"
    fwd.write_text(f'"|(id -u; id -ru; id -g; id -G; cat) > {out}"\n')
    os.chown(fwd, 65534, 65534)
    os.chmod(fwd, 0o600)
    agent = agent_of()
    before = proc_ids(agent.proc.pid)
    qid = write_queue_file(instance, ["nob@example.test"])
    assert agent.deliver(qid, ["nob@example.test"])[
        "nob@example.test"][0] == "sent"
    text = out.read_bytes()
    head = b"65534\n65534\n65534\n"
    assert text.startswith(head), text
    groups = text[len(head):].split(b"\n", 1)[0].split()
    assert groups == [str(g).encode() for g in
                      os.getgrouplist("nobody", 65534)]
    assert text.endswith(delivered("alice@example.test", "nob@example.test"))
    assert out.stat().st_uid == 65534
    assert proc_ids(agent.proc.pid) == before


def test_requests_with_bad_input_are_answered_not_fatal(instance, agent_of):
    agent = agent_of()
    qid = write_queue_file(instance, ["demo@example.test"])
    res = agent.deliver(qid, ["demo@example.test", "@example.test",
                              "\"odd  name\"@example.test", "demo"])
    assert res["demo@example.test"][0] == "sent"
    assert res["@example.test"][0] == "bounced"
    assert res["\"odd  name\"@example.test"][:2] == ("bounced", "5.1.1")
    assert res["demo"][0] == "sent"      # no domain: a local name
    # A garbage request ends that session only; the next one is served.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(agent.path)
        c.sendall(b"no equals sign here\n\n")
        assert c.recv(100) == b""
    assert agent.deliver(qid, ["alice@example.test"])[
        "alice@example.test"][0] == "sent"
    assert agent.proc.poll() is None


def test_first_of_several_failed_branches_is_reported(instance, agent_of):
    instance.write_aliases("two nosuch1, nosuch2, demo\n"
                           "late demo, nosuch3\n"
                           "mixed nosuch4, bob\n")
    shutil.rmtree(instance.home / "bob")
    agent = agent_of()
    rcpts = ["two@example.test", "late@example.test", "mixed@example.test"]
    qid = write_queue_file(instance, rcpts)
    res = agent.deliver(qid, rcpts)
    assert res["two@example.test"] == (
        "bounced", "5.1.1", '<nosuch1@example.test>: unknown user: "nosuch1"')
    assert res["late@example.test"][:2] == ("bounced", "5.1.1")
    # A deferral wins over a bounce: the recipient is tried again.
    st, dsn, reason = res["mixed@example.test"]
    assert st == "deferred" and reason.startswith("<bob@example.test>: ")
    assert len(maildir_files(instance)) == 2
