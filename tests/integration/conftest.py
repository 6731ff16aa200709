"""
Integration harness: builds a complete Tern instance in a temporary
folder -- config folder, queue folder, data folder, a home with a
Maildir for a demo user -- with mail_owner set to the invoking user and
free loopback ports, so the whole suite runs unprivileged and never
touches /etc or port 25.

Binaries come from the build folder named by TERN_BUILD_DIR (default:
build/ at the top of the source tree), as scripts/test sets it.
"""
import getpass
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

TOP = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD_DIR", TOP / "build"))

# Where each program lives in the build tree.
PROGRAM_DIRS = {
    "ternconf": "tools", "ternmap": "tools", "tern": "tools",
    "terncat": "tools", "ternqueue": "tools", "ternsuper": "tools",
    "sendmail": "tools",
    "master": "master", "smtpd": "smtpd", "qmgr": "qmgr", "local": "local",
    "smtp": "smtp", "lmtp": "smtp", "pop3d": "pop3d", "imapd": "imapd",
    "pickup": "pickup", "showq": "showq",
    "echod": "tests/daemons",
}


def binary(name):
    """Path of a built program; the test fails clearly when it is missing."""
    path = BUILD / PROGRAM_DIRS.get(name, "tools") / name
    if not path.exists():
        pytest.fail(f"{path} is not built (TERN_BUILD_DIR={BUILD})")
    return str(path)


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_on(*hosts):
    """A port free on every one of hosts (loopback addresses)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts:
            with socket.socket() as s:
                try:
                    s.bind((h, port))
                except OSError:
                    ok = False
        if ok:
            return port
    pytest.fail("no common free port")


class Instance:
    """One Tern instance under a temporary folder."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "spool"
        self.data_dir = self.root / "lib"
        self.home = self.root / "home"
        self.maillog = self.root / "maillog"
        self.user = getpass.getuser()
        # Where smtpd listens: a second instance (a receiving MX in relay
        # tests) sets another loopback address before writing master.cf.
        self.smtp_host = "127.0.0.1"
        self.smtp_port = free_port()
        self.proc = None
        self.libexec = self.root / "libexec"
        for d in (self.config_dir, self.queue_dir, self.data_dir, self.home,
                  self.libexec):
            d.mkdir(parents=True, exist_ok=True)
        # master finds daemons in daemon_directory: link the built ones.
        for prog, sub in PROGRAM_DIRS.items():
            built = BUILD / sub / prog
            if built.exists():
                (self.libexec / prog).symlink_to(built)
        self.settings = {
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "mydestination": "$myhostname, localhost.$mydomain, localhost, "
                             "example.test",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "daemon_directory": str(self.libexec),
            "mail_owner": self.user,
            "maillog_file": str(self.maillog),
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "home_mailbox": "Maildir/",
            "local_passwd_file": str(self.write_passwd()),
            "alias_maps": f"texthash:{self.write_aliases()}",
        }
        self.write_main_cf()
        self.write_master_cf()

    LOCAL_USERS = ("demo", "alice", "bob")

    def write_passwd(self):
        """The instance's local users (local_passwd_file): demo, alice and
        bob, with the invoking user's uid/gid and homes under home/."""
        path = self.passwd_file = self.root / "passwd"
        lines = []
        for name in self.LOCAL_USERS:
            home = self.home / name
            home.mkdir(parents=True, exist_ok=True)
            lines.append(f"{name}:x:{os.getuid()}:{os.getgid()}:"
                         f"{name}:{home}:/bin/sh")
        path.write_text("\n".join(lines) + "\n")
        return path

    def write_aliases(self, text="# aliases(5) of the test instance\n"):
        """alias_maps points here: texthash:, so "name value" lines
        (ternmap's format, not aliases(5)'s "name: value"), read by each
        new local process."""
        path = self.aliases_file = self.root / "aliases"
        path.write_text(text)
        return path

    def maildir(self, user=None):
        return self.home / (user or self.user) / "Maildir"

    def write_main_cf(self, **extra):
        self.settings.update({k: str(v) for k, v in extra.items()})
        lines = ["# written by the test harness"]
        lines += [f"{k} = {v}" for k, v in self.settings.items()]
        (self.config_dir / "main.cf").write_text("\n".join(lines) + "\n")

    def write_master_cf(self, text=None):
        if text is None:
            text = (
                f"{self.smtp_host}:{self.smtp_port} inet n - n - - smtpd\n"
                "pickup    unix  n - n 60 1 pickup\n"
                "qmgr      unix  n - n 300 1 qmgr\n"
                "showq     unix  n - n - - showq\n"
                "local     unix  - n n - - local\n"
            )
        (self.config_dir / "master.cf").write_text(text)

    def env(self):
        env = dict(os.environ)
        env["TERN_CONFIG_DIR"] = str(self.config_dir)
        return env

    def run(self, program, *args, input=None, check=False, timeout=30):
        """Run a Tern program against this instance's config."""
        return subprocess.run([binary(program), *args], input=input,
                              capture_output=True, text=True,
                              env=self.env(), timeout=timeout, check=check)

    def start(self, timeout=15):
        """`tern start`, then wait until the SMTP port answers."""
        r = self.run("tern", "start", timeout=timeout)
        if r.returncode != 0:
            pytest.fail(f"tern start failed ({r.returncode}): "
                        f"{r.stdout}{r.stderr}\nlog:\n{self.log()}")
        self.started = True
        self.wait_for(self.smtp_ready, timeout=timeout, what="smtpd port")

    def smtp_ready(self):
        try:
            with socket.create_connection((self.smtp_host, self.smtp_port),
                                          timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout=20):
        """`tern stop`; safe to call when not running."""
        if getattr(self, "started", False):
            self.run("tern", "stop", timeout=timeout)
            self.started = False

    def leftover_pids(self):
        """Processes still running for this instance: master and its
        daemons carry "-c CONFIG_DIR" on their command line."""
        key = str(self.config_dir).encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if key in args:
                pids.append(int(entry))
        return pids

    def kill_leftovers(self):
        """SIGKILL whatever `tern stop` left behind (a failed test)."""
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def log(self):
        return self.maillog.read_text() if self.maillog.exists() else ""

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}")

    def make_tls_cert(self, name="smtpd", cn=None, days=2):
        """A self-signed certificate and its key (EC P-256, PEM) for
        cn (default: myhostname), written into the instance folder as
        NAME.crt and NAME.key with `openssl req`; returns (cert, key).
        Set smtpd_tls_cert_file / smtpd_tls_key_file to use them."""
        cn = cn or self.settings["myhostname"]
        cert = self.root / f"{name}.crt"
        key = self.root / f"{name}.key"
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", str(days),
             "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}"],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            pytest.fail(f"openssl req failed: {r.stderr}")
        key.chmod(0o600)
        return cert, key

    def add_sasl_user(self, user, password, realm=None):
        """Add (or change) a SASL user in the instance's sasldb
        (sasldb2 in the instance folder) with Debian's saslpasswd2, and
        point smtpd_sasl_db_file at it. realm defaults to what smtpd
        uses: smtpd_sasl_local_domain, or myhostname when that is
        empty. Returns the sasldb path."""
        saslpasswd2 = "/usr/sbin/saslpasswd2"
        if not os.path.exists(saslpasswd2):
            pytest.fail(f"{saslpasswd2} is missing: apt-get install "
                        "sasl2-bin (scripts/deps test)")
        db = self.root / "sasldb2"
        realm = realm or self.settings.get("smtpd_sasl_local_domain") or \
            self.settings["myhostname"]
        r = subprocess.run(
            [saslpasswd2, "-c", "-p", "-f", str(db), "-u", realm,
             "-a", "smtpd", user], input=password, capture_output=True,
            text=True, timeout=30)
        if r.returncode != 0:
            pytest.fail(f"saslpasswd2 failed: {r.stdout}{r.stderr}")
        if self.settings.get("smtpd_sasl_db_file") != str(db):
            self.write_main_cf(smtpd_sasl_db_file=str(db))
        return db


@pytest.fixture
def instance(tmp_path):
    inst = Instance(tmp_path / "tern")
    yield inst
    try:
        inst.stop()
    finally:
        inst.kill_leftovers()
    if inst.proc is not None and inst.proc.poll() is None:
        inst.proc.terminate()
        try:
            inst.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            inst.proc.kill()


# ---- a local DNS server for test zones -------------------------------

UNBOUND = "/usr/sbin/unbound"


def dns_query(port, name, qtype=1, timeout=2.0):
    """One UDP query to 127.0.0.1:port; (rcode, answer count). Enough to
    tell that a test DNS server answers, without any DNS library."""
    import random
    import struct
    qid = random.randrange(65536)
    head = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(l)]) + l.encode()
                     for l in name.rstrip(".").split(".") if l) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(head + qname + struct.pack(">HH", qtype, 1),
                 ("127.0.0.1", port))
        data = s.recv(4096)
    flags, ancount = struct.unpack(">H", data[2:4])[0], \
        struct.unpack(">H", data[6:8])[0]
    return flags & 0xF, ancount


class DnsServer:
    """Debian's unbound serving fixed records on 127.0.0.1:PORT, run
    unprivileged from a config in its own folder: it never reads
    /etc/unbound, never binds port 53 and never asks the internet (every
    name outside the test zones is REFUSED, which a resolver sees as
    SERVFAIL).

    records: local-data lines ("b.test. MX 10 mx.b.test.", "mx.b.test. A
    127.0.0.2", "null.test. MX 0 ."). zones: local-zone name -> type;
    "test." is static by default, so a name without records there is
    NXDOMAIN and a name with other records is NODATA. Types worth
    knowing: always_nxdomain (NXDOMAIN), always_refuse (REFUSED, which
    libunbound reports as SERVFAIL: a temporary failure).

    forwarder is the "127.0.0.1@PORT" text for dns_forwarders.

    extra_conf: more top-level unbound.conf lines, such as an auth-zone
    clause serving a DNSSEC-signed zone file (tests/integration/dnssec.py;
    give zones={"test.": "transparent"} so that it is consulted)."""

    def __init__(self, root, records=(), zones=None, extra_conf=()):
        if not os.path.exists(UNBOUND):
            pytest.fail(f"{UNBOUND} is missing: apt-get install unbound "
                        "(scripts/deps test)")
        self.dir = pathlib.Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self._udp_tcp_port()
        self.forwarder = f"127.0.0.1@{self.port}"
        all_zones = {".": "refuse", "test.": "static"}
        all_zones.update(zones or {})
        lines = [
            "server:",
            f"    interface: 127.0.0.1@{self.port}",
            f"    port: {self.port}",
            "    interface-automatic: no",
            "    do-ip6: no",
            "    do-daemonize: no",
            '    username: ""',
            '    chroot: ""',
            f'    directory: "{self.dir}"',
            f'    pidfile: "{self.dir}/unbound.pid"',
            "    use-syslog: no",
            f'    logfile: "{self.dir}/unbound.log"',
            "    verbosity: 1",
            "    num-threads: 1",
            "    outgoing-range: 32",
            "    so-reuseport: no",
            "    access-control: 127.0.0.0/8 allow",
            "    do-not-query-localhost: no",
            '    module-config: "iterator"',
            "    cache-max-ttl: 0",
            "    cache-max-negative-ttl: 0",
            # Unbound's built-in answers for special-use names such as
            # "test." would shadow the test zones.
            '    local-zone: "test." nodefault',
        ]
        for name, kind in all_zones.items():
            lines.append(f'    local-zone: "{name}" {kind}')
        for rec in records:
            lines.append(f'    local-data: "{rec}"')
        lines += ["remote-control:", "    control-enable: no"]
        lines += list(extra_conf)
        self.conf = self.dir / "unbound.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "unbound.stderr", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                dns_query(self.port, "ready.test.", timeout=0.3)
                break
            except OSError:
                if self.proc.poll() is not None or \
                        time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("unbound did not start:\n" + self.log())
                time.sleep(0.05)

    @staticmethod
    def _udp_tcp_port():
        """A port free for both UDP and TCP on 127.0.0.1."""
        for _ in range(50):
            port = free_port()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        pytest.fail("no free port for the test DNS server")

    def log(self):
        out = []
        for f in ("unbound.stderr", "unbound.log"):
            p = self.dir / f
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "".join(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def dns(tmp_path):
    """dns(records, zones=None) starts a DnsServer (see there) and
    returns it; every server started is stopped at teardown."""
    servers = []

    def start(records=(), zones=None, extra_conf=()):
        srv = DnsServer(tmp_path / f"dns{len(servers)}", records, zones,
                        extra_conf)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()
