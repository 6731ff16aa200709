"""
Golden-file tests of smtpd, in the tradition of Postfix's
smtpd_check.in / smtpd_check.ref: each tests/smtpd/NAME.in is a client
script played against `smtpd -S` (one session on stdin/stdout), and the
transcript -- what the client sent, what the server answered, the log
lines and what landed in the queue -- must equal tests/smtpd/NAME.ref
byte for byte.

Script lines (NAME.in):
    # text              a comment
    #! name = value     a main.cf setting for this script
    #! client = ADDR    the client's address (TERN_SMTPD_CLIENT_ADDR)
    #! sasl_user = NAME PASSWORD
                        a user in the instance's sasldb (saslpasswd2)
    #! pregreet         send the first line before reading the greeting
    TEXT                send TEXT CRLF; read one reply (none inside DATA
                        after a 354, until the "." line; none after a
                        BDAT line, whose chunk follows as @raw, @read)
    @raw TEXT           send TEXT with escapes (\\r \\n \\t \\\\ \\xHH)
                        decoded and nothing added; read no reply
    @bdat TEXT          send "BDAT n" and the chunk TEXT (escapes
    @bdat-last TEXT     decoded, n its length) in one write, or
                        "BDAT n LAST"; read one reply
    @read               read one reply
    @pipe ... @end      send the lines between in one write, then read
                        one reply per line
    @sleep SECONDS      pause (for timeouts)
After a reply that closes the session (221, 421, 521, 554 5.5.0...)
the runner reads to the end, and later script lines show as "not sent".
After the script it reads whatever else the server says until it closes
the connection, so an unexpected extra reply (a smuggled second message)
shows in the transcript. Transcript lines: "C:" sent, "S:" received,
"L:" smtpd's log (stderr in -S mode), "Q:" each file left in incoming/;
queue IDs and dates are replaced by QUEUEID and DATE.

Set TERN_GOLDEN_UPDATE=1 to (re)write the .ref files; then read every
changed line before trusting it.
"""
import os
import pathlib
import re
import select
import subprocess
import time

import pytest

from conftest import binary

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "smtpd"
SCRIPTS = sorted(GOLDEN.glob("*.in"))
REPLY_TIMEOUT = 10.0

# Settings every script starts from (on top of the harness instance).
BASE = {
    "smtpd_error_sleep_time": "0",
    "smtpd_timeout": "10s",
    "message_size_limit": "100000",
    "alias_maps": "inline:{ postmaster=demo, staff=demo }",
}


def decode(text):
    """Escapes in @raw lines."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n in "rnt\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t",
                        "\\": b"\\"}[n]
                i += 2
                continue
            if n == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
        out += c.encode()
        i += 1
    return bytes(out)


def show(data):
    """Bytes as one transcript line: printable, CR/LF/controls escaped."""
    out = []
    for b in data:
        if b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        elif b == 9:
            out.append("\\t")
        elif b == 92:
            out.append("\\\\")
        elif b < 32 or b >= 127:
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


# Replies after which smtpd closes the connection.
CLOSERS = (b"221 ", b"421 ", b"521 ", b"554 5.5.0 ",
           b"501 5.5.4 Syntax: BDAT")


class Session:
    """One smtpd -S process and the transcript of talking to it."""

    def __init__(self, inst, client):
        env = inst.env()
        if client:
            env["TERN_SMTPD_CLIENT_ADDR"] = client
        self.proc = subprocess.Popen(
            [binary("smtpd"), "-S", "-c", str(inst.config_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        self.buf = b""
        self.eof = False
        self.lines = []

    def send(self, data):
        self.lines.append("C: " + show(data))
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass    # the server hung up; the transcript shows when

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.proc.stdout], [], [], left)
        if not r:
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_reply(self):
        """One reply (all its lines); False at EOF or timeout."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line += b"\n"
                self.lines.append("S: " + normalize(show(line)))
                if len(line) < 4 or line[3:4] != b"-":
                    if line.startswith(CLOSERS):
                        self.drain()
                    return True
            if self.eof:
                return False
            if not self._fill(deadline):
                if not self.eof:
                    self.lines.append("S: <timeout>")
                return False

    def drain(self):
        """The server said it is closing: read up to its EOF."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not self.eof and self._fill(deadline):
            pass

    def finish(self):
        """Whatever the server still says, until it closes."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        while self.read_reply():
            pass
        if self.buf:
            self.lines.append("S: " + show(self.buf) + " <no newline>")
        self.lines.append("S: <closed>")
        try:
            self.proc.wait(timeout=REPLY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.lines.append("<smtpd did not exit>")
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        return err


QUEUE_ID = re.compile(r"\b[0-9A-F]{13}[0-9A-F]+\b")
DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} "
                  r"\([^)]*\)")


def normalize(text):
    text = QUEUE_ID.sub("QUEUEID", text)
    return DATE.sub("DATE", text)


def log_lines(stderr):
    out = []
    for line in stderr.splitlines():
        m = re.match(r"^(?:.*?)tern/smtpd\[\d+\]: (.*)$", line)
        out.append("L: " + normalize(m.group(1) if m else line))
    return out


def queue_lines(queue_dir):
    """Each queue file in incoming/: envelope records, then the content
    (whose length must be what the M record says), then the rest."""
    out = []
    incoming = queue_dir / "incoming"
    files = sorted(incoming.iterdir()) if incoming.is_dir() else []
    for f in files:
        kind = "temporary file" if f.name.startswith(".") else "file"
        out.append(f"Q: --- {kind}")
        data = f.read_bytes()
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            line = data[pos:end]
            pos = end + 1
            if line.startswith(b"T "):
                out.append("Q: T ARRIVAL")
            elif line.startswith(b"M "):
                size = int(line[2:])
                content = data[pos:pos + size]
                pos += size
                ok = len(content) == size and data[pos:pos + 2] == b"E\n"
                out.append("Q: M " + ("LENGTH" if ok else
                                      f"{size} <bad length or no E>"))
                for cl in content.split(b"\n")[:-1]:
                    out.append("Q: | " + normalize(show(cl)))
                if not content.endswith(b"\n"):
                    out.append("Q: | " + normalize(show(
                        content.split(b"\n")[-1])) + " <no newline>")
            else:
                out.append("Q: " + normalize(show(line)))
    out.append(f"Q: {len(files)} file(s) queued")
    return out


def run_script(inst, path):
    settings = dict(BASE)
    client = None
    pregreet = False
    sasl_users = []
    body = []
    for line in path.read_text().splitlines():
        if line.startswith("#!"):
            directive = line[2:].strip()
            if directive == "pregreet":
                pregreet = True
                continue
            name, _, value = directive.partition("=")
            name, value = name.strip(), value.strip()
            if name == "client":
                client = value
            elif name == "sasl_user":
                sasl_users.append(value.split(None, 1))
            else:
                settings[name] = value
        elif not line.startswith("#"):
            body.append(line)
    inst.write_main_cf(**settings)
    for user, password in sasl_users:
        inst.add_sasl_user(user, password)
    for d in ("incoming", "active", "deferred", "hold", "corrupt",
              "maildrop", "private", "public"):
        (inst.queue_dir / d).mkdir(mode=0o700, exist_ok=True)

    s = Session(inst, client)
    if not pregreet:
        s.read_reply()
    in_data = False
    pipe = None
    for line in body:
        if s.eof:
            s.lines.append("C: <not sent: connection closed> " + line)
            continue
        if line == "@pipe":
            pipe = []
            continue
        if line == "@end":
            s.send(b"".join(p + b"\r\n" for p in pipe))
            for _ in pipe:
                if not s.read_reply():
                    break
            pipe = None
            continue
        if pipe is not None:
            pipe.append(line.encode())
            continue
        if line.startswith("@raw "):
            s.send(decode(line[5:]))
            continue
        if line.startswith("@bdat ") or line.startswith("@bdat-last "):
            verb, _, text = line.partition(" ")
            chunk = decode(text)
            last = " LAST" if verb == "@bdat-last" else ""
            s.send(f"BDAT {len(chunk)}{last}\r\n".encode() + chunk)
            s.read_reply()
            continue
        if line == "@read":
            s.read_reply()
            continue
        if line.startswith("@sleep "):
            time.sleep(float(line.split()[1]))
            continue
        if pregreet:
            s.send(line.encode() + b"\r\n")
            s.read_reply()
            pregreet = False
            continue
        s.send(line.encode() + b"\r\n")
        if in_data:
            if line == ".":
                in_data = False
                s.read_reply()
            continue
        if line.upper().startswith("BDAT"):
            continue
        before = len(s.lines)
        s.read_reply()
        if line.upper() == "DATA" and any(
                ln.startswith("S: 354") for ln in s.lines[before:]):
            in_data = True
    err = s.finish()
    return "\n".join(s.lines + log_lines(err) +
                     queue_lines(inst.queue_dir)) + "\n"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_smtpd_golden(instance, script):
    got = run_script(instance, script)
    ref = script.with_suffix(".ref")
    if os.environ.get("TERN_GOLDEN_UPDATE"):
        ref.write_text(got)
    assert ref.exists(), f"{ref} is missing (TERN_GOLDEN_UPDATE=1 makes it)"
    assert got == ref.read_text()


def test_every_script_has_its_reference():
    assert SCRIPTS, "no tests/smtpd/*.in scripts"
    for script in SCRIPTS:
        assert script.with_suffix(".ref").exists(), script
