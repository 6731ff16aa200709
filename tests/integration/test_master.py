"""master and tern, driven the way an administrator and clients would.

The services are echod (tests/daemons/echod.c), a tiny single server on
lib/server.c: it echoes lines and, on request, tells its pid, a main.cf
parameter or its service name, sleeps, crashes or exits. Every socket
has a timeout and every wait a deadline; the instance fixture runs
`tern stop` and then kills whatever is left.
"""
import os
import signal
import socket
import time

import pytest

from conftest import free_port


def echo_service(port, maxproc=2, opts=""):
    line = f"127.0.0.1:{port} inet n - n - {maxproc} echod"
    return line + (f" {opts}" if opts else "") + "\n"


def tern_start(instance):
    r = instance.run("tern", "start", timeout=40)
    assert r.returncode == 0, \
        f"tern start failed: {r.stdout}{r.stderr}\nlog:\n{instance.log()}"
    instance.started = True
    return r


class Client:
    """A line-based client with a deadline on every read."""

    def __init__(self, port=None, path=None, timeout=5.0):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port),
                                                 timeout=timeout)
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def readline(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                raise TimeoutError("no reply") from None
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def ask(self, line, timeout=5.0):
        self.send(line)
        return self.readline(timeout)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def session_pid(port):
    with Client(port) as c:
        return int(c.ask("pid"))


def master_pid(instance):
    return int((instance.data_dir / "master.pid").read_text())


def proc_state(pid):
    """(state, ppid) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def alive(pid):
    st = proc_state(pid)
    return st is not None and st[0] not in "ZX"


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_state(int(entry))
            if st is not None and st[0] not in "ZX" and st[1] == pid:
                kids.append(int(entry))
    return kids


def service_pids(master, service):
    """Live processes of master started for service (-n SERVICE)."""
    pids = []
    for pid in children_of(master):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if service.encode() in args:
            pids.append(pid)
    return pids


def log_has(instance, text):
    return text in instance.log()


def main_cf_line(instance, name):
    lines = (instance.config_dir / "main.cf").read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if line.startswith(f"{name} ="):
            return n
    raise AssertionError(f"{name} not in main.cf")


def test_start_serves_and_status_tells_both_ways(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port))
    r = instance.run("tern", "status")
    assert r.returncode == 1
    assert "the Tern mail system is not running" in r.stdout

    tern_start(instance)
    r = instance.run("tern", "status")
    assert r.returncode == 0
    assert f"the Tern mail system is running: PID: {master_pid(instance)}" \
        in r.stdout
    with Client(port) as c:
        assert c.ask("hello there") == "hello there"
        assert c.ask("service") == f"127.0.0.1:{port}"
        assert c.ask("param mail_owner") == instance.user
    assert log_has(instance, "daemon started -- version")


def test_pool_grows_to_maxproc_and_not_past_it(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port, maxproc=3))
    tern_start(instance)
    master = master_pid(instance)
    clients = [Client(port) for _ in range(3)]
    try:
        pids = [int(c.ask("pid")) for c in clients]
        assert len(set(pids)) == 3
        assert sorted(children_of(master)) == sorted(pids)

        # The fourth connection is queued, not served by a fourth process.
        fourth = Client(port)
        clients.append(fourth)
        fourth.send("pid")
        with pytest.raises(TimeoutError):
            fourth.readline(timeout=1.5)
        assert len(children_of(master)) == 3

        # A process that becomes free takes it.
        clients[0].close()
        assert int(fourth.readline(timeout=5)) == pids[0]
        assert sorted(children_of(master)) == sorted(pids)
    finally:
        for c in clients:
            c.close()


def test_max_use_recycles_the_process(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port, maxproc=1,
                                          opts="-o max_use=2"))
    tern_start(instance)
    first = session_pid(port)
    assert session_pid(port) == first
    third = session_pid(port)
    assert third != first
    instance.wait_for(lambda: not alive(first), timeout=10,
                      what="the used-up process to exit")
    # Running out of uses is a clean exit, not a crash.
    assert f"pid {first} exit status" not in instance.log()
    assert "throttling" not in instance.log()


def test_max_idle_ends_an_idle_process(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port, opts="-o max_idle=1"))
    tern_start(instance)
    pid = session_pid(port)
    instance.wait_for(lambda: not alive(pid), timeout=6,
                      what="the idle process to exit")
    assert session_pid(port) != pid
    assert "throttling" not in instance.log()


def test_crashing_service_is_restarted_throttled_and_logged(instance):
    port, other = instance.smtp_port, free_port()
    instance.write_master_cf(echo_service(port) + echo_service(other))
    tern_start(instance)

    with Client(port) as c:
        crashed = int(c.ask("pid"))
        began = time.monotonic()
        c.send("crash")
        with pytest.raises(EOFError):
            c.readline(timeout=5)
    instance.wait_for(
        lambda: log_has(instance, f"pid {crashed} killed by signal "
                        f"{int(signal.SIGABRT)}"),
        timeout=10, what="the crash in the log")
    assert log_has(instance, f"process {instance.libexec}/echod pid "
                   f"{crashed} killed by signal")
    assert log_has(instance,
                   f"service 127.0.0.1:{port}: throttling for 1 second")

    # While it is throttled the other service answers at once ...
    with Client(port) as waiting:
        waiting.send("pid")
        with Client(other) as c:
            assert c.ask("still here", timeout=2) == "still here"
        # ... and the crashed one is served again after the delay.
        restarted = int(waiting.readline(timeout=10))
    assert restarted != crashed
    # No new process before the one-second delay was over.
    assert time.monotonic() - began >= 0.9

    # A second failure doubles the delay.
    with Client(port) as c:
        failed = int(c.ask("pid"))
        c.send("exit 3")
        with pytest.raises(EOFError):
            c.readline(timeout=5)
    instance.wait_for(
        lambda: log_has(instance, f"pid {failed} exit status 3"),
        timeout=10, what="the exit status in the log")
    instance.wait_for(
        lambda: log_has(instance,
                        f"service 127.0.0.1:{port}: throttling for 2 "
                        "seconds"),
        timeout=10, what="the longer throttle")
    with Client(port) as c:
        assert c.ask("back", timeout=10) == "back"


def test_always_on_unix_service_runs_and_is_restarted(instance):
    instance.write_master_cf(
        echo_service(instance.smtp_port) +
        "ticker unix - - n - 1 echod\n")
    tern_start(instance)
    master = master_pid(instance)

    def ticker_pids():
        return service_pids(master, "ticker")

    instance.wait_for(lambda: len(ticker_pids()) == 1, timeout=10,
                      what="the ticker process")
    first = ticker_pids()[0]
    sock = instance.queue_dir / "private" / "ticker"
    with Client(path=sock) as c:
        assert c.ask("service") == "ticker"
    os.kill(first, signal.SIGKILL)
    instance.wait_for(lambda: log_has(instance, f"pid {first} killed by "
                                      f"signal {int(signal.SIGKILL)}"),
                      timeout=10, what="the kill in the log")
    instance.wait_for(lambda: ticker_pids() not in ([], [first]),
                      timeout=10, what="a new ticker process")
    assert len(ticker_pids()) == 1


def test_reload_of_a_maxproc_1_service_never_runs_two(instance):
    instance.write_master_cf(
        echo_service(instance.smtp_port) +
        "ticker unix - - n - 1 echod -o myhostname=one.example\n")
    tern_start(instance)
    master = master_pid(instance)

    def ticker_pids():
        return service_pids(master, "ticker")

    sock = instance.queue_dir / "private" / "ticker"
    instance.wait_for(lambda: len(ticker_pids()) == 1, timeout=10,
                      what="the ticker process")
    old_pid = ticker_pids()[0]
    with Client(path=sock) as c:
        assert c.ask("param myhostname") == "one.example"
        instance.write_master_cf(
            echo_service(instance.smtp_port) +
            "ticker unix - - n - 1 echod -o myhostname=two.example\n")
        assert instance.run("tern", "reload").returncode == 0
        instance.wait_for(lambda: log_has(instance, "reload -- version"),
                          timeout=10, what="the reload in the log")
        # The old process is busy: no second one starts meanwhile.
        time.sleep(1)
        assert ticker_pids() == [old_pid]
        assert c.ask("still here") == "still here"
    instance.wait_for(lambda: ticker_pids() not in ([], [old_pid]),
                      timeout=10, what="the new ticker process")
    assert len(ticker_pids()) == 1
    with Client(path=sock) as c:
        assert c.ask("param myhostname") == "two.example"


def test_reload_keeps_sessions_and_applies_changes(instance):
    port, added = instance.smtp_port, free_port()
    instance.write_master_cf(
        echo_service(port, opts="-o myhostname=before.example"))
    tern_start(instance)
    master = master_pid(instance)

    old = Client(port)
    try:
        assert old.ask("param myhostname") == "before.example"
        old_pid = int(old.ask("pid"))

        instance.write_master_cf(
            echo_service(port, opts="-o myhostname=after.example") +
            echo_service(added))
        r = instance.run("tern", "reload")
        assert r.returncode == 0, r.stderr
        instance.wait_for(lambda: log_has(instance, "reload -- version"),
                          timeout=10, what="the reload in the log")

        # The session in progress goes on with its old process.
        assert old.ask("still talking") == "still talking"
        assert old.ask("param myhostname") == "before.example"
        # New sessions get the new configuration, and the new service.
        with Client(port) as c:
            assert c.ask("param myhostname") == "after.example"
            assert int(c.ask("pid")) != old_pid
        with Client(added) as c:
            assert c.ask("new one") == "new one"
        assert master_pid(instance) == master
    finally:
        old.close()
    # Once its session is over, the retired process goes.
    instance.wait_for(lambda: not alive(old_pid), timeout=10,
                      what="the retired process to exit")

    # A service removed from master.cf stops listening.
    instance.write_master_cf(
        echo_service(port, opts="-o myhostname=after.example"))
    assert instance.run("tern", "reload").returncode == 0

    def refused():
        try:
            socket.create_connection(("127.0.0.1", added), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
    instance.wait_for(refused, timeout=10, what="the removed service to go")
    with Client(port) as c:
        assert c.ask("param myhostname") == "after.example"


def test_reload_with_a_broken_master_cf_keeps_running(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port))
    tern_start(instance)
    instance.write_master_cf(echo_service(port) + "broken unix - - n\n")
    r = instance.run("tern", "reload")
    assert r.returncode == 1
    assert "master.cf, line 2" in r.stderr
    # Sent behind tern's back, master logs it and keeps what runs.
    os.kill(master_pid(instance), signal.SIGHUP)
    instance.wait_for(lambda: log_has(instance, "reload failed"),
                      timeout=10, what="the failed reload in the log")
    with Client(port) as c:
        assert c.ask("alive") == "alive"


def test_stop_ends_every_process(instance):
    port, other = instance.smtp_port, free_port()
    instance.write_master_cf(echo_service(port) + echo_service(other))
    tern_start(instance)
    master = master_pid(instance)
    idle_client = Client(port)
    try:
        # One session stays open: its process is busy when stop comes.
        idle_client.ask("pid")
        session_pid(other)
        kids = children_of(master)
        assert len(kids) == 2
        began = time.monotonic()
        r = instance.run("tern", "stop", timeout=40)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - began < 20
    finally:
        idle_client.close()
    instance.started = False
    for pid in [master] + kids:
        assert not alive(pid)
    assert instance.leftover_pids() == []
    assert not (instance.data_dir / "master.pid").exists()
    assert log_has(instance, "terminating on signal 15")
    assert instance.run("tern", "status").returncode == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_stop_does_not_warn_about_the_sigterm_it_sent(instance):
    """A daemon that dies of master's own SIGTERM during a stop (one
    already past its handler, in exit-time cleanup) is no news; a crash
    is still logged."""
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port))
    tern_start(instance)
    with Client(port) as c:
        pid = int(c.ask("pid"))
        assert c.ask("termdefault") == "ok"
        r = instance.run("tern", "stop", timeout=40)
        assert r.returncode == 0, r.stderr
    instance.started = False
    assert not alive(pid)
    assert log_has(instance, "terminating on signal 15")
    assert not log_has(instance, f"pid {pid} ")


def test_only_one_master_runs(instance):
    instance.write_master_cf(echo_service(instance.smtp_port))
    tern_start(instance)
    r = instance.run("master", "-c", str(instance.config_dir))
    assert r.returncode != 0
    assert "already running" in r.stderr
    assert instance.run("master", "-t").returncode == 1
    r = instance.run("tern", "start")
    assert r.returncode == 1
    assert "already running" in r.stderr
    assert instance.run("tern", "stop").returncode == 0
    instance.started = False
    assert instance.run("master", "-t").returncode == 0


def test_bad_master_cf_line_fails_start_with_file_line_reason(instance):
    instance.write_master_cf(
        echo_service(instance.smtp_port) +
        "# a comment\n"
        "other unix - - n - many echod\n")
    r = instance.run("tern", "start")
    assert r.returncode != 0
    assert f"tern: fatal: {instance.config_dir}/master.cf, line 3:" \
        in r.stderr
    assert "maxproc" in r.stderr
    assert instance.run("tern", "status").returncode == 1


def test_bad_main_cf_value_fails_start_with_file_line_reason(instance):
    instance.write_master_cf(echo_service(instance.smtp_port))
    instance.write_main_cf(max_use="lots")
    line = main_cf_line(instance, "max_use")
    r = instance.run("tern", "start")
    assert r.returncode != 0
    assert f"main.cf, line {line}:" in r.stderr
    assert "max_use" in r.stderr
    assert instance.run("tern", "status").returncode == 1


def test_busy_port_fails_start_and_names_the_address(instance):
    port = instance.smtp_port
    instance.write_master_cf(echo_service(port))
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        r = instance.run("tern", "start")
    assert r.returncode != 0
    assert "master.cf, line 1" in r.stderr
    assert f"bind 127.0.0.1 port {port}" in r.stderr
    assert instance.run("tern", "status").returncode == 1
    assert instance.leftover_pids() == []


def test_check_creates_missing_folders_and_fixes_modes(instance):
    instance.write_master_cf(echo_service(instance.smtp_port))
    r = instance.run("tern", "check")
    assert r.returncode == 0, r.stderr
    deferred = instance.queue_dir / "deferred"
    assert deferred.is_dir()

    deferred.rmdir()
    (instance.queue_dir / "incoming").chmod(0o755)
    r = instance.run("tern", "check")
    assert r.returncode == 0, r.stderr
    assert f"created missing folder {deferred}" in r.stderr
    assert deferred.is_dir()
    assert (deferred.stat().st_mode & 0o7777) == 0o700
    assert "incoming: mode changed from 0755 to 0700" in r.stderr
    assert ((instance.queue_dir / "incoming").stat().st_mode & 0o7777) \
        == 0o700

    # A folder that is not a folder cannot be fixed: an error.
    (instance.queue_dir / "hold").rmdir()
    (instance.queue_dir / "hold").write_text("not a folder\n")
    r = instance.run("tern", "check")
    assert r.returncode == 1
    assert "hold" in r.stderr


def test_check_reports_a_bad_master_cf(instance):
    instance.write_master_cf("smtp inet n - n - - \n")
    r = instance.run("tern", "check")
    assert r.returncode == 1
    assert "master.cf, line 1" in r.stderr


def test_port_only_service_listens_on_inet_interfaces(instance):
    port = instance.smtp_port
    instance.write_main_cf(inet_interfaces="loopback-only")
    instance.write_master_cf(f"{port} inet n - n - 2 echod\n")
    tern_start(instance)
    with Client(port) as c:
        assert c.ask("service") == str(port)


def test_daemon_config_error_is_logged_with_the_service(instance):
    port, other = instance.smtp_port, free_port()
    instance.write_master_cf(
        echo_service(port, opts="-o max_use=lots") + echo_service(other))
    tern_start(instance)
    # The broken service's process starts, cannot use its -o, and says
    # why in the mail log; master throttles it; the other one works.
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pass
    instance.wait_for(
        lambda: log_has(instance, f"fatal: service 127.0.0.1:{port}: "
                        "-o max_use=lots"),
        timeout=10, what="the daemon's error in the log")
    instance.wait_for(
        lambda: log_has(instance, f"service 127.0.0.1:{port}: throttling"),
        timeout=10, what="the throttle")
    with Client(other) as c:
        assert c.ask("fine") == "fine"


def _can_bind(family, addr, port=0):
    try:
        with socket.socket(family) as s:
            s.bind((addr, port))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _can_bind(socket.AF_INET6, "::1"),
                    reason="no IPv6 loopback here")
def test_inet_service_on_ipv4_and_ipv6_loopback(instance):
    port = instance.smtp_port
    instance.write_main_cf(inet_interfaces="loopback-only",
                           inet_protocols="all")
    instance.write_master_cf(f"{port} inet n - n - 1 echod\n")
    tern_start(instance)
    for family, addr in ((socket.AF_INET, "127.0.0.1"),
                         (socket.AF_INET6, "::1")):
        with socket.socket(family) as s:
            s.settimeout(5)
            s.connect((addr, port))
            s.sendall(b"service\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(100)
                assert chunk, "connection closed"
                reply += chunk
            assert reply == f"{port}\n".encode()


def _free_named_port():
    """A service name from /etc/services whose port is free and > 1024."""
    for name in ("postgresql", "mysql", "x11", "svn", "git", "redis"):
        try:
            port = socket.getservbyname(name, "tcp")
        except OSError:
            continue
        if port > 1024 and _can_bind(socket.AF_INET, "127.0.0.1", port):
            return name, port
    return None, None


def test_inet_service_named_from_etc_services(instance):
    name, port = _free_named_port()
    if name is None:
        pytest.skip("no free named port in /etc/services")
    instance.write_master_cf(f"127.0.0.1:{name} inet n - n - 1 echod\n")
    tern_start(instance)
    with Client(port) as c:
        assert c.ask("service") == f"127.0.0.1:{name}"


def test_flush_asks_qmgr_and_fails_when_tern_is_down(instance):
    from conftest import BUILD
    if not (BUILD / "qmgr" / "qmgr").exists():
        pytest.skip("qmgr is not built")
    instance.write_master_cf(echo_service(instance.smtp_port) +
                             "qmgr unix n - n 300 1 qmgr\n")
    r = instance.run("tern", "flush")
    assert r.returncode == 1
    assert "the mail system is down" in r.stderr
    tern_start(instance)
    instance.wait_for(
        lambda: (instance.queue_dir / "public" / "qmgr").exists(),
        timeout=10, what="qmgr's socket")
    r = instance.run("tern", "flush")
    assert r.returncode == 0, r.stderr
    instance.wait_for(lambda: log_has(instance, "flush requested"),
                      timeout=10, what="qmgr to log the flush")
