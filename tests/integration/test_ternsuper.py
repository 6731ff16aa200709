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
                     maildir_messages, open_instance, queue_files, run_as,
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


def test_active_messages_are_left_to_qmgr_while_it_runs(instance):
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
    r = instance.run("ternsuper", "-d", qid, "active")
    assert r.returncode == 1
    assert "is being delivered (active/)" in r.stderr
    assert active.exists()
    r = instance.run("ternsuper", "-h", "ALL", "active")
    assert r.returncode == 0
    assert "Skipped: 1 message being delivered" in r.stderr
    assert active.exists()
    instance.stop()
    r = instance.run("ternsuper", "-d", qid, "active")
    assert r.returncode == 0, r.stderr
    assert not active.exists()


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
