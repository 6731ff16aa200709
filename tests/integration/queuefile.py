"""
Queue files and delivery requests as the tests write and send them,
following lib/queue.h (file format 1) and lib/deliver.h (qmgr's side of
the request). Shared by the tests that drive a delivery agent directly
(test_smtp.py; test_local.py and test_qmgr.py carry older copies of the
same few functions).
"""
import os
import socket
import time


def xtext(s):
    """RFC 3461 xtext, as queue files and delivery requests carry it."""
    out = []
    for b in s.encode():
        if 33 <= b <= 126 and b not in (ord("+"), ord("=")):
            out.append(chr(b))
        else:
            out.append("+%02X" % b)
    return "".join(out)


def unxtext(s):
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "+":
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
        else:
            out += s[i].encode()
            i += 1
    return out.decode()


def attr_escape(v):
    """lib/attr.h value escapes."""
    out = []
    for ch in v:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def attr_unescape(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\":
            c = v[i + 1]
            if c == "x":
                out.append(chr(int(v[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[c])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


NOTIFY_WORDS = ("NEVER", "SUCCESS", "FAILURE", "DELAY")


def write_queue_file(queue_dir, sender, rcpts, content, folder="active",
                     arrival=None, attrs=()):
    """Write a complete queue file the way queue_commit() does: a
    temporary name, fsync, rename to its queue ID. rcpts: addresses or
    (address, notify, orcpt) tuples, notify as "SUCCESS,FAILURE" or
    None, orcpt as "rfc822;addr" or None. attrs: (name, value) pairs
    such as ("envid", "ABC"), ("ret", "HDRS"), ("body", "8BITMIME").
    Returns the queue ID."""
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


class DeliverReply:
    """An agent's reply: results {address: (status, dsn, reason)} in
    request order, relay, and the raw attributes."""

    def __init__(self, rcpts, attrs):
        self.attrs = attrs
        self.results = {}
        self.relay = None
        self.status = None
        for name, value in attrs:
            if name == "result":
                idx, st, dsn, reason = value.split(" ", 3)
                self.results[rcpts[int(idx)]] = (st, unxtext(dsn),
                                                 unxtext(reason))
            elif name == "relay":
                self.relay = value
            elif name == "status":
                self.status = value

    def __getitem__(self, addr):
        return self.results[addr]


def deliver_request(sock_path, qid, sender, nexthop, rcpts,
                    folder="active", timeout=60, indexes=None):
    """Send one lib/deliver.h request to an agent's Unix socket and
    return its DeliverReply. rcpts are addresses; indexes their places
    in the queue file (default 0, 1, 2...)."""
    if indexes is None:
        indexes = range(len(rcpts))
    lines = ["request=deliver", "queue_id=" + qid, "folder=" + folder,
             "sender=" + attr_escape(sender),
             "nexthop=" + attr_escape(nexthop)]
    lines += ["rcpt=%d %s" % (i, xtext(r)) for i, r in zip(indexes, rcpts)]
    req = ("\n".join(lines) + "\n\n").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(sock_path)
        c.sendall(req)
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            reply += chunk
    if not reply.endswith(b"\n\n"):
        raise AssertionError("incomplete reply from agent: %r" % reply)
    attrs = []
    for line in reply.decode().splitlines():
        if line:
            name, value = line.split("=", 1)
            attrs.append((name, attr_unescape(value)))
    return DeliverReply(list(rcpts), attrs)
