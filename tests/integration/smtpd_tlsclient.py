"""
What test_smtpd_tls.py and test_smtpd_auth.py share: a raw SMTP client
that can switch to TLS in the middle (STARTTLS) or start in it (port
465), bind its own source address (127.0.0.2 is another client), and
send bytes no polite client sends; and the main.cf settings of an
instance with a certificate and SASL users.
"""
import base64
import socket
import ssl
import time

# Every socket read and write in these tests waits at most this long.
TIMEOUT = 15

_shared_ctx = None


def client_tls_context():
    """A client context that, like a mail server's peer, takes the
    test instance's self-signed certificate without checking it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def b64(data):
    return base64.b64encode(data).decode()


def plain(user, password, authzid=""):
    """An AUTH PLAIN response (RFC 4616): authzid NUL authcid NUL
    password, in base64."""
    return b64(f"{authzid}\0{user}\0{password}".encode())


class Client:
    """Bytes out, whole replies in, over TCP and then maybe TLS."""

    def __init__(self, port, source=None, wrap=False, session=None,
                 timeout=TIMEOUT):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        if wrap:
            self._wrap(session)

    def _wrap(self, session=None):
        # A session resumes only through the context that made it.
        global _shared_ctx
        if _shared_ctx is None:
            _shared_ctx = client_tls_context()
        self.sock = _shared_ctx.wrap_socket(self.sock, session=session)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def reply(self):
        """(code, [lines]) of one reply; (None, lines) at EOF."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                if not self._fill():
                    return None, lines
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.decode("utf-8", "replace").rstrip("\r"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.example"):
        code, lines = self.cmd(f"EHLO {name}")
        assert code == 250, lines
        return [ln[4:] for ln in lines[1:]]

    def starttls(self, session=None):
        code, lines = self.cmd("STARTTLS")
        assert (code, lines) == (220, ["220 2.0.0 Ready to start TLS"])
        assert self.buf == b"", "input before the handshake"
        self._wrap(session)

    def nothing_within(self, seconds):
        """True when the server sends nothing (and does not close) for
        that long."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            self._fill()
            return False
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.sock.settimeout(TIMEOUT)

    def eof(self):
        try:
            return not self._fill()
        except (ConnectionResetError, ssl.SSLError, socket.timeout):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_settings(inst, **extra):
    """main.cf for an instance with a certificate, STARTTLS offered and
    the TLS details in Received:."""
    cert, key = inst.make_tls_cert()
    settings = {
        "smtpd_tls_cert_file": cert,
        "smtpd_tls_key_file": key,
        "smtpd_tls_security_level": "may",
        "smtpd_tls_received_header": "yes",
    }
    settings.update(extra)
    inst.write_main_cf(**settings)
    return cert, key


def timed(fn, *args):
    """(seconds, result) of fn(*args)."""
    start = time.monotonic()
    r = fn(*args)
    return time.monotonic() - start, r
