"""
terncat against queue files written here, in Python, from the format
documented in lib/queue.h -- so the on-disk format is pinned from
outside the C code too: if queue.c and this writer disagree, terncat
says "corrupt" and these tests fail.
"""
import os
import subprocess
import time

from conftest import binary

FOLDERS = ("incoming", "active", "deferred", "hold", "corrupt", "maildrop")


def xtext(value):
    """RFC 3461 xtext: '!'..'~' except '+' and '=' as is, else +HH."""
    if isinstance(value, str):
        value = value.encode()
    out = []
    for b in value:
        if 33 <= b <= 126 and b not in (ord("+"), ord("=")):
            out.append(chr(b))
        else:
            out.append("+%02X" % b)
    return "".join(out)


def write_queue_file(queue_dir, folder, sender, rcpts, content,
                     attrs=(), notes=(), arrival=None):
    """
    Write a queue file the way queue.h says: temporary name, records,
    rename to the queue ID (13 hex digits of arrival microseconds, then
    the inode in hex). rcpts: (status, notify, orcpt or None, address).
    notes: (recipient index, dsn, reason). Returns the queue ID.
    """
    if arrival is None:
        arrival = time.time_ns() // 1000
    lines = ["TERN 1",
             "T %d.%06d" % (arrival // 1000000, arrival % 1000000),
             "S " + xtext(sender)]
    lines += ["A %s=%s" % (xtext(n), xtext(v)) for n, v in attrs]
    for status, notify, orcpt, addr in rcpts:
        lines.append("R %s %s %s %s" % (status, notify or "-",
                                        xtext(orcpt) if orcpt else "-",
                                        xtext(addr)))
    lines.append("M %020d" % len(content))
    data = ("\n".join(lines) + "\n").encode() + content + b"E\n"
    for index, dsn, reason in notes:
        data += ("N %d %s %s\n" % (index, xtext(dsn), xtext(reason))).encode()
    folder_path = os.path.join(queue_dir, folder)
    tmp = os.path.join(folder_path, ".tmp-python.%d" % os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    queue_id = "%013X%X" % (arrival, os.stat(tmp).st_ino)
    os.rename(tmp, os.path.join(folder_path, queue_id))
    return queue_id


HEADERS = (b"Received: from client.example.org (client [192.0.2.1])\n"
           b"\tby mx.example.test (Tern) with ESMTP\n"
           b"From: Sender <sender@example.org>\n"
           b"To: alice@example.test\n"
           b"Subject: caf\xc3\xa9 cr\xc3\xa8me\n")
BODY = (b"Hello,\n\n"
        b"8-bit: \xe2\x9c\x93 and \xff\xfe bytes, a CR\r here.\n"
        b".\n"
        b"-- \nthe end\n")
CONTENT = HEADERS + b"\n" + BODY

RCPTS = [
    ("R", None, None, "alice@example.test"),
    ("D", None, None, '"john smith"@example.test'),
    ("F", "SUCCESS,FAILURE", "rfc822;Bob+x@Example.test",
     "bob+x@example.test"),
]
NOTES = [
    (0, "4.4.1", "connect to mx.example.test: refused"),
    (2, "4.2.0", "first note"),
    (2, "5.1.1", "550 5.1.1 user unknown"),
]


def make_queue(instance):
    for folder in FOLDERS:
        (instance.queue_dir / folder).mkdir(parents=True, exist_ok=True)
    return str(instance.queue_dir)


def terncat(instance, *args, cwd=None):
    """Run terncat; stdout as bytes (the message is binary-safe)."""
    return subprocess.run([binary("terncat"), *args], capture_output=True,
                          env=instance.env(), timeout=30, cwd=cwd)


def sample(instance, folder="deferred", **kw):
    qd = make_queue(instance)
    kw.setdefault("attrs", [("client_addr", "192.0.2.1"),
                            ("helo", "client name = odd")])
    kw.setdefault("notes", NOTES)
    return write_queue_file(qd, folder, "sender@example.org", RCPTS,
                            CONTENT, **kw)


def test_q_finds_the_file_and_shows_envelope_then_contents(instance):
    qid = sample(instance)
    r = terncat(instance, "-q", qid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    label = b"deferred/" + qid.encode()
    envelope = out.split(b"*** MESSAGE CONTENTS")[0]
    assert out.startswith(b"*** ENVELOPE RECORDS " + label + b" ***\n")
    text = envelope.decode()
    assert "queue_id: %s\n" % qid in text
    assert "\narrival_time: " in text
    assert "content_size: %d\n" % len(CONTENT) in text
    assert "sender: sender@example.org\n" in text
    assert "attribute: client_addr=192.0.2.1\n" in text
    assert "attribute: helo=client name = odd\n" in text
    assert "recipients: 3 (1 pending, 1 failed)\n" in text
    assert ("recipient: alice@example.test\n"
            "  status: pending\n"
            "  last_note: 4.4.1 connect to mx.example.test: refused\n"
            ) in text
    assert ('recipient: "john smith"@example.test\n'
            "  status: done\n") in text
    # The last note of a recipient is the one shown.
    assert ("recipient: bob+x@example.test\n"
            "  status: failed, bounce not yet sent\n"
            "  orcpt: rfc822;Bob+x@Example.test\n"
            "  notify: SUCCESS,FAILURE\n"
            "  last_note: 5.1.1 550 5.1.1 user unknown\n") in text
    assert "first note" not in text
    # The message, byte for byte, between its markers.
    assert (b"*** MESSAGE CONTENTS " + label + b" ***\n" + CONTENT +
            b"*** MESSAGE FILE END " + label + b" ***\n") in out
    assert out.endswith(b"*** MESSAGE FILE END " + label + b" ***\n")


def test_e_shows_the_envelope_only(instance):
    qid = sample(instance)
    r = terncat(instance, "-e", "-q", qid)
    assert r.returncode == 0, r.stderr
    assert b"*** ENVELOPE RECORDS deferred/" in r.stdout
    assert b"recipient: alice@example.test" in r.stdout
    assert b"MESSAGE CONTENTS" not in r.stdout
    assert b"Subject:" not in r.stdout
    assert b"Hello" not in r.stdout


def test_h_shows_the_headers_only(instance):
    qid = sample(instance)
    r = terncat(instance, "-h", "-q", qid)
    assert r.returncode == 0, r.stderr
    label = b"deferred/" + qid.encode()
    assert r.stdout == (b"*** HEADER RECORDS " + label + b" ***\n" +
                        HEADERS +
                        b"*** MESSAGE FILE END " + label + b" ***\n")


def test_b_shows_the_body_only(instance):
    qid = sample(instance)
    r = terncat(instance, "-b", "-q", qid)
    assert r.returncode == 0, r.stderr
    label = b"deferred/" + qid.encode()
    assert r.stdout == (b"*** BODY RECORDS " + label + b" ***\n" + BODY +
                        b"*** MESSAGE FILE END " + label + b" ***\n")


def test_options_combine(instance):
    qid = sample(instance)
    r = terncat(instance, "-e", "-h", "-b", "-q", qid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    e = out.index(b"*** ENVELOPE RECORDS")
    h = out.index(b"*** HEADER RECORDS")
    b = out.index(b"*** BODY RECORDS")
    assert e < h < b
    assert HEADERS in out[h:b]
    assert out[b:].split(b"***\n", 1)[1].startswith(BODY)


def test_a_path_is_shown_under_its_own_name(instance):
    qid = sample(instance, folder="hold")
    path = str(instance.queue_dir / "hold" / qid)
    r = terncat(instance, path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        b"*** ENVELOPE RECORDS " + path.encode() + b" ***\n")
    assert CONTENT in r.stdout


def test_a_bare_queue_id_without_q_is_looked_up(instance, tmp_path):
    qid = sample(instance, folder="incoming")
    r = terncat(instance, "-e", qid, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        b"*** ENVELOPE RECORDS incoming/" + qid.encode() + b" ***\n")


def test_null_sender_and_message_without_body(instance):
    qd = make_queue(instance)
    qid = write_queue_file(qd, "active", "",
                           [("R", "NEVER", None, "x@example.test")],
                           b"Subject: no body, no final newline")
    r = terncat(instance, "-q", qid)
    assert r.returncode == 0, r.stderr
    assert b"sender: <>\n" in r.stdout
    assert b"  notify: NEVER\n" in r.stdout
    # A newline is added before the end marker, not to the message.
    assert (b"Subject: no body, no final newline\n*** MESSAGE FILE END"
            in r.stdout)
    r = terncat(instance, "-b", "-q", qid)
    assert r.returncode == 0, r.stderr
    label = b"active/" + qid.encode()
    assert r.stdout == (b"*** BODY RECORDS " + label + b" ***\n"
                        b"*** MESSAGE FILE END " + label + b" ***\n")


def test_control_bytes_in_the_envelope_are_escaped(instance):
    qd = make_queue(instance)
    qid = write_queue_file(qd, "deferred", "evil\x1b[31m@example.org",
                           [("R", None, None, "a\nb@example.test")],
                           b"Subject: x\n\nx\n")
    r = terncat(instance, "-e", "-q", qid)
    assert r.returncode == 0, r.stderr
    assert b"sender: evil\\x1b[31m@example.org\n" in r.stdout
    assert b"recipient: a\\nb@example.test\n" in r.stdout
    assert b"\x1b" not in r.stdout


def test_corrupt_file_is_a_clear_error(instance):
    qid = sample(instance)
    path = instance.queue_dir / "deferred" / qid
    data = path.read_bytes()
    end = data.rindex(b"E\n" + b"N ")
    # The end marker overwritten.
    path.write_bytes(data[:end] + b"X" + data[end + 1:])
    r = terncat(instance, "-q", qid)
    assert r.returncode == 1
    assert r.stdout == b""
    err = r.stderr.decode()
    assert str(path) in err
    assert "corrupt queue file" in err
    assert "end marker" in err
    # Nothing was changed or moved.
    assert path.read_bytes() == data[:end] + b"X" + data[end + 1:]
    # Cut short before the end marker, as a crash would leave it.
    path.write_bytes(data[:end - 5])
    r = terncat(instance, "-q", qid)
    assert r.returncode == 1
    assert r.stdout == b""
    assert "past the end of the file" in r.stderr.decode()


def test_bad_magic_is_corrupt_too(instance, tmp_path):
    junk = tmp_path / "not-a-queue-file"
    junk.write_bytes(b"From: someone\n\nhello\n")
    r = terncat(instance, str(junk))
    assert r.returncode == 1
    assert "corrupt queue file" in r.stderr.decode()
    assert "magic" in r.stderr.decode()


def test_missing_id_is_an_error_and_others_are_still_shown(instance):
    qid = sample(instance)
    missing = "0000000000001FF"
    r = terncat(instance, "-e", "-q", missing, qid)
    assert r.returncode == 1
    assert missing in r.stderr.decode()
    assert "no such message" in r.stderr.decode()
    assert b"*** ENVELOPE RECORDS deferred/" + qid.encode() in r.stdout


def test_not_a_queue_id_with_q_is_refused(instance):
    make_queue(instance)
    r = terncat(instance, "-q", "../../etc/passwd")
    assert r.returncode == 1
    assert "not a queue ID" in r.stderr.decode()


def test_usage_error_exits_2(instance):
    r = terncat(instance)
    assert r.returncode == 2
    assert "usage:" in r.stderr.decode()
    r = terncat(instance, "-z", "x")
    assert r.returncode == 2
