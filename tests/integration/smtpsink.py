"""
A scripted receiving SMTP/LMTP server for tests: it stands in for a
remote MX (or a mailbox server behind LMTP) and answers as the test
tells it, so the client's handling of every reply can be checked.

    sink = SmtpSink("127.0.0.2", rcpt={"bad@b.test": "550 5.1.1 No"})
    sink.start()
    ... deliver to sink.port ...
    sink.messages[0].data        # the message as received, CRLF ends,
                                 # dot-stuffing undone
    sink.stop()

Every reply in the script may be a string (multi-line replies as lines
joined by "\\n", each sent with CRLF), a list (one entry per connection,
in order; the last repeats), or a callable taking the Session and
returning the string. Counters: connections, the most connections open
at once (max_concurrent), and each session's commands. One thread per
connection; every socket has a timeout, and stop() ends them all.

TLS and AUTH, for the client's STARTTLS and SASL:

    sink = SmtpSink(tls_cert="srv.pem", tls_key="srv.key",
                    auth={"alice": "secret"}, auth_tls_only=True,
                    auth_required=True)

With tls_cert, EHLO offers STARTTLS and the handshake uses that
certificate (Python's ssl module); tls_break=True answers 220 and then
sends garbage instead of a handshake. With auth (user -> password),
EHLO offers "AUTH PLAIN LOGIN" (auth_mechs), only inside TLS when
auth_tls_only; auth_required refuses MAIL before AUTH. Each Session
records tls (the protocol version, or None), tls_resumed, auth_user
(who authenticated) and auth_attempts ((mechanism, user, in TLS) for
every AUTH); each Message its session's tls and auth_user.

For the client's connection reuse: rset is the reply to RSET (a string,
list or callable like the others), and hangup_after_message=True closes
the connection, without a word, after each message it took.
"""
import base64
import os
import socket
import ssl
import threading
import time


class Message:
    def __init__(self, mail_from, rcpts, data, mail_line, rcpt_lines,
                 helo, tls=None, auth_user=None):
        self.mail_from = mail_from      # the address inside <>
        self.rcpts = rcpts              # accepted recipients
        self.data = data                # bytes, CRLF line ends
        self.mail_line = mail_line      # "MAIL FROM:<a@b> SIZE=..."
        self.rcpt_lines = rcpt_lines    # every RCPT line, accepted or not
        self.helo = helo
        self.tls = tls                  # "TLSv1.3", or None in clear
        self.auth_user = auth_user      # who authenticated, or None


class Session:
    """What one connection has said so far (for callables)."""

    def __init__(self, number):
        self.number = number            # 0 for the first connection
        self.over = False               # QUIT or the end of the socket
        self.commands = []
        self.helo = None
        self.mail_from = None
        self.rcpts = []
        # Whether the RCPT commands had already arrived when MAIL was
        # read: the client pipelined them (RFC 2920).
        self.pipelined = None
        self.tls = None                 # protocol version once in TLS
        self.tls_cipher = None
        self.tls_resumed = False
        self.auth_user = None
        self.auth_attempts = []         # (mechanism, user, in TLS)


class _Conn:
    """Line reading and writing on a socket, with the unread input in
    sight (to tell pipelined commands)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def buffered(self):
        return self.buf

    def readline(self, limit):
        while b"\n" not in self.buf and len(self.buf) < limit:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        n = self.buf.find(b"\n")
        n = len(self.buf) if n < 0 else n + 1
        line, self.buf = self.buf[:n], self.buf[n:]
        return line

    def write(self, data):
        self.sock.sendall(data)


def _path_of(cmd):
    lt, gt = cmd.find("<"), cmd.find(">")
    return cmd[lt + 1:gt] if 0 <= lt < gt else ""


class SmtpSink:
    DEFAULT_EXTENSIONS = ("PIPELINING", "SIZE 10240000", "8BITMIME", "DSN",
                          "SMTPUTF8", "ENHANCEDSTATUSCODES")

    def __init__(self, host="127.0.0.2", port=0, unix_path=None,
                 greeting="220 sink.test ESMTP sink",
                 extensions=DEFAULT_EXTENSIONS, ehlo=None, helo=None,
                 mail="250 2.1.0 Ok", rcpt=None,
                 rcpt_default="250 2.1.5 Ok", data="354 End data with "
                 "<CR><LF>.<CR><LF>", done="250 2.0.0 Ok: queued as SINK",
                 lmtp=False, lmtp_done=None, delay=0.0, timeout=20,
                 tls_cert=None, tls_key=None, tls_break=False,
                 starttls="220 2.0.0 Ready to start TLS", auth=None,
                 auth_mechs=("PLAIN", "LOGIN"), auth_tls_only=False,
                 auth_required=False,
                 auth_fail="535 5.7.8 Error: authentication failed",
                 rset="250 2.0.0 Ok", hangup_after_message=False):
        self.greeting = greeting
        self.extensions = list(extensions)
        self.ehlo = ehlo            # None: 250 with the extensions
        self.helo = helo            # None: 250
        self.mail = mail
        self.rcpt = rcpt or {}      # address -> reply (or callable)
        self.rcpt_default = rcpt_default
        self.data = data
        self.done = done
        self.lmtp = lmtp
        self.lmtp_done = lmtp_done or {}    # address -> reply after DATA
        self.delay = delay          # seconds before the final reply
        self.timeout = timeout
        self.tls_ctx = None
        if tls_cert is not None:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(tls_cert, tls_key)
        self.tls_break = tls_break
        self.starttls = starttls    # the reply to STARTTLS
        self.auth = auth            # user -> password; None: no AUTH
        self.auth_mechs = list(auth_mechs)
        self.auth_tls_only = auth_tls_only
        self.auth_required = auth_required
        self.auth_fail = auth_fail
        self.rset = rset
        self.hangup_after_message = hangup_after_message
        self.messages = []
        self.sessions = []
        self.connections = 0
        self.open_now = 0
        self.max_concurrent = 0
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        if unix_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.listener.bind(unix_path)
            self.host, self.port, self.path = None, None, unix_path
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.listener = socket.socket(family, socket.SOCK_STREAM)
            self.listener.setsockopt(socket.SOL_SOCKET,
                                     socket.SO_REUSEADDR, 1)
            self.listener.bind((host, port))
            self.host, self.port = self.listener.getsockname()[:2]
            self.path = None
        self.listener.listen(64)
        self.listener.settimeout(0.2)

    # -- control --

    def start(self):
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=self.timeout + 5)
        self.listener.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_messages(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= n:
                return self.messages
            time.sleep(0.05)
        raise AssertionError("sink got %d messages, wanted %d"
                             % (len(self.messages), n))

    # -- serving --

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
                self.open_now += 1
                self.max_concurrent = max(self.max_concurrent,
                                          self.open_now)
            t = threading.Thread(target=self._serve, args=(conn, number),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _pick(self, spec, sess, arg=None):
        if callable(spec):
            return spec(sess, arg) if arg is not None else spec(sess)
        if isinstance(spec, (list, tuple)):
            return spec[min(sess.number, len(spec) - 1)]
        return spec

    def _send(self, f, text):
        f.write(b"".join(line.encode() + b"\r\n"
                         for line in text.split("\n")))

    def _session_over(self, sess):
        with self._lock:
            if not sess.over:
                sess.over = True
                self.open_now -= 1

    def _serve(self, conn, number):
        sess = Session(number)
        with self._lock:
            self.sessions.append(sess)
        conn.settimeout(self.timeout)
        f = _Conn(conn)
        try:
            self._dialogue(f, sess)
        except (OSError, ValueError) as e:
            if not self._stop.is_set():
                self.errors.append(repr(e))
        finally:
            for s in {id(conn): conn, id(f.sock): f.sock}.values():
                try:
                    s.close()
                except OSError:
                    pass
            self._session_over(sess)

    def _readline(self, f):
        line = f.readline(100000)
        if not line:
            raise EOFError
        return line

    def _dialogue(self, f, sess):
        greeting = self._pick(self.greeting, sess)
        self._send(f, greeting)
        if not greeting.startswith("2"):
            # Like a real server: wait for QUIT (or the close).
            try:
                line = self._readline(f)
                sess.commands.append(line.decode(errors="replace").rstrip())
                self._send(f, "221 2.0.0 Bye")
            except EOFError:
                pass
            return
        rcpt_lines, mail_line = [], None
        try:
            while not self._stop.is_set():
                raw = self._readline(f)
                cmd = raw.decode(errors="replace").rstrip("\r\n")
                sess.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "LHLO"):
                    if (verb == "LHLO") != self.lmtp:
                        self._send(f, "500 5.5.1 Wrong protocol")
                        continue
                    sess.helo = cmd[5:]
                    reply = self._pick(self.ehlo, sess) if self.ehlo \
                        else None
                    if reply is None:
                        lines = ["sink.test"] + self.extensions
                        if self.tls_ctx is not None and sess.tls is None:
                            lines.append("STARTTLS")
                        if self.auth is not None and (
                                sess.tls is not None or
                                not self.auth_tls_only):
                            lines.append("AUTH " + " ".join(self.auth_mechs))
                        reply = "\n".join(
                            ("250-" if i < len(lines) - 1 else "250 ") + l
                            for i, l in enumerate(lines))
                    self._send(f, reply)
                elif verb == "HELO":
                    sess.helo = cmd[5:]
                    self._send(f, self._pick(self.helo, sess)
                               if self.helo else "250 sink.test")
                elif verb == "STARTTLS" and self.tls_ctx is not None:
                    if sess.tls is not None:
                        self._send(f, "554 5.5.1 Error: TLS already active")
                        continue
                    reply = self._pick(self.starttls, sess)
                    self._send(f, reply)
                    if reply.startswith("220"):
                        self._start_tls(f, sess)
                elif verb == "AUTH" and self.auth is not None:
                    self._auth(f, sess, cmd)
                elif verb == "MAIL" and self.auth_required and \
                        sess.auth_user is None:
                    self._send(f, "530 5.7.0 Authentication required")
                elif verb == "MAIL":
                    sess.pipelined = b"RCPT" in f.buffered().upper()
                    reply = self._pick(self.mail, sess)
                    mail_line = cmd
                    rcpt_lines = []
                    sess.rcpts = []
                    if reply.startswith("2"):
                        sess.mail_from = _path_of(cmd)
                    self._send(f, reply)
                elif verb == "RCPT":
                    rcpt_lines.append(cmd)
                    addr = _path_of(cmd)
                    spec = self.rcpt.get(addr, self.rcpt_default)
                    reply = self._pick(spec, sess, addr) \
                        if callable(spec) else self._pick(spec, sess)
                    if sess.mail_from is None:
                        reply = "503 5.5.1 Error: need MAIL command"
                    if reply.startswith("2"):
                        sess.rcpts.append(addr)
                    self._send(f, reply)
                elif verb == "DATA":
                    if not sess.rcpts:
                        self._send(f, "554 5.5.1 Error: no valid "
                                   "recipients")
                        continue
                    reply = self._pick(self.data, sess)
                    self._send(f, reply)
                    if not reply.startswith("354"):
                        continue
                    data = self._read_data(f)
                    if self.delay:
                        time.sleep(self.delay)
                    self._finish(f, sess, data, mail_line, rcpt_lines)
                    if self.hangup_after_message:
                        return
                elif verb == "RSET":
                    sess.mail_from, sess.rcpts = None, []
                    self._send(f, self._pick(self.rset, sess))
                elif verb == "NOOP":
                    self._send(f, "250 2.0.0 Ok")
                elif verb == "QUIT":
                    # The session is over at QUIT: a client that opens
                    # its next one as soon as it reads the 221 must not
                    # be counted twice while this thread winds down.
                    self._session_over(sess)
                    self._send(f, "221 2.0.0 Bye")
                    return
                else:
                    self._send(f, "502 5.5.2 Error: command not "
                               "recognized")
        except EOFError:
            return

    def _start_tls(self, f, sess):
        if self.tls_break:
            f.write(b"this is not a TLS handshake\r\n" * 4)
            raise EOFError
        # What the client sent after STARTTLS in clear is thrown away.
        f.buf = b""
        f.sock = self.tls_ctx.wrap_socket(f.sock, server_side=True)
        sess.tls = f.sock.version()
        sess.tls_cipher = f.sock.cipher()[0]
        sess.tls_resumed = f.sock.session_reused
        # RFC 3207 4.2: the client starts over with EHLO.
        sess.helo, sess.mail_from, sess.rcpts = None, None, []

    def _auth_line(self, f, sess, challenge):
        self._send(f, "334 " + challenge)
        line = self._readline(f).decode(errors="replace").rstrip("\r\n")
        sess.commands.append(line)
        if line == "*":
            raise ValueError("cancelled")
        return base64.b64decode(line, validate=True)

    def _auth(self, f, sess, cmd):
        words = cmd.split()
        mech = words[1].upper() if len(words) > 1 else ""
        initial = words[2] if len(words) > 2 else None
        if sess.auth_user is not None:
            self._send(f, "503 5.5.1 Error: already authenticated")
            return
        if mech not in self.auth_mechs or (self.auth_tls_only and
                                           sess.tls is None):
            self._send(f, "504 5.5.4 Unsupported authentication mechanism")
            return
        try:
            if mech == "PLAIN":
                data = base64.b64decode(initial, validate=True) \
                    if initial not in (None, "=") else \
                    self._auth_line(f, sess, "")
                _, user, password = data.decode().split("\0")
            else:
                user = (base64.b64decode(initial, validate=True)
                        if initial is not None else
                        self._auth_line(f, sess, "VXNlcm5hbWU6")).decode()
                password = self._auth_line(f, sess, "UGFzc3dvcmQ6").decode()
        except ValueError:
            self._send(f, "501 5.7.0 Authentication aborted")
            return
        sess.auth_attempts.append((mech, user, sess.tls is not None))
        if self.auth.get(user) == password:
            sess.auth_user = user
            self._send(f, "235 2.7.0 Authentication successful")
        else:
            self._send(f, self.auth_fail)

    def _read_data(self, f):
        out = []
        while True:
            line = self._readline(f)
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            out.append(line)
        return b"".join(out)

    def _finish(self, f, sess, data, mail_line, rcpt_lines):
        accepted = []
        if self.lmtp:
            for addr in sess.rcpts:
                spec = self.lmtp_done.get(addr, self.done)
                reply = self._pick(spec, sess, addr) if callable(spec) \
                    else self._pick(spec, sess)
                if reply.startswith("2"):
                    accepted.append(addr)
                self._send(f, reply)
        else:
            reply = self._pick(self.done, sess)
            if reply.startswith("2"):
                accepted = list(sess.rcpts)
            self._send(f, reply)
        if accepted:
            with self._lock:
                self.messages.append(Message(sess.mail_from, accepted,
                                             data, mail_line,
                                             list(rcpt_lines), sess.helo,
                                             sess.tls, sess.auth_user))
        sess.mail_from, sess.rcpts = None, []
