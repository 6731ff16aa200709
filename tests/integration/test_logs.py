"""
The mail log as the operators' tools read it. One instance runs a
realistic mix -- mail delivered locally from smtplib and from sendmail,
an alias, a recipient rejected as unknown, a relay attempt refused, a
delivery deferred, one bounced with its non-delivery notification --
and then:

- Debian's pflogsumm, run on maillog_file, must count exactly what
  happened (received, delivered, deferred, bounced, rejected) and name
  the right senders and recipients;
- every line a message produces must have Postfix's shape, field by
  field, so that any other tool written for Postfix logs reads it too.


maillog_file itself: every program writes there when it is set, and
nothing is written to a file when it is empty (syslog then).
"""
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import Instance, binary
from optools import block_maildir, ids_in, login, maildir_messages

PFLOGSUMM = "/usr/sbin/pflogsumm"

# ---- the shapes ------------------------------------------------------------

STAMP = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
LINE = re.compile(rf"^(?P<stamp>{STAMP}) (?P<host>\S+) "
                  r"tern/(?P<prog>[a-z0-9]+)\[(?P<pid>\d+)\]: (?P<text>.*)$")
QID = r"[0-9A-F]{10,}"
CLIENT = r"[^\s\[\]]+\[[0-9a-fA-F.:]+\]"
NUM = r"\d+(?:\.\d+)?"
DSN = r"[245]\.\d{1,3}\.\d{1,3}"

# What follows "QUEUEID: " in a line about one message, per program.
MESSAGE_SHAPES = {
    "client": (("smtpd",), re.compile(
        rf"^client={CLIENT}(?:, sasl_method=\S+, sasl_username=\S+)?$")),
    "message-id": (("smtpd", "pickup", "qmgr"), re.compile(
        r"^message-id=<[^<>\s]*>$")),
    "pickup": (("pickup",), re.compile(r"^uid=\d+ from=<[^<>\s]*>$")),
    "active": (("qmgr",), re.compile(
        r"^from=<[^<>\s]*>, size=\d+, nrcpt=\d+ \(queue active\)$")),
    "delivery": (("qmgr", "local", "smtp", "lmtp"), re.compile(
        r"^to=<[^<>\s]+>(?:, orig_to=<[^<>\s]+>)?, relay=[^,\s]+, "
        rf"delay={NUM}, delays={NUM}/{NUM}/{NUM}/{NUM}, dsn={DSN}, "
        r"status=(?:sent|deferred|bounced) \(.+\)$")),
    "ndn": (("qmgr", "bounce"), re.compile(
        rf"^sender non-delivery notification: {QID}$")),
    "expired": (("qmgr",), re.compile(
        r"^from=<[^<>\s]*>, status=expired, "
        r"(?:returned to sender|discarded)$")),
    "removed": (("qmgr",), re.compile(r"^removed$")),
}
REJECT = re.compile(
    rf"^(?:NOQUEUE|{QID}): reject: (?P<stage>RCPT|MAIL|DATA|"
    rf"END-OF-MESSAGE|CONNECT|HELO|EHLO) from (?P<client>{CLIENT}): "
    rf"(?P<code>[45]\d\d) (?P<dsn>{DSN}) (?P<reason>.+); "
    r"from=<(?P<sender>[^<>\s]*)>(?: to=<(?P<rcpt>[^<>\s]*)>)? "
    r"proto=E?SMTP helo=<(?P<helo>[^<>]*)>$")
SESSION_SHAPES = [
    re.compile(rf"^connect from {CLIENT}$"),
    re.compile(rf"^disconnect from {CLIENT}"
               r"(?: [a-z]+=\d+(?:/\d+)?)* commands=\d+(?:/\d+)?$"),
    re.compile(rf"^lost connection after [A-Z-]+ from {CLIENT}$"),
]


def parse(log):
    """[(prog, pid, text)] of every line; fails on a line with no
    syslog shape at all (pflogsumm would skip it silently)."""
    out = []
    for line in log.splitlines():
        m = LINE.match(line)
        assert m, f"not a syslog-shaped line: {line!r}"
        out.append((m["prog"], int(m["pid"]), m["text"]))
    return out


def message_lines(lines, qid):
    """[(prog, text after 'QID: ')] of the lines about message qid."""
    return [(p, t[len(qid) + 2:]) for p, _, t in lines
            if t.startswith(qid + ": ")]


def kind_of(prog, text):
    for kind, (progs, shape) in MESSAGE_SHAPES.items():
        if shape.match(text) and prog in progs:
            return kind
    return None


# ---- the scenario, run once for the module ----------------------------------

class Run:
    """What the scenario did, for the tests to compare the log with."""


def smtp_message(sender, rcpts, tag):
    return (f"From: <{sender}>\r\nTo: {', '.join(rcpts)}\r\n"
            f"Subject: {tag}\r\nMessage-ID: <{tag}@client.example>\r\n"
            f"\r\nbody of {tag}\r\n").encode()


def smtp_send(inst, sender, rcpts, tag):
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail(sender, rcpts, smtp_message(sender, rcpts, tag))


def sendmail(inst, *args, text):
    r = subprocess.run([binary("sendmail"), *args], input=text,
                       capture_output=True, text=True, env=inst.env(),
                       timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not os.path.exists(PFLOGSUMM):
        pytest.fail(f"{PFLOGSUMM} is missing: apt-get install pflogsumm "
                    "(scripts/deps test)")
    inst = Instance(tmp_path_factory.mktemp("logs") / "tern")
    # "info" is an alias of demo; "failing" pipes to a command that
    # fails, so its mail bounces; bob's Maildir is a plain file, so his
    # mail is deferred (the retry far away: exactly one deferral).
    inst.write_aliases("info demo\nfailing |exit 1\n")
    inst.write_main_cf(mynetworks="192.0.2.0/24",
                       minimal_backoff_time="300s",
                       maximal_backoff_time="600s",
                       queue_run_delay="300s")
    block_maildir(inst, "bob")
    me = f"{login()}@mx.example.test"
    try:
        inst.start()
        smtp_send(inst, "alice@example.test", ["demo@example.test"], "m1")
        smtp_send(inst, "news@sender.example",
                  ["info@example.test", "alice@example.test"], "m2")
        sendmail(inst, "-t", "-i",
                 text="To: demo@example.test\nSubject: m3\n\nbody\n")
        sendmail(inst, "-i", "alice@example.test",
                 text="Subject: m4\n\nbody\n")
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("news@sender.example")
            unknown = s.rcpt("nosuchuser@example.test")
            relay = s.rcpt("someone@elsewhere.example")
        assert unknown[0] == 550 and relay[0] == 554, (unknown, relay)
        smtp_send(inst, "news@sender.example", ["bob@example.test"], "m6")
        smtp_send(inst, "alice@example.test", ["failing@example.test"], "m7")

        def settled():
            return (len(maildir_messages(inst, "demo")) == 3 and
                    len(maildir_messages(inst, "alice")) == 3 and
                    len(ids_in(inst, "deferred")) == 1 and
                    not any(ids_in(inst, f) for f in
                            ("maildrop", "incoming", "active")))
        inst.wait_for(settled, timeout=30, what="every delivery to settle")
    finally:
        inst.stop()
        inst.kill_leftovers()
    r = Run()
    r.inst = inst
    r.me = me
    r.log = inst.log()
    r.lines = parse(r.log)
    r.report = subprocess.run(
        [PFLOGSUMM, "--syslog-name=tern", str(inst.maillog)],
        capture_output=True, text=True, timeout=60)
    assert r.report.returncode == 0, r.report.stderr
    # Queue IDs by how each message came in.
    r.received = {}
    for prog, _, text in r.lines:
        m = re.match(rf"^({QID}): (client=|uid=)", text)
        if m:
            r.received[m.group(1)] = prog
    r.tag = {}
    for prog, _, text in r.lines:
        m = re.match(rf"^({QID}): message-id=<(m\d)@client\.example>$",
                     text)
        if m:
            r.tag[m.group(2)] = m.group(1)
    pickups = [q for q, p in r.received.items() if p == "pickup"]
    assert len(pickups) == 2, r.log
    r.ndn = re.findall(rf"({QID}): sender non-delivery notification: "
                       rf"({QID})", r.log)
    return r


def section(report, title):
    """The lines of one section of pflogsumm's report."""
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(title):
            if line.rstrip().endswith(": none"):
                return []
            body = []
            for l in lines[i + 2:]:
                if not l.strip():
                    break
                body.append(l)
            return body
    pytest.fail(f"no section {title!r} in the report:\n{report}")


def counts(report, title):
    """{name: count} of a "N   name" section (senders, recipients)."""
    out = {}
    for line in section(report, title):
        m = re.match(r"^\s*(\d+)\s+(\S+)$", line)
        assert m, f"{title}: {line!r}"
        out[m.group(2)] = int(m.group(1))
    return out


# ---- pflogsumm --------------------------------------------------------------

def test_pflogsumm_grand_totals_count_what_happened(run):
    grand = run.report.stdout.split("Per-Hour Traffic Summary")[0]
    totals = {}
    for line in grand.splitlines():
        m = re.match(r"^\s*(\d+)\s+([a-z ]+?)\s*(?:\(|$)", line)
        if m:
            totals.setdefault(m.group(2), int(m.group(1)))
    want = {
        "received": 6,      # 4 by SMTP, 2 by sendmail
        "delivered": 6,     # demo 3 (one by the alias), alice 3 (one NDN)
        "forwarded": 0,
        "deferred": 1,
        "bounced": 1,
        "rejected": 2,      # the unknown user, the relay attempt
        "reject warnings": 0,
        "held": 0,
        "discarded": 0,
    }
    assert {k: totals.get(k) for k in want} == want, run.report.stdout
    assert re.search(r"^\s+1\s+deferred\s+\(1\s+deferrals\)",
                     run.report.stdout, re.M), run.report.stdout


def test_pflogsumm_names_the_envelope_senders(run):
    assert counts(run.report.stdout, "Senders by message count") == {
        "alice@example.test": 2, "news@sender.example": 2, run.me: 2}


def test_pflogsumm_names_the_final_recipients(run):
    assert counts(run.report.stdout, "Recipients by message count") == {
        "alice@example.test": 3, "demo@example.test": 3}


def test_pflogsumm_details_name_the_reasons(run):
    out = run.report.stdout
    rejects = "\n".join(section(out, "message reject detail"))
    assert re.search(r"Recipient address rejected: User unknown in local "
                     r"recipient table \(total: 1\)\n\s+1\s+"
                     r"nosuchuser@example\.test", rejects), rejects
    assert re.search(r"Relay access denied \(total: 1\)", rejects), rejects
    bounces = "\n".join(section(out, "message bounce detail (by relay)"))
    assert re.search(r"local \(total: 1\)\n\s+1\s+command exit status 1",
                     bounces), bounces
    deferrals = "\n".join(section(out, "message deferral detail"))
    assert re.search(r"\(total: 1\)\n\s+1\s+Not a directory", deferrals), \
        deferrals


def test_pflogsumm_sees_no_errors_and_no_unexpected_warnings(run):
    out = run.report.stdout
    assert re.search(r"^Fatal Errors: none$", out, re.M), out
    assert re.search(r"^Panics: none$", out, re.M), out
    warnings = section(out, "Warnings") if "\nWarnings\n" in out else []
    allowed = re.compile(r"^\s+(master \(total: 1\)|1\s+mail_owner \S+ has "
                         r"uid 0: the daemons will run with every priv)")
    # The only one: running the test suite as root.
    assert [w for w in warnings if not allowed.match(w)] == [], \
        [t for _, _, t in run.lines if t.startswith("warning: ")]
    master = section(out, "Master daemon messages")
    assert any(re.match(r"^\s+1\s+daemon started -- version \S+, "
                        r"configuration /", l) for l in master), master


def test_delivery_lines_come_from_the_delivery_agent(run):
    deliveries = [(p, t) for p, _, t in run.lines
                  if re.match(rf"^{QID}: to=<.*, relay=local,", t)]
    assert deliveries
    assert {p for p, _ in deliveries} == {"local"}, deliveries


# ---- shapes, line by line ---------------------------------------------------

def test_every_line_about_a_message_has_a_postfix_shape(run):
    """Each line that names a queue ID, NOQUEUE or an SMTP client is one
    of Postfix's shapes; anything else is listed."""
    odd = []
    for prog, _, text in run.lines:
        m = re.match(rf"^({QID}): (.*)$", text)
        if text.startswith("NOQUEUE: ") or (m and " reject: " in text):
            if not REJECT.match(text):
                odd.append((prog, text))
        elif m:
            if kind_of(prog, m.group(2)) is None:
                odd.append((prog, text))
        elif prog == "smtpd" and "[127.0.0.1]" in text:
            if not any(s.match(text) for s in SESSION_SHAPES):
                odd.append((prog, text))
    assert odd == [], "\n".join(f"{p}: {t}" for p, t in odd)


def test_smtp_message_life_from_connect_to_removed(run):
    qid = run.tag["m1"]
    life = [kind_of(p, t) for p, t in message_lines(run.lines, qid)]
    assert life == ["client", "message-id", "active", "delivery",
                    "removed"], message_lines(run.lines, qid)
    text = dict((kind_of(p, t), t) for p, t in message_lines(run.lines, qid))
    assert text["client"] == "client=localhost[127.0.0.1]"
    assert text["message-id"] == "message-id=<m1@client.example>"
    assert re.fullmatch(r"from=<alice@example\.test>, size=\d+, nrcpt=1 "
                        r"\(queue active\)", text["active"])
    m = re.fullmatch(
        r"to=<demo@example\.test>, relay=local, delay=(?P<delay>[\d.]+), "
        r"delays=(?P<a>[\d.]+)/(?P<b>[\d.]+)/(?P<c>[\d.]+)/(?P<d>[\d.]+), "
        r"dsn=2\.0\.0, status=sent \(delivered to maildir\)",
        text["delivery"])
    assert m, text["delivery"]
    # delay is the whole time in the queue; delays are its parts.
    parts = sum(float(m[k]) for k in "abcd")
    assert abs(float(m["delay"]) - parts) < 0.05, text["delivery"]
    # size= is the message as queued: at least what the client sent.
    size = int(re.search(r"size=(\d+)", text["active"]).group(1))
    assert size >= len(smtp_message("alice@example.test",
                                    ["demo@example.test"], "m1"))


def test_smtpd_sessions_log_connect_and_disconnect_with_command_counts(run):
    smtpd = [t for p, _, t in run.lines if p == "smtpd"]
    connects = [t for t in smtpd if t.startswith("connect from ")]
    disconnects = [t for t in smtpd if t.startswith("disconnect from ")]
    # Five sessions of the test, plus the harness's readiness probe.
    assert len(connects) == len(disconnects) == 6, smtpd
    assert disconnects.count(
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 "
        "quit=1 commands=5") == 3
    assert "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=2 " \
        "data=1 quit=1 commands=6" in disconnects
    # The rejected session: 0 of 2 RCPTs succeeded, 3 of 5 commands.
    assert "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=0/2 " \
        "quit=1 commands=3/5" in disconnects


def test_rejects_are_noqueue_lines_with_the_reply_and_envelope(run):
    rejects = [t for p, _, t in run.lines if p == "smtpd" and
               t.startswith("NOQUEUE: reject: ")]
    assert rejects == [
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 "
        "<nosuchuser@example.test>: Recipient address rejected: User "
        "unknown in local recipient table; from=<news@sender.example> "
        "to=<nosuchuser@example.test> proto=ESMTP helo=<client.example>",
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 "
        "<someone@elsewhere.example>: Relay access denied; "
        "from=<news@sender.example> to=<someone@elsewhere.example> "
        "proto=ESMTP helo=<client.example>",
    ]
    assert all(REJECT.match(t) for t in rejects)


def test_sendmail_messages_enter_through_pickup_with_uid_and_sender(run):
    uid = os.getuid()
    for qid, prog in run.received.items():
        if prog != "pickup":
            continue
        lines = message_lines(run.lines, qid)
        kinds = [kind_of(p, t) for p, t in lines]
        assert kinds[:2] == ["pickup", "message-id"], lines
        assert lines[0] == ("pickup", f"uid={uid} from=<{run.me}>")
        assert kinds[2:] == ["active", "delivery", "removed"], lines
        assert re.search(r"status=sent \(delivered to maildir\)",
                         lines[3][1])


def test_deferred_delivery_says_why_and_is_not_removed(run):
    qid = run.tag["m6"]
    lines = message_lines(run.lines, qid)
    assert [kind_of(p, t) for p, t in lines] == \
        ["client", "message-id", "active", "delivery"], lines
    assert re.fullmatch(
        r"to=<bob@example\.test>, relay=local, delay=[\d.]+, "
        r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=4\.\d+\.\d+, "
        r"status=deferred \(.*Not a directory\)", lines[3][1]), lines[3]
    assert ids_in(run.inst, "deferred") == [qid]


def test_bounce_logs_status_bounced_and_the_notification_id(run):
    qid = run.tag["m7"]
    lines = message_lines(run.lines, qid)
    assert [kind_of(p, t) for p, t in lines] == \
        ["client", "message-id", "active", "delivery", "ndn",
         "removed"], lines
    assert re.fullmatch(
        r"to=<failing@example\.test>, relay=local, delay=[\d.]+, "
        r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=5\.\d+\.\d+, "
        r"status=bounced \(.+\)", lines[3][1]), lines[3]
    assert len(run.ndn) == 1 and run.ndn[0][0] == qid
    ndn = run.ndn[0][1]
    ndn_lines = message_lines(run.lines, ndn)
    # (Its message-id= line: test_notification_logs_its_message_id.)
    rest = [(p, t) for p, t in ndn_lines if kind_of(p, t) != "message-id"]
    assert [kind_of(p, t) for p, t in rest] == \
        ["active", "delivery", "removed"], ndn_lines
    assert re.fullmatch(r"from=<>, size=\d+, nrcpt=1 \(queue active\)",
                        rest[0][1]), rest[0]
    assert re.match(r"to=<alice@example\.test>, relay=local, .*"
                    r"status=sent \(", rest[1][1]), rest[1]


def test_notification_logs_its_message_id(run):
    ndn = run.ndn[0][1]
    kinds = [kind_of(p, t) for p, t in message_lines(run.lines, ndn)]
    assert "message-id" in kinds


def test_alias_delivery_logs_the_final_address_and_orig_to(run):
    qid = run.tag["m2"]
    deliveries = [t for p, t in message_lines(run.lines, qid)
                  if t.startswith("to=")]
    assert any(re.match(r"to=<demo@example\.test>, "
                        r"orig_to=<info@example\.test>, relay=local, "
                        r".*status=sent \(", t) for t in deliveries), \
        deliveries


def test_virtual_alias_rewrite_reaches_the_agents_line_as_orig_to(instance):
    """qmgr rewrites sales@ to alice@ (virtual_alias_maps) before local
    sees it; local's line still names what the sender wrote, because
    qmgr hands the original address along with the request."""
    instance.write_main_cf(
        virtual_alias_maps="inline:{ sales@example.test=alice@example.test }")
    instance.start()
    smtp_send(instance, "news@sender.example", ["sales@example.test"], "va")
    instance.wait_for(lambda: "status=sent" in instance.log(),
                      what="the delivery line")
    line = [l for l in instance.log().splitlines() if "status=sent" in l]
    assert len(line) == 1, line
    assert re.search(rf"tern/local\[\d+\]: {QID}: to=<alice@example\.test>, "
                     r"orig_to=<sales@example\.test>, relay=local, "
                     rf"delay={NUM}, delays={NUM}/{NUM}/{NUM}/{NUM}, "
                     r"dsn=2\.0\.0, status=sent \(delivered to maildir\)$",
                     line[0]), line


def test_message_with_two_recipients_logs_nrcpt_2_and_two_lines(run):
    qid = run.tag["m2"]
    lines = message_lines(run.lines, qid)
    assert any(re.fullmatch(r"from=<news@sender\.example>, size=\d+, "
                            r"nrcpt=2 \(queue active\)", t)
               for _, t in lines), lines
    assert len([t for _, t in lines if t.startswith("to=")]) == 2
    assert lines[-1][1] == "removed"


# ---- maillog_file ------------------------------------------------------------

def test_maillog_file_gets_every_programs_lines(instance):
    """With maillog_file set, the control command, master and every
    daemon (-v makes each say when it is ready) write to that file, in
    the syslog shape."""
    instance.write_master_cf(
        f"127.0.0.1:{instance.smtp_port} inet n - n - - smtpd -v\n"
        "pickup    unix  n - n 60 1 pickup -v\n"
        "qmgr      unix  n - n 300 1 qmgr -v\n"
        "local     unix  - n n - - local -v\n")
    instance.start()
    smtp_send(instance, "alice@example.test", ["demo@example.test"], "ml")
    instance.wait_for(lambda: " removed" in instance.log(),
                      what="delivery")
    instance.stop()
    lines = parse(instance.log())
    progs = {p for p, _, _ in lines}
    assert {"tern", "master", "smtpd", "qmgr", "local", "pickup"} <= progs
    for prog in ("smtpd", "qmgr", "local", "pickup"):
        assert any(p == prog and re.match(rf"service \S+ \(\w+\): ready",
                                          t) for p, _, t in lines), \
            (prog, instance.log())
    # Each line is whole: one write each, even with many writers.
    assert instance.log().endswith("\n")


def test_empty_maillog_file_writes_no_file(instance):
    """With maillog_file empty the daemons log to syslog: mail still
    flows and no log file appears anywhere in the instance."""
    instance.write_main_cf(maillog_file="")
    instance.start()
    smtp_send(instance, "alice@example.test", ["demo@example.test"], "sl")
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    instance.stop()
    assert not instance.maillog.exists()
    stray = [p for p in instance.root.rglob("*")
             if p.is_file() and "log" in p.name.lower()
             and p != instance.aliases_file]
    assert stray == []


def test_syslog_name_sets_the_prefix_of_every_line(instance):
    instance.write_main_cf(syslog_name="postfix")
    instance.start()
    smtp_send(instance, "alice@example.test", ["demo@example.test"], "sn")
    instance.wait_for(lambda: " removed" in instance.log(),
                      what="delivery")
    instance.stop()
    log = instance.log()
    assert re.search(r" postfix/smtpd\[\d+\]: connect from ", log), log
    assert not re.search(r" tern/(smtpd|qmgr|master)\[", log), log


SYSLOG_INNER = r'''
import os, socket, subprocess, sys, time, smtplib
tmp, config_dir, port, maildir_new, out = sys.argv[1:6]
port = int(port)
# A private /dev in this mount namespace, with the few nodes programs
# need and a /dev/log that is ours.
old = os.path.join(tmp, "olddev")
os.mkdir(old)
subprocess.run(["mount", "--bind", "/dev", old], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/dev"],
               check=True)
for n in ("null", "zero", "random", "urandom", "full"):
    open("/dev/" + n, "w").close()
    subprocess.run(["mount", "--bind", os.path.join(old, n), "/dev/" + n],
                   check=True)
os.symlink("/proc/self/fd", "/dev/fd")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/dev/log")
sock.settimeout(0.2)
env = dict(os.environ, TERN_CONFIG_DIR=config_dir)
got = []
def drain(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got.append(sock.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            pass
subprocess.run([sys.argv[6], "start"], env=env, timeout=30, check=True,
               stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 15
while True:
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        drain(0.1)
s.sendmail("alice@example.test", ["demo@example.test"],
           b"Subject: via syslog\r\n\r\nbody\r\n")
s.quit()
deadline = time.monotonic() + 20
while not (os.path.isdir(maildir_new) and os.listdir(maildir_new)):
    if time.monotonic() > deadline:
        break
    drain(0.1)
drain(1.0)
subprocess.run([sys.argv[6], "stop"], env=env, timeout=30,
               stdout=subprocess.DEVNULL)
drain(1.0)
with open(out, "w") as f:
    f.write("\n".join(got) + "\n")
'''


def test_empty_maillog_file_logs_to_syslog_facility_mail(instance, tmp_path):
    """With maillog_file empty, lines go to syslog(3): facility mail,
    the tag tern/PROGRAM[PID]. Checked with a /dev/log of our own in a
    private mount namespace (needs root and unshare(1))."""
    unshare = shutil.which("unshare")
    if os.getuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare(1) for a private /dev/log")
    probe = subprocess.run([unshare, "-m", "--propagation", "private",
                            "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here: "
                    + probe.stderr.decode(errors="replace").strip())
    instance.write_main_cf(maillog_file="")
    inner = tmp_path / "inner.py"
    inner.write_text(SYSLOG_INNER)
    out = tmp_path / "syslog.txt"
    r = subprocess.run(
        [unshare, "-m", "--propagation", "private", "/usr/bin/python3",
         str(inner), str(tmp_path), str(instance.config_dir),
         str(instance.smtp_port), str(instance.maildir("demo") / "new"),
         str(out), binary("tern")],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    got = out.read_text().splitlines()
    mail_info = "<22>"          # facility mail (2) * 8 + info (6)
    tagged = {}
    for d in got:
        m = re.match(rf"^<(\d+)>{STAMP} tern/([a-z]+)\[\d+\]: (.*)$", d)
        if m:
            assert int(m.group(1)) >> 3 == 2, d     # facility mail
            tagged.setdefault(m.group(2), []).append(m.group(3))
    assert {"master", "smtpd", "qmgr", "pickup"} <= set(tagged), got
    assert any(d.startswith(mail_info) for d in got)
    assert any(re.match(rf"^{QID}: to=<demo@example\.test>, relay=local, "
                        r".*status=sent", t)
               for t in tagged.get("local", [])), got
    assert not instance.maillog.exists()
