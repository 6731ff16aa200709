"""
qmgr's routing and per-destination scheduling, seen from the delivery
agents' side: a real qmgr process (started stand-alone, as in
test_qmgr.py) and FAKE agents on private/smtp and private/local that
answer as each test scripts them. This pins down what qmgr decides --
which transport and next hop each recipient goes to, how many requests
run at once, when a destination is dead, what a flush retries, delay
warnings -- independently of the real smtp client (test_relay.py runs
the whole chain with it).
"""
import email
import email.policy
import os
import threading
import time

from test_qmgr import (MESSAGE, log_line, q, read_queue_file,  # noqa: F401
                       wait_log, where, write_queue_file)

SENDER = "alice@example.test"
REFUSED = ("deferred", "4.4.1",
           "connect to mx.b.test[127.0.0.2]:25: Connection refused")


def sent(addr, req):
    return ("sent", "2.0.0", "250 2.0.0 Ok: queued as X")


def with_smtp_service(q, maxproc="-"):
    """master.cf with the smtp transport, as a relaying instance has."""
    text = (q.inst.config_dir / "master.cf").read_text()
    (q.inst.config_dir / "master.cf").write_text(
        text + f"smtp      unix  -       -       n       -       {maxproc} "
        "      smtp\n")


def relay_of(req):
    host = req["nexthop"].strip("[]").split("]")[0].split(":")[0]
    return f"{host}[127.0.0.2]:25"


def nexthops(agent):
    with agent.lock:
        return [r["nexthop"] for r in agent.requests]


def queue(q, rcpts, sender=SENDER, **kw):
    return write_queue_file(q.queue, sender, rcpts, MESSAGE, **kw)


# ---- routing ----

def test_remote_mail_goes_to_smtp_with_the_domain_as_nexthop(q):
    with_smtp_service(q)
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    qid = queue(q, ["bob@B.Test", "carol@b.test", "dave@c.test"])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    reqs = sorted(smtp.requests, key=lambda r: r["nexthop"])
    # One request per destination, recipients of a domain together.
    assert [r["nexthop"] for r in reqs] == ["b.test", "c.test"]
    assert reqs[0]["rcpt"] == [(0, "bob@B.Test"), (1, "carol@b.test")]
    assert reqs[0]["sender"] == SENDER
    line = log_line(q.inst, f"{qid}: to=<bob@B.Test>")
    assert "relay=b.test[127.0.0.2]:25, delay=" in line
    assert line.endswith("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued "
                         "as X)")


def test_relayhost_and_transport_maps_choose_the_nexthop(q):
    with_smtp_service(q)
    q.inst.write_main_cf(
        relayhost="[gw.example.test]:2525",
        transport_maps="inline:{ c.test=smtp:[c-gw.test], "
                       "lmtp.test=lmtp:unix:/run/lmtp.sock }")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    lmtp = q.start_agent(sent, service="lmtp", relay="lmtp")
    qid = queue(q, ["bob@b.test", "carol@c.test", "dave@lmtp.test",
                    "demo@example.test"])
    local = q.start_agent(sent)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert sorted(nexthops(smtp)) == ["[c-gw.test]",
                                      "[gw.example.test]:2525"]
    assert nexthops(lmtp) == ["unix:/run/lmtp.sock"]
    assert nexthops(local) == ["example.test"]


def test_relay_domains_use_smtp_when_master_cf_has_no_relay_service(q):
    with_smtp_service(q)
    q.inst.write_main_cf(relay_domains="relayed.test")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    qid = queue(q, ["bob@sub.relayed.test"])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert nexthops(smtp) == ["sub.relayed.test"]


def test_transport_maps_error_bounces_and_discard_drops(q):
    with_smtp_service(q)
    q.inst.write_main_cf(transport_maps="inline:{ "
                         "{ gone@b.test = error:5.1.1 this user left } , "
                         "spam@b.test=discard: }")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    local = q.start_agent(sent)
    qid = queue(q, ["gone@b.test", "spam@b.test", "bob@b.test"])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert log_line(q.inst, f"{qid}: to=<gone@b.test>, relay=none",
                    "dsn=5.1.1, status=bounced (this user left)")
    assert log_line(q.inst, f"{qid}: to=<spam@b.test>, relay=none",
                    "dsn=2.0.0, status=sent (discarded)")
    assert [a for _, a in smtp.requests[0]["rcpt"]] == ["bob@b.test"]
    # The bounce goes back to the (local) sender at once.
    new_id = log_line(q.inst, f"{qid}: sender non-delivery").split(
        "notification: ")[1].strip()
    wait_log(q.inst, f"{new_id}: removed")
    dsn = [r for r in local.requests if r["queue_id"] == new_id][0]
    report = email.message_from_bytes(dsn["content"],
                                      policy=email.policy.default)
    status = report.get_payload()[1].get_payload()
    assert [p["Final-Recipient"] for p in status[1:]] == \
        ["rfc822; gone@b.test"]


def test_sender_dependent_relayhost_is_used_per_sender(q):
    with_smtp_service(q)
    q.inst.write_main_cf(
        relayhost="[gw.example.test]",
        sender_dependent_relayhost_maps="inline:{ "
        "alice@example.test=[alice-gw.test]:587, @example.org=[org-gw] }")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    one = queue(q, ["bob@b.test"])
    two = queue(q, ["bob@b.test"], sender="carol@example.org")
    three = queue(q, ["bob@b.test"], sender="dave@example.net")
    q.start_qmgr()
    for qid in (one, two, three):
        wait_log(q.inst, f"{qid}: removed")
    by_id = {r["queue_id"]: r["nexthop"] for r in smtp.requests}
    assert by_id == {one: "[alice-gw.test]:587", two: "[org-gw]",
                     three: "[gw.example.test]"}


# ---- scheduling ----

def test_recipient_limit_splits_a_message_into_requests(q):
    with_smtp_service(q)
    q.inst.write_main_cf(smtp_destination_recipient_limit="2")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    rcpts = [f"u{i}@b.test" for i in range(5)]
    qid = queue(q, rcpts)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    sizes = sorted(len(r["rcpt"]) for r in smtp.requests)
    assert sizes == [1, 2, 2]
    got = sorted(a for r in smtp.requests for _, a in r["rcpt"])
    assert got == sorted(rcpts)


def test_limits_of_a_transport_the_table_does_not_know_are_read(q):
    # relay_destination_recipient_limit is not in Tern's parameter
    # table; like Postfix, qmgr reads <transport>_destination_* for any
    # transport it routes to.
    with_smtp_service(q)
    q.inst.write_main_cf(relay_domains="relayed.test",
                         relay_destination_recipient_limit="1")
    smtp = q.start_agent(sent, service="smtp", relay=relay_of)
    qid = queue(q, ["a@relayed.test", "b@relayed.test", "c@relayed.test"])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert [len(r["rcpt"]) for r in smtp.requests] == [1, 1, 1]


def test_destination_concurrency_limit_holds_for_smtp(q):
    with_smtp_service(q)
    q.inst.write_main_cf(smtp_destination_concurrency_limit="3",
                         initial_destination_concurrency="2")
    smtp = q.start_agent(sent, delay=0.3, service="smtp", relay=relay_of)
    ids = [queue(q, ["bob@b.test"]) for _ in range(12)]
    q.start_qmgr()
    for qid in ids:
        wait_log(q.inst, f"{qid}: removed", timeout=30)
    # Slow start from 2 reaches the limit, never more.
    assert smtp.max_running == 3


def test_big_destination_does_not_starve_a_small_one(q):
    # Two smtp processes in all, and the big destination could use both:
    # only taking turns lets the small one in.
    with_smtp_service(q, maxproc=2)
    done = []

    def script(addr, req):
        if addr.endswith("@big.test"):
            time.sleep(0.2)
        done.append(addr)
        return sent(addr, req)
    smtp = q.start_agent(script, service="smtp", relay=relay_of)
    big = [queue(q, [f"u{i}@big.test"]) for i in range(30)]
    small = [queue(q, [f"u{i}@small.test"]) for i in range(3)]
    q.start_qmgr()
    for qid in small:
        wait_log(q.inst, f"{qid}: removed", timeout=30)
    # The small destination's mail, queued last, is through while most
    # of the big one's still waits.
    assert sum(a.endswith("@big.test") for a in done) <= 10, done
    for qid in big:
        wait_log(q.inst, f"{qid}: removed", timeout=60)
    assert smtp.max_running == 2


def test_unreachable_destination_is_dead_until_its_backoff(q):
    with_smtp_service(q)
    q.inst.write_main_cf(initial_destination_concurrency="1",
                         minimal_backoff_time="3s",
                         maximal_backoff_time="3s", queue_run_delay="1s")
    answer = {"b.test": REFUSED}

    def script(addr, req):
        return answer.get(req["nexthop"], sent(addr, req))
    smtp = q.start_agent(script, service="smtp", relay=relay_of)
    ids = [queue(q, ["bob@b.test"]) for _ in range(4)]
    other = queue(q, ["carol@c.test"])
    start = time.monotonic()
    q.start_qmgr()
    wait_log(q.inst, "delivery to smtp:b.test suspended for 3s: connect to "
             "mx.b.test[127.0.0.2]:25: Connection refused")
    wait_log(q.inst, f"{other}: removed")
    for qid in ids:
        q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                        what="deferred")
    # One connection attempt; the rest deferred without one.
    assert nexthops(smtp).count("b.test") == 1
    first = log_line(q.inst, "to=<bob@b.test>", "status=deferred")
    assert "dsn=4.4.1" in first and "relay=b.test[127.0.0.2]:25" in first
    suspended = [l for l in q.inst.log().splitlines()
                 if "delivery temporarily suspended: connect to "
                    "mx.b.test[127.0.0.2]:25: Connection refused" in l]
    assert len(suspended) == 3
    assert all("relay=none" in l and "dsn=4.4.1" in l for l in suspended)
    # Nothing tries b.test again before the backoff is over.
    while time.monotonic() - start < 2.0:
        assert nexthops(smtp).count("b.test") == 1
        time.sleep(0.1)
    answer.clear()
    for qid in ids:
        wait_log(q.inst, f"{qid}: removed", timeout=20)


def test_flush_revives_a_dead_destination_at_once(q):
    with_smtp_service(q)
    q.inst.write_main_cf(initial_destination_concurrency="1")
    answer = {"b.test": REFUSED}

    def script(addr, req):
        return answer.get(req["nexthop"], sent(addr, req))
    smtp = q.start_agent(script, service="smtp", relay=relay_of)
    one, two = queue(q, ["bob@b.test"]), queue(q, ["carol@b.test"])
    qm = q.start_qmgr()
    for qid in (one, two):
        q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                        what="deferred")
    assert nexthops(smtp) == ["b.test"]
    answer.clear()
    assert qm.request(request="flush", site="b.test") == {"status": "0"}
    wait_log(q.inst, "delivery to smtp:b.test resumed by a flush")
    for qid in (one, two):
        wait_log(q.inst, f"{qid}: removed")


def test_flush_site_retries_only_that_destination(q):
    with_smtp_service(q)
    q.inst.write_main_cf(relayhost="", transport_maps="inline:{ "
                         "routed.test=smtp:[gw.b.test]:2525 }")
    answer = {"status": ("deferred", "4.2.0", "451 4.2.0 try later")}
    smtp = q.start_agent(lambda a, r: answer["status"], service="smtp",
                         relay=relay_of)
    ids = {d: queue(q, [f"bob@{d}"])
           for d in ("b.test", "sub.b.test", "c.test", "notb.test",
                     "routed.test")}
    qm = q.start_qmgr()
    for qid in ids.values():
        q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                        what="deferred")
    answer["status"] = sent("", None)
    assert qm.request(request="flush", site="b.test") == {"status": "0"}
    # b.test, its subdomain and mail routed through a b.test host.
    for d in ("b.test", "sub.b.test", "routed.test"):
        wait_log(q.inst, f"{ids[d]}: removed")
    time.sleep(0.5)
    for d in ("c.test", "notb.test"):
        assert where(q.queue, ids[d]) == ["deferred"], d
    # A plain flush takes the rest.
    assert qm.request(request="flush") == {"status": "0"}
    for d in ("c.test", "notb.test"):
        wait_log(q.inst, f"{ids[d]}: removed")


def test_fallback_relay_takes_mail_its_destination_refuses(q):
    with_smtp_service(q)
    q.inst.write_main_cf(fallback_relay="[backup1.test], [backup2.test]")

    def script(addr, req):
        if req["nexthop"] in ("b.test", "[backup1.test]"):
            return REFUSED
        return sent(addr, req)
    smtp = q.start_agent(script, service="smtp", relay=relay_of)
    qid = queue(q, ["bob@b.test"])
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert nexthops(smtp) == ["b.test", "[backup1.test]", "[backup2.test]"]
    # Only the outcome is logged, with the host that took the mail.
    lines = [l for l in q.inst.log().splitlines() if "to=<bob@b.test>" in l]
    assert len(lines) == 1
    assert "relay=backup2.test[127.0.0.2]:25" in lines[0]
    assert "status=sent" in lines[0]


def test_fallback_relay_is_not_used_for_relayhost_mail(q):
    with_smtp_service(q)
    q.inst.write_main_cf(fallback_relay="[backup1.test]",
                         relayhost="[gw.test]")
    smtp = q.start_agent(lambda a, r: REFUSED, service="smtp",
                         relay=relay_of)
    qid = queue(q, ["bob@b.test"])
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="deferred")
    assert nexthops(smtp) == ["[gw.test]"]


def test_delay_warning_is_sent_once_with_action_delayed(q):
    with_smtp_service(q)
    q.inst.write_main_cf(delay_warning_time="2s")
    smtp = q.start_agent(lambda a, r: ("deferred", "4.2.0",
                                       "451 4.2.0 greylisted"),
                         service="smtp", relay=relay_of)
    local = q.start_agent(sent)
    old = time.time() - 10
    qid = write_queue_file(
        q.queue, SENDER, ["bob@b.test", ("carol@b.test", "FAILURE", None),
                          ("dave@b.test", "DELAY", None)],
        MESSAGE, arrival=old)
    young = queue(q, ["erin@b.test"])
    qm = q.start_qmgr()
    wait_log(q.inst, f"{qid}: sender delay notification: ")
    new_id = log_line(q.inst, f"{qid}: sender delay notification").split(
        "notification: ")[1].strip()
    wait_log(q.inst, f"{new_id}: removed")
    req = [r for r in local.requests if r["queue_id"] == new_id][0]
    assert req["sender"] == ""
    assert req["rcpt"] == [(0, SENDER)]
    report = email.message_from_bytes(req["content"],
                                      policy=email.policy.default)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert report.get_content_type() == "multipart/report"
    parts = report.get_payload()
    status = parts[1].get_payload()
    # NOTIFY=FAILURE alone asked for no delay notice.
    assert [p["Final-Recipient"] for p in status[1:]] == \
        ["rfc822; bob@b.test", "rfc822; dave@b.test"]
    assert all(p["Action"] == "delayed" and p["Status"] == "4.2.0"
               for p in status[1:])
    assert "Will-Retry-Until" in status[1]
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Hello from the qmgr test" not in parts[2].as_string()
    # The young message is not delayed enough yet.
    assert log_line(q.inst, f"{young}: sender delay") is None
    # Once per message: another attempt sends no second warning.
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="deferred")
    before = len(smtp.requests)
    assert qm.request(request="deliver", queue_id=qid) == {"status": "0"}
    q.inst.wait_for(lambda: len(smtp.requests) > before and
                    where(q.queue, qid) == ["deferred"], what="retried")
    time.sleep(0.3)
    assert q.inst.log().count(f"{qid}: sender delay notification") == 1


def test_delay_warning_off_by_default(q):
    with_smtp_service(q)
    q.start_agent(lambda a, r: ("deferred", "4.2.0", "451 later"),
                  service="smtp", relay=relay_of)
    q.start_agent(sent)
    qid = write_queue_file(q.queue, SENDER, ["bob@b.test"], MESSAGE,
                           arrival=time.time() - 86400)
    q.start_qmgr()
    q.inst.wait_for(lambda: where(q.queue, qid) == ["deferred"],
                    what="deferred")
    assert "delay notification" not in q.inst.log()


def test_relay_mail_past_its_lifetime_bounces_with_the_last_reason(q):
    with_smtp_service(q)
    q.inst.write_main_cf(maximal_queue_lifetime="1d")
    q.start_agent(lambda a, r: REFUSED, service="smtp", relay=relay_of)
    local = q.start_agent(sent)
    qid = write_queue_file(q.queue, SENDER, ["bob@b.test"], MESSAGE,
                           arrival=time.time() - 2 * 86400)
    q.start_qmgr()
    wait_log(q.inst, f"{qid}: removed")
    assert log_line(q.inst, f"{qid}: from=<{SENDER}>, status=expired")
    new_id = log_line(q.inst, f"{qid}: sender non-delivery").split(
        "notification: ")[1].strip()
    wait_log(q.inst, f"{new_id}: removed")
    req = [r for r in local.requests if r["queue_id"] == new_id][0]
    report = email.message_from_bytes(req["content"],
                                      policy=email.policy.default)
    status = report.get_payload()[1].get_payload()[1]
    assert status["Status"] == "5.4.7"
    assert "Connection refused" in str(status["Diagnostic-Code"])
