"""
End to end: an SMTP client hands a message to smtpd, it is stored in the
queue, qmgr schedules it, local puts it in a Maildir. Real clients
(smtplib, swaks), a real instance started with `tern start`.
"""
import email
import email.policy
import os
import pathlib
import random
import re
import shutil
import signal
import smtplib
import subprocess
import threading
import time

import pytest

from conftest import binary
from optools import ids_in, shared_folder, slow_alias


def maildir_messages(inst, user="demo"):
    new = inst.maildir(user) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def queue_files(inst):
    out = []
    for folder in ("incoming", "active", "deferred", "hold", "corrupt"):
        d = inst.queue_dir / folder
        if d.is_dir():
            out += [f"{folder}/{n}" for n in os.listdir(d)]
    return out


def split_delivered(raw):
    """Headers Tern added, and the message as the client sent it."""
    text = raw.decode("utf-8", "surrogateescape")
    added = []
    while True:
        m = re.match(r"(Return-Path|Delivered-To|Received): [^\n]*\n"
                     r"((?:[ \t][^\n]*\n)*)", text)
        if not m:
            break
        added.append(m.group(0))
        text = text[m.end():]
    return added, text


MESSAGE = (
    "From: Alice <alice@example.test>\r\n"
    "To: Demo <demo@example.test>\r\n"
    "Subject: end to end\r\n"
    "Message-ID: <e2e-1@example.test>\r\n"
    "\r\n"
    "First line.\r\n"
    "..a line that starts with a dot\r\n"
    "\r\n"
    "Last line with 8-bit: caf\xc3\xa9\r\n"
)


def test_smtplib_message_lands_in_maildir_byte_for_byte(instance):
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example.test")
        s.sendmail("alice@example.test", ["demo@example.test"],
                   MESSAGE.encode("latin-1"))
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery to demo's Maildir")
    raw = maildir_messages(instance)[0]
    added, rest = split_delivered(raw)
    assert [h.split(":")[0] for h in added] == \
        ["Return-Path", "Delivered-To", "Received"]
    assert added[0] == "Return-Path: <alice@example.test>\n"
    assert added[1] == "Delivered-To: demo@example.test\n"
    assert "by mx.example.test" in added[2]
    # smtplib dot-stuffed the line; the Maildir has it as sent, LF ends.
    sent = MESSAGE.encode("latin-1").replace(b"\r\n", b"\n")
    assert rest.encode("utf-8", "surrogateescape") == sent
    instance.wait_for(lambda: queue_files(instance) == [],
                      what="the queue file to be removed")


def test_log_shows_the_whole_life_in_postfix_shapes(instance):
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["demo@example.test"],
                   MESSAGE.encode("latin-1"))
    instance.wait_for(lambda: " removed" in instance.log(),
                      what="the 'removed' log line")
    log = instance.log()
    qid = re.search(r"smtpd\[\d+\]: ([0-9A-F]+): client=localhost\[127\.0\.0\.1\]",
                    log)
    assert qid, log
    qid = qid.group(1)
    shapes = [
        r"tern/smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]",
        rf"{qid}: message-id=<e2e-1@example\.test>",
        rf"tern/qmgr\[\d+\]: {qid}: from=<alice@example\.test>, "
        r"size=\d+, nrcpt=1 \(queue active\)",
        rf"{qid}: to=<demo@example\.test>, relay=local, delay=[\d.]+, "
        r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(",
        rf"tern/qmgr\[\d+\]: {qid}: removed",
        r"tern/smtpd\[\d+\]: disconnect from localhost\[127\.0\.0\.1\] "
        r"(ehlo|helo)=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    ]
    for shape in shapes:
        assert re.search(shape, log), f"missing {shape!r} in\n{log}"


def test_swaks_delivers_to_a_local_user(instance):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/deps test installs it)")
    instance.start()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(instance.smtp_port),
         "--from", "bob@example.test", "--to", "demo@example.test",
         "--header", "Subject: from swaks", "--body", "swaks body",
         "--timeout", "10"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"<[-~]  250 2\.0\.0 Ok: queued as [0-9A-F]+", r.stdout)
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery")
    raw = maildir_messages(instance)[0]
    assert b"Subject: from swaks\n" in raw
    assert raw.split(b"\n\n", 1)[1].rstrip(b"\n") == b"swaks body"


def test_unknown_user_and_relay_attempt_queue_nothing(instance):
    instance.write_main_cf(mynetworks="192.0.2.0/24")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example.test")
        s.mail("alice@example.test")
        code, text = s.rcpt("nosuchuser@example.test")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        code, text = s.rcpt("someone@elsewhere.example")
        assert code == 554 and text.startswith(b"5.7.1"), (code, text)
    assert queue_files(instance) == []


# --- durability --------------------------------------------------------

def instance_pids(inst):
    """Every process running for this instance (its config dir in argv)."""
    key = str(inst.config_dir).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if key in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def body_for(i):
    line = f"message {i} " + "x" * 60 + "\r\n"
    return line * (1 + i % 40)


def test_durability_under_random_sigkill(instance):
    """
    200 messages from 10 concurrent clients while every Tern process is
    killed with SIGKILL at random moments and restarted. Every message
    that got a 250 is delivered, none is corrupted; duplicates come only
    from deliveries in flight or replies lost in a kill, and are counted.
    """
    instance.write_main_cf(minimal_backoff_time="1s",
                           maximal_backoff_time="2s",
                           queue_run_delay="1s")
    instance.start()
    rng = random.Random(4242)
    accepted = set()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 120

    def client(first):
        for i in range(first, 200, 10):
            msg = (f"From: c@example.test\r\nTo: demo@example.test\r\n"
                   f"Subject: durability {i}\r\n"
                   f"Message-ID: <dur-{i}@example.test>\r\n\r\n" + body_for(i))
            while time.monotonic() < deadline:
                try:
                    with smtplib.SMTP("127.0.0.1", instance.smtp_port,
                                      timeout=10) as s:
                        s.sendmail("c@example.test", ["demo@example.test"],
                                   msg.encode())
                    with lock:
                        accepted.add(i)
                    time.sleep(0.03)    # keep traffic going across kills
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.1)

    kills = []

    def killer():
        # Each kill lands after a random further 10 to 40 accepted
        # messages, so that at least four land during the traffic however
        # fast the machine moves it (by the clock, a fast run was over
        # before the third).
        target = 0
        while not stop.is_set() and len(kills) < 8:
            target += rng.randint(10, 40)
            while not stop.is_set() and len(accepted) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            if stop.is_set():
                break
            for pid in instance_pids(instance):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            kills.append(len(accepted))
            time.sleep(0.2)
            instance.run("tern", "start", timeout=15)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
    k = threading.Thread(target=killer)
    for t in threads:
        t.start()
    k.start()
    for t in threads:
        t.join(timeout=130)
    stop.set()
    k.join(timeout=30)
    if not instance.smtp_ready():
        instance.run("tern", "start", timeout=15)

    assert len(accepted) == 200, f"clients gave up on {200 - len(accepted)}"
    mid_traffic = [n for n in kills if 0 < n < 200]
    assert len(mid_traffic) >= 3, f"too few kills during traffic: {kills}"

    def all_delivered():
        seen = {int(m.group(1)) for raw in maildir_messages(instance)
                for m in [re.search(rb"Subject: durability (\d+)\n", raw)]
                if m}
        return seen >= accepted and not any(
            f.startswith(("incoming/", "active/", "deferred/"))
            for f in queue_files(instance))

    instance.wait_for(all_delivered, timeout=90, what="every message delivered")
    counts = {}
    for raw in maildir_messages(instance):
        m = re.search(rb"Subject: durability (\d+)\n", raw)
        assert m, raw[:300]
        i = int(m.group(1))
        counts[i] = counts.get(i, 0) + 1
        body = raw.split(b"\n\n", 1)[1]
        assert body == body_for(i).replace("\r\n", "\n").encode(), \
            f"message {i} corrupted"
    dups = sum(c - 1 for c in counts.values())
    print(f"durability: 200 accepted, {len(counts)} delivered, "
          f"{dups} duplicates, {len(kills)} kills at {kills} accepted")
    assert set(counts) == accepted
    assert not any(f.startswith("corrupt/") for f in queue_files(instance))
    # A kill repeats what local had delivered and not yet answered:
    # local_destination_concurrency_limit (2) connections, each with a
    # batch of up to local_delivery_batch_limit (5) requests. (smtpd's
    # window between its fsync and the 250 is far shorter.) Mail
    # delivered again wholesale after a restart would be far more.
    in_flight = 2 * 5
    assert dups <= len(kills) * in_flight, \
        f"{dups} duplicates is more than deliveries in flight"


# --- deferral, flush, expiry -------------------------------------------

def test_unwritable_mailbox_defers_then_flush_delivers(instance):
    maildir = instance.maildir("demo")
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.parent.mkdir(parents=True, exist_ok=True)
    maildir.write_text("not a folder\n")      # stops even root
    instance.write_main_cf(minimal_backoff_time="300s",
                           maximal_backoff_time="600s")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: deferred\r\n\r\nbody\r\n")
    instance.wait_for(lambda: any(f.startswith("deferred/")
                                  for f in queue_files(instance)),
                      what="the message to be deferred")
    assert "status=deferred" in instance.log()
    maildir.unlink()
    r = instance.run("tern", "flush")
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery after flush")
    assert b"Subject: deferred\n" in maildir_messages(instance)[0]


def test_expired_message_returns_a_dsn_clients_parse(instance):
    maildir = instance.maildir("demo")
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.parent.mkdir(parents=True, exist_ok=True)
    maildir.write_text("not a folder\n")
    instance.write_main_cf(maximal_queue_lifetime="3s",
                           minimal_backoff_time="1s",
                           maximal_backoff_time="1s",
                           queue_run_delay="1s")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["demo@example.test"],
                   b"Subject: will expire\r\nMessage-ID: <exp@x.test>\r\n"
                   b"\r\nbody\r\n")
    instance.wait_for(lambda: len(maildir_messages(instance, "alice")) == 1,
                      timeout=30, what="the DSN in alice's Maildir")
    raw = maildir_messages(instance, "alice")[0]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts[:2] == ["text/plain", "message/delivery-status"]
    status = next(p for p in msg.iter_parts()
                  if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Final-Recipient: rfc822; demo@example.test" in text
    assert "Action: failed" in text
    assert re.search(r"Status: 5\.\d\.\d", text)
    assert raw.startswith(b"Return-Path: <>\n")
    # The DSN is in the Maildir a moment before qmgr removes its file.
    instance.wait_for(lambda: queue_files(instance) == [],
                      what="the queue to empty")


def test_quoted_local_part_with_extension_reaches_the_user(instance):
    """smtpd accepts "demo+x y"@domain as demo with an extension; local
    must unquote it the same way and deliver, not bounce."""
    instance.write_main_cf(recipient_delimiter="+")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example.test")
        s.mail("alice@example.test")
        code, text = s.rcpt('"demo+x y"@example.test')
        assert code == 250, (code, text)
        code, text = s.data(b"Subject: quoted\r\n\r\nbody\r\n")
        assert code == 250, (code, text)
    instance.wait_for(lambda: len(maildir_messages(instance)) == 1,
                      what="delivery to demo")
    assert b"Subject: quoted\n" in maildir_messages(instance)[0]
    assert "status=bounced" not in instance.log()


def test_virtual_domain_given_as_parent_pattern_is_delivered(instance):
    """virtual_mailbox_domains = .virt.test: smtpd, qmgr and local all
    read it with the same matcher, so mail smtpd accepts is delivered."""
    vbase = instance.root / "vmail"
    vbase.mkdir()
    if os.getuid() == 0:
        # pytest's folders are 0700: nobody could not reach vmail there.
        import tempfile
        vbase = pathlib.Path(tempfile.mkdtemp(prefix="tern-vmail-"))
        os.chmod(vbase, 0o755)
    maps = instance.root / "vmailbox"
    maps.write_text("info@sub.virt.test sub/info/\n")
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        # virtual_minimum_uid never lets a virtual mailbox be root's.
        uid = gid = 65534
        os.chown(vbase, uid, gid)
    instance.write_main_cf(virtual_mailbox_domains=".virt.test",
                           virtual_mailbox_base=str(vbase),
                           virtual_mailbox_maps=f"texthash:{maps}",
                           virtual_uid_maps=f"static:{uid}",
                           virtual_gid_maps=f"static:{gid}",
                           virtual_minimum_uid="100")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.sendmail("alice@example.test", ["info@sub.virt.test"],
                   b"Subject: virtual\r\n\r\nbody\r\n")
    new = vbase / "sub" / "info" / "new"
    try:
        instance.wait_for(lambda: new.is_dir() and len(os.listdir(new)) == 1,
                          what="virtual delivery")
        assert "status=bounced" not in instance.log()
    finally:
        if not str(vbase).startswith(str(instance.root)):
            shutil.rmtree(vbase, ignore_errors=True)


# ---- stopping qmgr with a delivery in progress ----

@pytest.mark.parametrize("how", ["reload", "stop"])
def test_qmgr_told_to_stop_lets_a_delivery_in_progress_end(instance, how):
    """The agents do not write results into the queue file; qmgr does.
    A qmgr that quit while local was delivering would leave the message
    in active/ and its successor would deliver it again. Told to stop
    (tern stop, or a reload that changed main.cf and so replaces qmgr),
    it waits for the delivery in progress, records it, and only then
    exits: the command behind the alias runs once."""
    shared = shared_folder()
    try:
        slow_alias(instance, shared)
        instance.start()
        with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
            s.sendmail("alice@example.test", ["slow@example.test"],
                       b"Subject: slow\r\n\r\nslow one\r\n")
        instance.wait_for(lambda: (shared / "started").exists(),
                          what="the delivery to start")
        if how == "reload":
            instance.write_main_cf(delay_warning_time="4h")
            cmd = [binary("tern"), "reload"]
        else:
            cmd = [binary("tern"), "stop"]
        p = subprocess.Popen(cmd, env=instance.env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        instance.wait_for(lambda: "stopping after the deliveries in "
                          "progress" in instance.log(),
                          what="qmgr waiting for the delivery")
        (shared / "go").touch()
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, out + err
        if how == "stop":
            instance.start()
        instance.wait_for(lambda: "status=sent" in instance.log(),
                          what="the delivery line")
        instance.wait_for(lambda: not any(
            ids_in(instance, f) for f in ("incoming", "active",
                                           "deferred")),
            timeout=20, what="an empty queue")
        time.sleep(1.5)         # a repeated delivery would have begun
        assert (shared / "started").read_text().count("started") == 1
        assert (shared / "out").read_text().count("slow one") == 1
        assert "deliveries still in progress" not in instance.log()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
