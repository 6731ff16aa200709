"""
ternsuper on a live instance: delete, hold, release, requeue, the
structure check and the statistics, each doing exactly what it says
without losing or duplicating a message; and who may run it.
"""
import re
import shutil
import time

import pytest

from optools import (block_maildir, defer_config, ids_in,
                     maildir_messages, open_instance, queue_files,
                     request_as, run_as, shared_folder, slow_alias,
                     smtp_send, unblock_maildir, wait_deferred)


def subjects(inst, user="demo"):
    out = []
    for raw in maildir_messages(inst, user):
        m = re.search(rb"Subject: (.*)\n", raw)
        out.append(m.group(1).decode())
    return sorted(out)


def deferred_instance(instance, n):
    block_maildir(instance)
    defer_config(instance)
    instance.start()
    for i in range(n):
        smtp_send(instance, f"msg {i:02d}")
    wait_deferred(instance, n)
    return ids_in(instance, "deferred")


def test_hold_and_release(instance):
    (qid,) = deferred_instance(instance, 1)
    r = instance.run("ternsuper", "-h", qid)
    assert r.returncode == 0, r.stderr
    assert f"ternsuper: {qid}: placed on hold\n" in r.stderr
    assert "ternsuper: Placed on hold: 1 message\n" in r.stderr
    assert queue_files(instance) == {f"hold/{qid}"}
    assert re.search(rf"tern/ternsuper\[\d+\]: {qid}: placed on hold",
                     instance.log())
    assert re.search(rf"^{qid}!", instance.run("ternqueue", "-p").stdout,
                     re.M)
    # Held mail is not delivered, even on a flush.
    unblock_maildir(instance)
    instance.run("ternqueue", "-f")
    time.sleep(1)
    assert maildir_messages(instance) == []
    assert queue_files(instance) == {f"hold/{qid}"}
    # Released, it is due at once.
    r = instance.run("ternsuper", "-H", qid)
    assert r.returncode == 0, r.stderr
    assert f"ternsuper: {qid}: released from hold\n" in r.stderr
    instance.wait_for(lambda: subjects(instance) == ["msg 00"],
                      what="delivery after release")
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")


def test_delete_all_deferred_and_ids_from_stdin(instance):
    ids = deferred_instance(instance, 4)
    r = instance.run("ternsuper", "-d", "-", input=f"{ids[0]}\n  {ids[1]}\n")
    assert r.returncode == 0, r.stderr
    assert "Deleted: 2 messages" in r.stderr
    assert ids_in(instance, "deferred") == ids[2:]
    r = instance.run("ternsuper", "-d", "ALL", "deferred")
    assert r.returncode == 0, r.stderr
    for qid in ids[2:]:
        assert f"{qid}: removed" in r.stderr
    assert "Deleted: 2 messages" in r.stderr
    assert queue_files(instance) == set()
    unblock_maildir(instance)
    instance.run("ternqueue", "-f")
    time.sleep(1)
    assert maildir_messages(instance) == []
    # A named message that is not there is an error.
    r = instance.run("ternsuper", "-d", ids[0])
    assert r.returncode == 1
    assert "no such message" in r.stderr


def test_requeue_goes_back_through_qmgr_once(instance):
    ids = deferred_instance(instance, 2)
    unblock_maildir(instance)
    r = instance.run("ternsuper", "-r", "ALL")
    assert r.returncode == 0, r.stderr
    assert "Requeued: 2 messages" in r.stderr
    for qid in ids:
        assert f"{qid}: requeued" in r.stderr
    # Back in incoming/, qmgr takes them without a flush.
    instance.wait_for(lambda: subjects(instance) == ["msg 00", "msg 01"],
                      what="requeued mail delivered")
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")
    time.sleep(0.5)
    assert subjects(instance) == ["msg 00", "msg 01"]


def test_all_operations_lose_and_duplicate_nothing(instance):
    """Twenty deferred messages through hold ALL, release ALL, hold
    again, requeue ALL while qmgr is running and flushes are asked for:
    each is delivered exactly once at the end."""
    instance.write_main_cf(queue_run_delay="1s")
    ids = deferred_instance(instance, 20)
    for args in (("-h", "ALL"), ("-H", "ALL"), ("-h", "ALL"),
                 ("-r", "ALL")):
        instance.run("ternqueue", "-f")
        r = instance.run("ternsuper", *args)
        assert r.returncode == 0, r.stderr
        # Count once qmgr has put down what it took up: a file it moves
        # from active/ to deferred/ between two listings would be seen
        # in both.
        instance.wait_for(lambda: ids_in(instance, "incoming") == [] and
                          ids_in(instance, "active") == [],
                          what="the queue at rest")
        files = queue_files(instance)
        assert len(files) == 20, (args, files)
        assert {f.split("/")[1] for f in files} == set(ids)
    unblock_maildir(instance)
    instance.run("ternqueue", "-f")
    want = sorted(f"msg {i:02d}" for i in range(20))
    instance.wait_for(lambda: subjects(instance) == want, timeout=30,
                      what="twenty deliveries")
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")
    time.sleep(1)
    assert subjects(instance) == want


def test_a_file_in_active_that_qmgr_does_not_have_is_handled_directly(
        instance):
    """A file in active/ that qmgr has not in memory (qmgr says
    "notfound") is one it leaves alone until it restarts: ternsuper
    deletes or holds it itself. -r of active mail still waits for
    qmgr."""
    ids = deferred_instance(instance, 1)
    instance.stop()
    active = instance.queue_dir / "active" / ids[0]
    (instance.queue_dir / "deferred" / ids[0]).rename(active)
    instance.start()
    # qmgr put it back to incoming at start; make a stand-in it does
    # not know of, so the test does not race a real delivery.
    instance.wait_for(lambda: ids_in(instance, "active") == [] and
                      ids_in(instance, "incoming") == [],
                      what="qmgr to settle")
    qid = ids_in(instance, "deferred")[0]
    shutil.copy(instance.queue_dir / "deferred" / qid, active)
    r = instance.run("ternsuper", "-r", qid, "active")
    assert r.returncode == 1
    assert "is being delivered (active/)" in r.stderr
    assert active.exists()
    r = instance.run("ternsuper", "-r", "ALL", "active")
    assert r.returncode == 0
    assert "Skipped: 1 message being delivered" in r.stderr
    r = instance.run("ternsuper", "-h", "ALL", "active")
    assert r.returncode == 0, r.stderr
    assert f"ternsuper: {qid}: placed on hold\n" in r.stderr
    assert not active.exists()
    held = instance.queue_dir / "hold" / qid
    assert held.exists()
    held.rename(active)
    r = instance.run("ternsuper", "-d", qid, "active")
    assert r.returncode == 0, r.stderr
    assert not active.exists()
    assert re.search(rf"tern/ternsuper\[\d+\]: {qid}: removed",
                     instance.log())
    # The deferred original is untouched.
    assert queue_files(instance) == {f"deferred/{qid}"}


# ---- -d / -h of mail qmgr is delivering ----

@pytest.fixture
def shared_dir():
    """A folder a command delivery may write: a pipe in aliases runs as
    default_privs (nobody) when the tests run as root."""
    d = shared_folder()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def slow_instance(inst, shared):
    """One local delivery at a time (local maxproc 1), one recipient per
    delivery, and the alias slow@ of optools.slow_alias: mail for it sits
    in a running delivery; mail behind it waits in active/."""
    inst.write_master_cf()
    cf = inst.config_dir / "master.cf"
    text = cf.read_text()
    local = "local     unix  - n n - - local"
    assert local in text
    cf.write_text(text.replace(local, "local     unix  - n n - 1 local"))
    slow_alias(inst, shared)
    inst.write_main_cf(local_destination_recipient_limit="1")
    defer_config(inst)
    inst.start()


def subject_of(raw):
    return re.search(rb"Subject: (.*)\n", raw).group(1).decode()


ACTIVATED = re.compile(r"tern/qmgr\[\d+\]: (\w+): from=<.*\(queue active\)")


def sent_ids(inst, count, before=0):
    """Queue IDs of the messages qmgr took into active/ after the first
    before ones, in order, once there are count of them."""
    inst.wait_for(lambda: len(ACTIVATED.findall(inst.log())) >=
                  before + count, what=f"{count} messages in active/")
    return ACTIVATED.findall(inst.log())[before:before + count]


def wait_started(inst, shared):
    inst.wait_for(lambda: (shared / "started").exists(), timeout=20,
                  what="the slow delivery to start")


def piped_subjects(shared):
    out = shared / "out"
    return sorted(re.findall(r"^Subject: (.*)$", out.read_text(), re.M)) \
        if out.exists() else []


def test_delete_and_hold_of_messages_qmgr_is_delivering(instance,
                                                        shared_dir):
    """While one delivery runs (to a command that waits), three more
    messages wait behind it in active/. -d and -h of waiting ones are
    done at once; -d of the one being delivered waits for that delivery
    to end, which is never cut off. Every message ends up delivered
    exactly once, removed, or held; nothing stays in active/."""
    slow_instance(instance, shared_dir)
    smtp_send(instance, "running", rcpts=("slow@example.test",))
    wait_started(instance, shared_dir)
    for subject in ("delete me", "hold me", "deliver me"):
        smtp_send(instance, subject)
    running, gone, held, kept = sent_ids(instance, 4)
    assert set(ids_in(instance, "active")) == {running, gone, held, kept}

    r = instance.run("ternsuper", "-d", gone)
    assert r.returncode == 0, r.stderr
    assert f"ternsuper: {gone}: removed\n" in r.stderr
    assert "Deleted: 1 message" in r.stderr
    assert gone not in ids_in(instance, "active")
    assert re.search(rf"tern/qmgr\[\d+\]: {gone}: removed$", instance.log(),
                     re.M)

    r = instance.run("ternsuper", "-h", held)
    assert r.returncode == 0, r.stderr
    assert f"ternsuper: {held}: placed on hold\n" in r.stderr
    assert ids_in(instance, "hold") == [held]
    assert re.search(rf"tern/qmgr\[\d+\]: {held}: placed on hold$",
                     instance.log(), re.M)

    r = instance.run("ternsuper", "-d", running)
    assert r.returncode == 0, r.stderr
    assert (f"ternsuper: {running}: will be removed when the 1 delivery "
            "in progress ends\n") in r.stderr
    assert running in ids_in(instance, "active")
    assert f"{running}: delete requested: 0 waiting deliveries dropped; " \
        "1 in progress must end first" in instance.log()

    (shared_dir / "go").touch()
    instance.wait_for(lambda: queue_files(instance) == {f"hold/{held}"},
                      timeout=20, what="active/ to empty")
    instance.wait_for(lambda: subjects(instance) == ["deliver me"],
                      what="the message left alone to be delivered")
    assert piped_subjects(shared_dir) == ["running"]
    assert re.search(rf"{running}: to=<slow@example\.test>.*status=sent",
                     instance.log())
    assert re.search(rf"tern/qmgr\[\d+\]: {running}: removed$",
                     instance.log(), re.M)
    # The deleted one was never delivered; the held one is, once, when
    # released.
    r = instance.run("ternsuper", "-H", held)
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: subjects(instance) == ["deliver me",
                                                     "hold me"],
                      what="the released message")
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")
    time.sleep(0.5)
    assert subjects(instance) == ["deliver me", "hold me"]
    assert piped_subjects(shared_dir) == ["running"]
    assert f"{gone}: to=<" not in instance.log()


def test_hold_during_delivery_keeps_what_is_left_for_the_release(
        instance, shared_dir):
    """A message for two recipients, one being delivered (a waiting
    command) and one waiting: -h drops the waiting delivery, lets the
    running one end, then moves the file to hold/ with that recipient
    marked done. Released, only the other recipient gets it."""
    slow_instance(instance, shared_dir)
    smtp_send(instance, "two", rcpts=("slow@example.test",
                                      "demo@example.test"))
    wait_started(instance, shared_dir)
    (qid,) = sent_ids(instance, 1)
    r = instance.run("ternsuper", "-h", qid)
    assert r.returncode == 0, r.stderr
    assert (f"ternsuper: {qid}: will be placed on hold when the 1 "
            "delivery in progress ends\n") in r.stderr
    assert f"{qid}: hold requested: 1 waiting delivery dropped" in \
        instance.log()
    assert ids_in(instance, "active") == [qid]
    (shared_dir / "go").touch()
    instance.wait_for(lambda: queue_files(instance) == {f"hold/{qid}"},
                      timeout=20, what="the message in hold/")
    assert piped_subjects(shared_dir) == ["two"]
    assert subjects(instance) == []
    listing = instance.run("ternqueue", "-p").stdout
    assert re.search(rf"^{qid}!", listing, re.M)
    assert "demo@example.test" in listing
    assert "slow@example.test" not in listing
    r = instance.run("ternsuper", "-H", qid)
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: subjects(instance) == ["two"],
                      what="delivery of the rest after release")
    instance.wait_for(lambda: queue_files(instance) == set(),
                      what="an empty queue")
    time.sleep(0.5)
    assert piped_subjects(shared_dir) == ["two"]
    assert subjects(instance) == ["two"]


def test_delete_all_active_while_qmgr_delivers(instance, shared_dir):
    """-d ALL active with one delivery running and five waiting: the
    waiting ones go at once, the running one when its delivery ends;
    deferred mail is not touched; nothing is delivered but the one in
    progress, and active/ ends empty."""
    slow_instance(instance, shared_dir)
    block_maildir(instance, "alice")
    smtp_send(instance, "parked", rcpts=("alice@example.test",))
    wait_deferred(instance, 1)
    parked = ids_in(instance, "deferred")
    smtp_send(instance, "running", rcpts=("slow@example.test",))
    wait_started(instance, shared_dir)
    for i in range(5):
        smtp_send(instance, f"waiting {i}")
    ids = sent_ids(instance, 6, before=1)
    assert set(ids_in(instance, "active")) == set(ids)
    r = instance.run("ternsuper", "-d", "ALL", "active")
    assert r.returncode == 0, r.stderr
    assert "Deleted: 6 messages" in r.stderr
    for qid in ids[1:]:
        assert f"ternsuper: {qid}: removed\n" in r.stderr
    assert f"ternsuper: {ids[0]}: will be removed when" in r.stderr
    assert ids_in(instance, "active") == [ids[0]]
    (shared_dir / "go").touch()
    instance.wait_for(lambda: queue_files(instance) ==
                      {f"deferred/{parked[0]}"}, timeout=20,
                      what="active/ to empty")
    time.sleep(0.5)
    assert piped_subjects(shared_dir) == ["running"]
    assert subjects(instance) == []
    for qid in ids:
        assert re.search(rf"tern/qmgr\[\d+\]: {qid}: removed$",
                         instance.log(), re.M)


def test_structure_check_repairs_and_statistics_count(instance):
    ids = deferred_instance(instance, 2)
    instance.stop()
    q = instance.queue_dir
    shutil.rmtree(q / "hold")
    (q / "deferred" / "junk name").write_text("x")
    bad = "0" * 13 + "ABC"
    (q / "deferred" / bad).write_text("not a queue file\n")
    (q / "incoming" / ".tmp-999.1.1").write_text("half a message")
    r = instance.run("ternsuper", "-s")
    assert r.returncode == 0, r.stderr
    assert (q / "hold").is_dir()
    assert sorted(p.name for p in (q / "corrupt").iterdir()) == \
        sorted(["junk name", bad])
    assert not (q / "incoming" / ".tmp-999.1.1").exists()
    assert ids_in(instance, "deferred") == ids
    assert "not a queue ID" in r.stderr and "corrupt queue file" in r.stderr
    r = instance.run("ternsuper", "-S")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:]
            for line in r.stdout.splitlines()[1:]}
    assert rows["deferred"][0] == "2"
    assert rows["corrupt"][0] == "2"
    assert rows["incoming"] == ["0", "0"]
    size = sum((q / "deferred" / i).stat().st_size for i in ids)
    assert rows["deferred"][1] == str(size)
    assert rows["total"][0] == "4"


def test_usage_errors(instance):
    assert instance.run("ternsuper").returncode == 64
    assert instance.run("ternsuper", "-d", "ALL", "nowhere").returncode == 64
    assert instance.run("ternsuper", "-d", "-", "-h", "-").returncode == 64


@pytest.fixture
def open_inst():
    inst, root = open_instance("/tmp")
    yield inst
    try:
        inst.stop()
    finally:
        inst.kill_leftovers()
        shutil.rmtree(root, ignore_errors=True)


def test_refuses_a_user_who_is_neither_root_nor_mail_owner(open_inst):
    inst = open_inst
    inst.start()
    inst.stop()
    r = run_as(inst, "nobody", "ternsuper", "-d", "ALL")
    assert r.returncode == 77, r.stderr
    assert r.stderr.startswith("ternsuper: fatal: ternsuper must be run "
                               "by the super-user or mail_owner")


def test_only_root_and_mail_owner_may_delete_through_qmgr(open_inst):
    """public/ is open to every local user (mode 0711): qmgr takes
    delete and hold only from root and mail_owner, by the kernel's word
    on who connected, whatever the request says."""
    inst = open_inst
    shared = shared_folder()
    try:
        slow_instance(inst, shared)
        smtp_send(inst, "running", rcpts=("slow@example.test",))
        wait_started(inst, shared)
        (qid,) = sent_ids(inst, 1)
        sock = inst.queue_dir / "public" / "qmgr"
        for what in ("delete", "hold"):
            answer = request_as(inst, "nobody", sock,
                                {"request": what, "queue_id": qid})
            assert answer == (f"status=1\nreason={what} is for root and "
                              "mail_owner only\n\n")
        assert ids_in(inst, "active") == [qid]
        (shared / "go").touch()
        inst.wait_for(lambda: queue_files(inst) == set(), timeout=20,
                      what="the delivery to end")
        assert re.search(rf"{qid}: to=<slow@example\.test>.*status=sent",
                         inst.log())
    finally:
        shutil.rmtree(shared, ignore_errors=True)
