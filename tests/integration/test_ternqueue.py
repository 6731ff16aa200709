"""
ternqueue: the queue listing in Postfix's mailq shape (checked line for
line against a listing in Postfix's documented format), the JSON
listing, and the flush requests, on a live instance whose local
delivery is made to defer (a Maildir path that is a file).
"""
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import binary
from optools import (block_maildir, defer_config, ids_in,
                     maildir_messages, open_instance, request_as, run_as,
                     shared_folder, slow_alias, smtp_send, unblock_maildir,
                     wait_deferred)

# A listing in the format Postfix documents for mailq / postqueue -p
# (three messages: deferred with a reason, active, held). The tests
# compare Tern's listing with it line shape by line shape.
POSTFIX_LISTING = """\
-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
4C87949727      380 Fri Jul  3 17:32:11  root@host.example
                (connect to 203.0.113.1[203.0.113.1]:25: Connection timed out)
                                         nobody@[203.0.113.1]

8C2F41A0D91*    2148 Wed Aug 26 11:02:44  root@host.example
                                         team@example.net

91AB41A0E02!    1902 Wed Aug 26 11:20:31  MAILER-DAEMON
                                         cron@host.example

-- 5 Kbytes in 3 Requests.
"""

HEADER = ("-Queue ID-  --Size-- ----Arrival Time---- "
          "-Sender/Recipient-------")
ID = re.compile(r"[0-9A-Za-z]{8,}")
DATE = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$")


def entry(line):
    """A message's first line, cut at Postfix's columns: the ID in ten
    columns (longer IDs push the rest right), the status character, the
    size right-aligned in eight, a space, the date in twenty, a space,
    the sender. None when the line is not one."""
    m = ID.match(line)
    if m is None:
        return None
    col = max(10, m.end())
    if line[m.end():col].strip() or len(line) < col + 1 + 8 + 1 + 20 + 2:
        return None
    status, size = line[col], line[col + 1:col + 9]
    date, rest = line[col + 10:col + 30], line[col + 30:]
    if status not in " *!" or not re.fullmatch(r" *\d+", size) or \
            line[col + 9] != " " or not DATE.match(date.rstrip()) or \
            date[19] != " " or rest[0] != " " or rest[1] == " ":
        return None
    return {"id": m.group(0), "status": status, "size": int(size),
            "date": date.rstrip(), "sender": rest[1:]}


REASON = re.compile(r"(?P<pad> *)\((?P<reason>.*)\)$")
RCPT = re.compile(r" {41}(?P<rcpt>\S+)$")
TOTAL = re.compile(r"-- \d+ Kbytes in \d+ Requests?\.$")


def shape(listing):
    """What a script that parses mailq sees: each line's kind and the
    columns it relies on (where fields start and end)."""
    out = []
    for line in listing.split("\n"):
        if line == HEADER:
            out.append(("header",))
        elif line == "":
            out.append(("blank",))
        elif TOTAL.match(line):
            out.append(("total",))
        elif RCPT.match(line):
            out.append(("rcpt", 41))
        elif (e := entry(line)) is not None:
            out.append(("entry", e["status"]))
        elif m := REASON.match(line):
            right = len(line)
            out.append(("reason", right if len(m.group("pad")) else 0))
        else:
            raise AssertionError(f"not a mailq line: {line!r}")
    return out


def test_postfix_fixture_has_the_shapes_we_check():
    """The checker itself reads a Postfix listing as Postfix means it."""
    s = shape(POSTFIX_LISTING)
    assert s == [("header",), ("entry", " "), ("reason", 78), ("rcpt", 41),
                 ("blank",), ("entry", "*"), ("rcpt", 41), ("blank",),
                 ("entry", "!"), ("rcpt", 41), ("blank",), ("total",),
                 ("blank",)]


def queue_ids(out):
    return [e["id"] for e in map(entry, out.split("\n")) if e]


def test_empty_queue(instance):
    instance.start()
    r = instance.run("ternqueue", "-p")
    assert (r.returncode, r.stdout, r.stderr) == \
        (0, "Mail queue is empty\n", "")
    r = instance.run("ternqueue", "-j")
    assert (r.returncode, r.stdout) == (0, "")


def terncat_envelope(inst, qid):
    r = inst.run("terncat", "-e", "-q", qid)
    assert r.returncode == 0, r.stderr
    arrival = float(re.search(r"arrival_time: .*\((\d+\.\d+)\)",
                              r.stdout).group(1))
    size = int(re.search(r"content_size: (\d+)", r.stdout).group(1))
    return arrival, size


def test_deferred_message_listing_matches_postfix_exactly(instance):
    block_maildir(instance)
    defer_config(instance)
    instance.start()
    smtp_send(instance, "listing")
    wait_deferred(instance, 1)
    qid = ids_in(instance, "deferred")[0]
    reason = re.search(rf"{qid}: to=<demo@example\.test>.*"
                       r"status=deferred \((.*)\)$", instance.log(),
                       re.M).group(1)
    arrival, size = terncat_envelope(instance, qid)
    when = time.strftime("%a %b %e %H:%M:%S", time.localtime(int(arrival)))
    kbytes = (instance.queue_dir / "deferred" / qid).stat().st_size // 1024
    pad = max(0, 76 - len(reason))
    expected = (
        f"{HEADER}\n"
        f"{qid:<10} {size:>8} {when}  alice@example.test\n"
        f"{' ' * pad}({reason})\n"
        f"{' ' * 41}demo@example.test\n"
        f"\n"
        f"-- {kbytes} Kbytes in 1 Request.\n")
    r = instance.run("ternqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected
    # Line kinds as in Postfix's deferred entry; the reason is right-
    # aligned at column 78, or starts at column 0 when it is longer.
    assert [k[0] for k in shape(r.stdout)[:4]] == \
        [k[0] for k in shape(POSTFIX_LISTING)[:4]]
    assert shape(r.stdout)[2] == ("reason", 78 if len(reason) <= 76 else 0)
    # mailq and sendmail -bp are the same listing.
    assert instance.run("sendmail", "-bp").stdout == expected


def test_active_deferred_and_held_listing_has_postfix_shape(instance):
    block_maildir(instance)
    defer_config(instance)
    instance.start()
    for subject in ("one", "two", "three"):
        smtp_send(instance, subject, sender="" if subject == "three"
                  else "alice@example.test")
    wait_deferred(instance, 3)
    first, second, third = ids_in(instance, "deferred")
    r = instance.run("ternsuper", "-h", third)
    assert r.returncode == 0, r.stderr
    instance.stop()
    # With the daemons down, put one into active/ by hand: what mailq
    # shows for a message being delivered.
    os.rename(instance.queue_dir / "deferred" / second,
              instance.queue_dir / "active" / second)
    r = instance.run("ternqueue", "-p")
    assert r.returncode == 0, r.stderr
    # Tern lists held, then active, then deferred mail.
    assert queue_ids(r.stdout) == [third, second, first]
    ours = shape(r.stdout)
    theirs = shape(POSTFIX_LISTING)
    assert [k for k in ours if k[0] != "reason"] == \
        [("header",), ("entry", "!"), ("rcpt", 41), ("blank",),
         ("entry", "*"), ("rcpt", 41), ("blank",), ("entry", " "),
         ("rcpt", 41), ("blank",), ("total",), ("blank",)]
    assert set(ours) <= set(theirs) | {("reason", 0)}
    assert "MAILER-DAEMON" in r.stdout
    assert r.stdout.endswith("\n-- 1 Kbytes in 3 Requests.\n") or \
        re.search(r"\n-- \d+ Kbytes in 3 Requests\.\n$", r.stdout)

    # -j: the same messages and content, one JSON object per line.
    j = instance.run("ternqueue", "-j")
    assert j.returncode == 0, j.stderr
    objs = [json.loads(line) for line in j.stdout.splitlines()]
    assert [(o["queue_name"], o["queue_id"]) for o in objs] == \
        [("hold", third), ("active", second), ("deferred", first)]
    for o in objs:
        assert set(o) == {"queue_name", "queue_id", "arrival_time",
                          "message_size", "forced_expire", "sender",
                          "recipients"}
        assert isinstance(o["arrival_time"], int)
        assert o["recipients"][0]["address"] == "demo@example.test"
        assert o["recipients"][0]["delay_reason"]
        assert f"{o['queue_id']}" in r.stdout
        assert re.search(rf"{o['queue_id']}[ *!] *{o['message_size']} ",
                         r.stdout)
    assert objs[0]["sender"] == ""
    assert objs[1]["sender"] == "alice@example.test"


def test_flush_site_and_one_message(instance):
    block_maildir(instance)
    block_maildir(instance, "alice")
    defer_config(instance)
    instance.start()
    smtp_send(instance, "for demo")
    smtp_send(instance, "for alice", rcpts=("alice@example.test",))
    wait_deferred(instance, 2)
    unblock_maildir(instance)
    unblock_maildir(instance, "alice")
    demo_id = next(i for i in ids_in(instance, "deferred")
                   if "demo@" in instance.run("terncat", "-e", "-q",
                                              i).stdout)
    r = instance.run("ternqueue", "-i", demo_id)
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="the one message asked for")
    time.sleep(0.5)
    assert maildir_messages(instance, "alice") == []
    r = instance.run("ternqueue", "-s", "example.test")
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: len(maildir_messages(instance, "alice")) == 1,
                      what="the site flush")
    r = instance.run("ternqueue", "-f")
    assert r.returncode == 0
    assert "flush requested" in instance.log()


def test_flush_with_the_mail_system_down_and_bad_usage(instance):
    r = instance.run("ternqueue", "-f")
    assert r.returncode == 69
    assert "mail system is down" in r.stderr
    assert instance.run("ternqueue").returncode == 64
    assert instance.run("ternqueue", "-p", "-j").returncode == 64
    assert instance.run("ternqueue", "-i", "not-an-id").returncode == 64


def test_listing_of_the_postfix_fixture_messages_is_line_for_line(instance):
    """Queue files with the fixture's messages (sender, size, arrival,
    reason, recipient, queue): Tern's listing is the fixture, line for
    line, but for the queue IDs (Tern's are longer), the order of the
    queues (hold, active, deferred) and the total computed from the
    files."""
    from queuefile import write_queue_file, xtext
    instance.start()        # the queue folders
    instance.stop()
    blocks = POSTFIX_LISTING.split("\n\n")[:3]
    folder_of = {" ": "deferred", "*": "active", "!": "hold"}
    made = {}
    for block in blocks:
        lines = block.split("\n")
        if lines[0] == HEADER:
            lines = lines[1:]
        e = entry(lines[0])
        rcpt = RCPT.match(lines[-1]).group("rcpt")
        reason = REASON.match(lines[1]).group("reason") \
            if len(lines) == 3 else None
        arrival = time.mktime(time.strptime("2020 " + e["date"],
                                            "%Y %a %b %d %H:%M:%S"))
        content = ("Subject: fixture\n\n").encode()
        content += b"x" * (e["size"] - len(content) - 1) + b"\n"
        sender = "" if e["sender"] == "MAILER-DAEMON" else e["sender"]
        folder = folder_of[e["status"]]
        qid = write_queue_file(instance.queue_dir, sender, [rcpt], content,
                               folder=folder, arrival=arrival)
        if reason is not None:
            with open(instance.queue_dir / folder / qid, "ab") as f:
                f.write(f"N 0 4.4.1 {xtext(reason)}\n".encode())
        made[e["status"]] = (qid, e["id"], lines)
    expected = [HEADER]
    files = 0
    for status in "!* ":
        qid, fixture_id, lines = made[status]
        col = max(10, len(fixture_id))
        expected.append(qid + lines[0][col:])
        expected += lines[1:]
        expected.append("")
        files += (instance.queue_dir / folder_of[status] / qid).stat().st_size
    expected.append(f"-- {files // 1024} Kbytes in 3 Requests.")
    r = instance.run("ternqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == expected


# ---- ordinary users: the showq service ----

@pytest.fixture
def open_inst():
    inst, root = open_instance("/tmp")
    yield inst
    try:
        inst.stop()
    finally:
        inst.kill_leftovers()
        shutil.rmtree(root, ignore_errors=True)


def as_user(inst, user, name, *args):
    """Run sendmail under another name (mailq) as user."""
    link = inst.root / name
    if not link.exists():
        link.symlink_to(binary("sendmail"))
    pw = pwd.getpwnam(user)
    return subprocess.run(["setpriv", f"--reuid={pw.pw_uid}",
                           f"--regid={pw.pw_gid}", "--clear-groups",
                           str(link), *args], capture_output=True,
                          text=True, env=inst.env(), timeout=30)


def test_ordinary_user_lists_the_queue_through_showq(open_inst):
    """nobody cannot read the queue folders, yet ternqueue -p / -j, mailq
    and sendmail -bp give it the very listing root gets, through
    showq(8): held, active (a delivery in progress) and deferred mail in
    the shapes of the Postfix fixture. With the mail system down, root
    still lists by reading the folders; nobody is told why not."""
    inst = open_inst
    shared = shared_folder()
    try:
        block_maildir(inst)
        slow_alias(inst, shared)
        defer_config(inst)
        inst.start()
        q = inst.queue_dir
        assert stat.S_IMODE(os.stat(q / "public").st_mode) == 0o711
        assert stat.S_IMODE(os.stat(q / "private").st_mode) == 0o700
        for sock in ("qmgr", "pickup", "showq"):
            st = os.stat(q / "public" / sock)
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) & 0o666 == 0o666, sock
        assert run_as(inst, "nobody", "ternqueue", "-p").stdout == \
            "Mail queue is empty\n"
        smtp_send(inst, "deferred")
        smtp_send(inst, "held", sender="")
        wait_deferred(inst, 2)
        first, held = ids_in(inst, "deferred")
        assert inst.run("ternsuper", "-h", held).returncode == 0
        smtp_send(inst, "active", rcpts=("slow@example.test",))
        inst.wait_for(lambda: (shared / "started").exists(), timeout=20,
                      what="the slow delivery to start")
        (active,) = ids_in(inst, "active")
        # The folders are mail_owner's alone.
        r = run_as(inst, "nobody", "terncat", "-q", first)
        assert r.returncode != 0

        root = inst.run("ternqueue", "-p")
        assert root.returncode == 0, root.stderr
        assert queue_ids(root.stdout) == [held, active, first]
        assert [k for k in shape(root.stdout) if k[0] != "reason"] == \
            [("header",), ("entry", "!"), ("rcpt", 41), ("blank",),
             ("entry", "*"), ("rcpt", 41), ("blank",), ("entry", " "),
             ("rcpt", 41), ("blank",), ("total",), ("blank",)]
        assert set(shape(root.stdout)) <= \
            set(shape(POSTFIX_LISTING)) | {("reason", 0)}
        for args in (("ternqueue", "-p"), ("sendmail", "-bp")):
            r = run_as(inst, "nobody", *args)
            assert (r.returncode, r.stdout, r.stderr) == \
                (0, root.stdout, ""), args
        r = as_user(inst, "nobody", "mailq")
        assert (r.returncode, r.stdout) == (0, root.stdout), r.stderr
        j_root = inst.run("ternqueue", "-j")
        j = run_as(inst, "nobody", "ternqueue", "-j")
        assert (j.returncode, j.stdout) == (0, j_root.stdout), j.stderr
        assert [(o["queue_name"], o["queue_id"]) for o in
                map(json.loads, j.stdout.splitlines())] == \
            [("hold", held), ("active", active), ("deferred", first)]

        (shared / "go").touch()
        inst.wait_for(lambda: all(active not in ids_in(inst, f) for f in
                                  ("incoming", "active", "deferred")),
                      timeout=20, what="the slow delivery to end")

        # showq itself checks authorized_mailq_users: a user the tools
        # would refuse gets nothing by asking it directly. (After the
        # delivery: a reload restarts qmgr, which would repeat it.)
        inst.write_main_cf(authorized_mailq_users="!nobody, static:anyone")
        assert inst.run("tern", "reload").returncode == 0
        r = run_as(inst, "nobody", "ternqueue", "-p")
        assert r.returncode == 77
        refusal = ("status=1\nreason=user nobody(65534) is not allowed to "
                   "view the mail queue\n\n")
        # A showq process from before the reload may take one more
        # connection before it sees that it is retired.
        inst.wait_for(lambda: request_as(
            inst, "nobody", q / "public" / "showq", {"format": "text"},
            until_close=True) == refusal, what="showq to refuse nobody")
        assert "refused a queue listing: user nobody(65534)" in inst.log()
        inst.write_main_cf(authorized_mailq_users="static:anyone")

        inst.stop()
        r = inst.run("ternqueue", "-p")
        assert r.returncode == 0, r.stderr
        assert queue_ids(r.stdout) == [held, first]
        r = run_as(inst, "nobody", "ternqueue", "-p")
        assert r.returncode == 1
        assert "Permission denied" in r.stderr
        assert "the showq service cannot be reached" in r.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)
