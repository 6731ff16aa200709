"""
The smtp client's STARTTLS and SASL AUTH, against scripted SmtpSinks
that offer TLS with test certificates and AUTH PLAIN/LOGIN: the levels
none, may, encrypt, verify and secure, the per-destination policy table,
TLS session reuse, and authentication to a relay host with
smtp_sasl_password_maps. What qmgr (and so the operator) sees is
checked: status, DSN code and reason of each recipient, the log lines,
and what the receiving server saw (TLS or not, who authenticated, which
commands arrived).

Certificates come from `openssl req` / `openssl x509` in a temporary
folder: a test CA, a server certificate it signed for mx.b.test, one for
another name, and one for mx.b.test signed by an unrelated CA.

DANE runs against a DNSSEC-signed test zone (dnssec.py) that the local
unbound serves as an auth-zone, with its DS record as the smtp client's
dns_trust_anchor_file.
"""
import hashlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dnssec import SignedZone
from test_smtp import CONTENT, MX_B, crlf, relay  # noqa: F401 (fixture)

OPENSSL = "/usr/bin/openssl"


def _openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Certs:
    """ca.pem (the CA smtp_tls_CAfile trusts); good, wrong_name and
    wrong_ca: (cert, key) pairs."""

    def __init__(self, d):
        self.dir = d
        self.ca = str(d / "ca.pem")
        self._ca("ca")
        self._ca("otherca")
        self.good = self._leaf("good", "ca", "mx.b.test")
        self.wrong_name = self._leaf("wrongname", "ca", "mx.other.test")
        self.wrong_ca = self._leaf("wrongca", "otherca", "mx.b.test")

    def _key(self, name):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-out", f"{name}.key",
                 cwd=self.dir)

    def _ca(self, name):
        self._key(name)
        _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out",
                 f"{name}.pem", "-days", "3", "-subj",
                 f"/O=Tern tests/CN=Tern test {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=self.dir)

    def _leaf(self, name, ca, dns_name):
        self._key(name)
        _openssl("req", "-new", "-key", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={dns_name}", cwd=self.dir)
        (self.dir / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{dns_name}\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
                 "-CAkey", f"{ca}.key", "-set_serial", str(abs(hash(name))),
                 "-days", "2", "-extfile", f"{name}.ext", "-out",
                 f"{name}.pem", cwd=self.dir)
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}.key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


def spki_sha256(cert):
    """The TLSA "3 1 1" data of a (cert, key) pair: SHA-256 of the
    certificate's SubjectPublicKeyInfo."""
    with open(cert[0], "rb") as f:
        c = x509.load_pem_x509_certificate(f.read())
    der = c.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def tls_sink(relay, cert, host="127.0.0.2", port=0, **kw):
    return relay.sink(host, port, tls_cert=cert[0], tls_key=cert[1], **kw)


def logs(relay):
    """The instance log and every agent's own output."""
    out = relay.inst.log()
    for a in relay.agents:
        if a.out_path.exists():
            out += a.out_path.read_text(errors="replace")
    return out


def deliver_one(relay, agent, nexthop, rcpt="bob@b.test"):
    qid = relay.queue([rcpt])
    r = agent.deliver(qid, nexthop, [rcpt])
    return r[rcpt]


# --- levels may and none ----------------------------------------------------

def test_may_uses_tls_when_offered_and_plain_text_when_not(relay, certs):
    relay.zones(MX_B)
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert (st, dsn) == ("sent", "2.0.0"), reason
    [m] = sink.wait_messages(1)
    assert m.tls in ("TLSv1.2", "TLSv1.3")
    assert m.data == crlf(CONTENT)
    cmds = sink.sessions[0].commands
    # EHLO again inside TLS, with the capabilities said there.
    assert [c.split()[0] for c in cmds[:3]] == ["EHLO", "STARTTLS", "EHLO"]
    # No smtp_tls_CAfile: the chain is not trusted, but TLS is used.
    assert (f"Untrusted TLS connection established to "
            f"mx.b.test[127.0.0.2]:{sink.port}: {m.tls} with cipher "
            in logs(relay))

    plain = relay.sink()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{plain.port}")
    assert st == "sent", reason
    [m] = plain.wait_messages(1)
    assert m.tls is None
    assert "STARTTLS" not in plain.sessions[0].commands


def test_failed_handshake_at_may_retries_the_server_in_plain_text(relay,
                                                                   certs):
    relay.zones(MX_B)
    sink = tls_sink(relay, certs.good, tls_break=True)
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    [m] = sink.wait_messages(1)
    assert m.tls is None
    assert sink.connections == 2
    assert "STARTTLS" in sink.sessions[0].commands
    assert "STARTTLS" not in sink.sessions[1].commands
    assert (f"TLS with mx.b.test[127.0.0.2] failed: TLS handshake failed"
            in logs(relay))
    assert "trying again in plain text" in logs(relay)


def test_may_sets_up_tls_only_for_a_server_that_offers_it(relay, certs,
                                                          tmp_path):
    """At may the TLS context is made at the first STARTTLS: a broken
    client setup (a CA file that is not there) costs a plain-text server
    nothing, not even a warning; one that offers STARTTLS still gets the
    mail, in plain text, with the reason logged."""
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_CAfile=str(tmp_path / "no-such.pem"))
    agent = relay.agent()
    plain = relay.sink()
    st, _, reason = deliver_one(relay, agent, f"b.test:{plain.port}")
    assert st == "sent", reason
    assert plain.wait_messages(1)[0].tls is None
    assert "TLS client set-up failed" not in logs(relay)

    sink = tls_sink(relay, certs.good)
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    [m] = sink.wait_messages(1)
    assert m.tls is None
    assert "STARTTLS" not in sink.sessions[0].commands
    assert "TLS client set-up failed" in logs(relay)
    assert "sending in plain text" in logs(relay)


def test_level_none_never_starts_tls(relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="none")
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    assert sink.wait_messages(1)[0].tls is None
    assert "STARTTLS" not in sink.sessions[0].commands


# --- encrypt ----------------------------------------------------------------

def test_encrypt_defers_when_tls_is_not_offered(relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="encrypt")
    plain = relay.sink()
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{plain.port}")
    assert (st, dsn) == ("deferred", "4.7.4")
    assert reason == ("TLS is required, but was not offered by host "
                      "mx.b.test[127.0.0.2]")
    assert plain.messages == []
    assert not any(c.startswith("MAIL") for c in plain.sessions[0].commands)

    sink = tls_sink(relay, certs.wrong_ca)   # encrypt checks nothing
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    assert sink.wait_messages(1)[0].tls is not None


def test_encrypt_does_not_fall_back_to_plain_text(relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="encrypt")
    sink = tls_sink(relay, certs.good, tls_break=True)
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.5"), reason
    assert reason.startswith("TLS is required, but failed with host "
                             "mx.b.test[127.0.0.2]: TLS handshake failed")
    assert sink.connections == 1 and sink.messages == []


# --- verify and secure ------------------------------------------------------

def test_verify_with_the_right_ca_and_name_is_verified(relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="verify",
                             smtp_tls_CAfile=certs.ca)
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    [m] = sink.wait_messages(1)
    assert (f"Verified TLS connection established to "
            f"mx.b.test[127.0.0.2]:{sink.port}: {m.tls} with cipher "
            in logs(relay))


def test_verify_refuses_a_wrong_name_then_delivers_with_the_right_cert(
        relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="verify",
                             smtp_tls_CAfile=certs.ca)
    bad = tls_sink(relay, certs.wrong_name)
    port = bad.port
    agent = relay.agent()
    qid = relay.queue(["bob@b.test"])
    r = agent.deliver(qid, f"b.test:{port}", ["bob@b.test"])
    st, dsn, reason = r["bob@b.test"]
    assert (st, dsn) == ("deferred", "4.7.5")
    assert reason.startswith("TLS is required, but failed with host "
                             "mx.b.test[127.0.0.2]: TLS handshake failed")
    assert "hostname mismatch" in reason
    assert bad.messages == []
    # The operator installs the right certificate; the retry delivers.
    bad.stop()
    relay.sinks.remove(bad)
    good = tls_sink(relay, certs.good, port=port)
    r = agent.deliver(qid, f"b.test:{port}", ["bob@b.test"])
    assert r["bob@b.test"][0] == "sent", r.results
    assert len(good.wait_messages(1)) == 1


def test_verify_refuses_a_certificate_from_an_unknown_ca(relay, certs):
    relay.zones(MX_B)
    relay.inst.write_main_cf(smtp_tls_security_level="verify",
                             smtp_tls_CAfile=certs.ca)
    sink = tls_sink(relay, certs.wrong_ca)
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.5")
    assert "certificate verify failed" in reason
    assert "local issuer" in reason
    assert sink.messages == []


def test_secure_matches_the_nexthop_domain_not_the_mx_name(relay, certs):
    # mx.b.test is under the next hop b.test: dot-nexthop matches it.
    relay.zones(MX_B + ["c.test. MX 10 mx.b.test."])
    relay.inst.write_main_cf(smtp_tls_security_level="secure",
                             smtp_tls_CAfile=certs.ca)
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    # For c.test, the same MX's certificate names neither c.test nor a
    # subdomain of it: an MX record is no proof (DNS is not signed).
    st, dsn, reason = deliver_one(relay, agent, f"c.test:{sink.port}",
                                  rcpt="bob@c.test")
    assert (st, dsn) == ("deferred", "4.7.5"), reason
    assert "hostname mismatch" in reason


# --- smtp_tls_policy_maps ---------------------------------------------------

def test_policy_map_overrides_the_default_level_per_destination(relay,
                                                                certs):
    relay.zones(MX_B + ["c.test. MX 10 mx.c.test.",
                        "mx.c.test. A 127.0.0.3"])
    policy = relay.inst.root / "tls_policy"
    policy.write_text("c.test encrypt\n"
                      "# a bracketed next hop with its port\n")
    relay.inst.write_main_cf(smtp_tls_security_level="may",
                             smtp_tls_policy_maps=f"texthash:{policy}")
    b = relay.sink("127.0.0.2")
    c = relay.sink("127.0.0.3", b.port)
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{b.port}")
    assert st == "sent", reason                    # may: plain text is fine
    st, dsn, reason = deliver_one(relay, agent, f"c.test:{b.port}",
                                  rcpt="bob@c.test")
    assert (st, dsn) == ("deferred", "4.7.4"), reason
    assert "not offered by host mx.c.test[127.0.0.3]" in reason
    assert c.messages == []


def test_policy_map_can_relax_verify_and_match_names(relay, certs):
    relay.zones(MX_B + ["c.test. MX 10 mx.c.test.",
                        "mx.c.test. A 127.0.0.3"])
    policy = relay.inst.root / "tls_policy"
    good = tls_sink(relay, certs.good, "127.0.0.2")
    port = good.port
    # c.test's MX presents mx.b.test's certificate: fine by name match.
    c = tls_sink(relay, certs.good, "127.0.0.3", port)
    policy.write_text(f"[mx.b.test]:{port} none\n"
                      "c.test verify match=mx.b.test\n")
    relay.inst.write_main_cf(smtp_tls_security_level="verify",
                             smtp_tls_CAfile=certs.ca,
                             smtp_tls_policy_maps=f"texthash:{policy}")
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"[mx.b.test]:{port}")
    assert st == "sent", reason
    assert good.wait_messages(1)[0].tls is None        # "none" wins
    assert "STARTTLS" not in good.sessions[0].commands
    st, _, reason = deliver_one(relay, agent, f"c.test:{port}",
                                rcpt="bob@c.test")
    assert st == "sent", reason
    assert c.wait_messages(1)[0].tls is not None
    assert (f"Verified TLS connection established to "
            f"mx.c.test[127.0.0.3]:{port}" in logs(relay))


def test_malformed_policy_entry_defers(relay, certs):
    relay.zones(MX_B)
    policy = relay.inst.root / "tls_policy"
    policy.write_text("b.test verify bogus=1\n")
    relay.inst.write_main_cf(smtp_tls_policy_maps=f"texthash:{policy}")
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.5")
    assert reason == ("invalid TLS policy for b.test: unknown TLS policy "
                      "attribute \"bogus\"")
    assert sink.connections == 0


# --- session reuse ----------------------------------------------------------

def test_tls_session_is_reused_on_the_next_delivery(relay, certs):
    relay.zones(MX_B)
    sink = tls_sink(relay, certs.good)
    agent = relay.agent()
    for _ in range(2):
        st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
        assert st == "sent", reason
    sink.wait_messages(2)
    assert [s.tls_resumed for s in sink.sessions] == [False, True]
    assert (f"TLS connection reused to mx.b.test[127.0.0.2]:{sink.port}"
            in logs(relay))


# --- SASL -------------------------------------------------------------------

RELAY_ZONES = MX_B + ["relay.b.test. A 127.0.0.2"]


def sasl_setup(relay, passwords, **main_cf):
    relay.zones(RELAY_ZONES)
    table = relay.inst.root / "sasl_passwd"
    table.write_text("".join(f"{k} {v}\n" for k, v in passwords.items()))
    relay.inst.write_main_cf(smtp_sasl_auth_enable="yes",
                             smtp_sasl_password_maps=f"texthash:{table}",
                             **main_cf)


def test_sasl_plain_to_a_relay_host_with_the_password_map(relay, certs):
    sink = tls_sink(relay, certs.good, auth={"alice": "s3cret:x"},
                    auth_tls_only=True, auth_required=True)
    sasl_setup(relay, {f"[relay.b.test]:{sink.port}": "alice:s3cret:x",
                       "[other.b.test]": "mallory:nope"})
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"[relay.b.test]:{sink.port}",
                                rcpt="carol@far.test")
    assert st == "sent", reason
    [m] = sink.wait_messages(1)
    assert m.auth_user == "alice" and m.tls is not None
    assert m.rcpts == ["carol@far.test"]
    # Only inside TLS, and the password never in a log.
    assert [a[2] for a in sink.sessions[0].auth_attempts] == [True]
    assert "s3cret" not in logs(relay)


def test_sasl_login_is_used_when_it_is_all_the_server_offers(relay, certs):
    sink = tls_sink(relay, certs.good, auth={"alice": "pw"},
                    auth_mechs=("LOGIN",), auth_required=True)
    sasl_setup(relay, {"relay.b.test": "alice:pw"})
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"[relay.b.test]:{sink.port}")
    assert st == "sent", reason
    assert sink.sessions[0].auth_attempts == [("LOGIN", "alice", True)]


def test_sasl_wrong_password_defers_with_the_servers_reply(relay, certs):
    sink = tls_sink(relay, certs.good, auth={"alice": "right"},
                    auth_required=True)
    sasl_setup(relay, {f"[relay.b.test]:{sink.port}": "alice:wrong"})
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent,
                                  f"[relay.b.test]:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.8")
    assert reason == ("SASL authentication failed; server "
                      "relay.b.test[127.0.0.2] said: 535 5.7.8 Error: "
                      "authentication failed")
    assert sink.messages == []
    assert not any(c.startswith("MAIL") for c in sink.sessions[0].commands)


def test_no_credentials_in_plain_text_unless_the_options_allow_it(relay):
    sink = relay.sink(auth={"alice": "pw"}, auth_required=True)
    sasl_setup(relay, {"relay.b.test": "alice:pw"})
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"[relay.b.test]:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.0")
    assert reason.startswith("SASL authentication failed; cannot "
                             "authenticate to server relay.b.test"
                             "[127.0.0.2]: ")
    assert not any(c.upper().startswith("AUTH")
                   for s in sink.sessions for c in s.commands)
    assert sink.messages == []

    # A site that accepts the risk says so, and then it works.
    relay.inst.write_main_cf(smtp_sasl_security_options="noanonymous")
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"[relay.b.test]:{sink.port}")
    assert st == "sent", reason
    assert sink.wait_messages(1)[0].auth_user == "alice"
    assert sink.sessions[-1].auth_attempts[0][2] is False


def test_no_password_entry_means_no_auth(relay, certs):
    sink = tls_sink(relay, certs.good, auth={"alice": "pw"})
    sasl_setup(relay, {"[elsewhere.test]": "alice:pw"})
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"[relay.b.test]:{sink.port}")
    assert st == "sent", reason
    assert sink.sessions[0].auth_attempts == []
    assert sink.wait_messages(1)[0].auth_user is None


# --- DANE -------------------------------------------------------------------

def signed_zones(relay, dns, records, level="dane"):
    """Serve records (name, type, data) from a signed "test." zone and
    point the client at it with its trust anchor."""
    zone = SignedZone("test.")
    for name, rtype, data in records:
        zone.add(name, rtype, data)
    d = relay.inst.root / "dnssec"
    d.mkdir(exist_ok=True)
    zone.write(d / "test.zone", d / "anchor.ds")
    srv = dns([], {"test.": "transparent"}, [
        "auth-zone:",
        '    name: "test."',
        f'    zonefile: "{d}/test.zone"',
        "    for-downstream: yes",
        "    for-upstream: no"])
    relay.inst.write_main_cf(
        dns_forwarders=srv.forwarder, dns_lookup_timeout="10s",
        dns_trust_anchor_file=str(d / "anchor.ds"),
        smtp_tls_security_level=level,
        smtp_connect_timeout="5s", smtp_helo_timeout="10s",
        smtp_mail_timeout="10s", smtp_rcpt_timeout="10s",
        smtp_data_init_timeout="10s", smtp_data_xfer_timeout="10s",
        smtp_data_done_timeout="10s", smtp_quit_timeout="5s")


MX_B_SIGNED = [("b.test.", "MX", "10 mx.b.test."),
               ("mx.b.test.", "A", "127.0.0.2")]


def test_dane_ee_record_authenticates_a_certificate_no_ca_vouches_for(
        relay, dns, certs):
    # Neither the CA nor the name of this certificate would pass
    # verify; the signed TLSA record for its key is what counts.
    sink = tls_sink(relay, certs.wrong_name)
    signed_zones(relay, dns, MX_B_SIGNED + [
        (f"_{sink.port}._tcp.mx.b.test.", "TLSA",
         "3 1 1 " + spki_sha256(certs.wrong_name))])
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    assert sink.wait_messages(1)[0].tls is not None
    assert (f"Verified TLS connection established to "
            f"mx.b.test[127.0.0.2]:{sink.port}" in logs(relay))


def test_dane_record_that_does_not_match_defers_without_plain_text(
        relay, dns, certs):
    sink = tls_sink(relay, certs.good)
    signed_zones(relay, dns, MX_B_SIGNED + [
        (f"_{sink.port}._tcp.mx.b.test.", "TLSA",
         "3 1 1 " + spki_sha256(certs.wrong_ca))])
    agent = relay.agent()
    st, dsn, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert (st, dsn) == ("deferred", "4.7.5"), reason
    assert reason.startswith("TLS is required, but failed with host "
                             "mx.b.test[127.0.0.2]: TLS handshake failed")
    assert sink.connections == 1 and sink.messages == []


def test_dane_without_tlsa_records_is_opportunistic(relay, dns, certs):
    sink = tls_sink(relay, certs.good)
    plain = relay.sink("127.0.0.2")
    signed_zones(relay, dns, MX_B_SIGNED)
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{sink.port}")
    assert st == "sent", reason
    assert sink.wait_messages(1)[0].tls is not None
    st, _, reason = deliver_one(relay, agent, f"b.test:{plain.port}")
    assert st == "sent", reason
    assert plain.wait_messages(1)[0].tls is None


def test_dane_with_unsigned_dns_is_opportunistic(relay, certs):
    relay.zones(MX_B)       # no signatures, no trust anchor
    relay.inst.write_main_cf(smtp_tls_security_level="dane")
    plain = relay.sink()
    agent = relay.agent()
    st, _, reason = deliver_one(relay, agent, f"b.test:{plain.port}")
    assert st == "sent", reason
    assert plain.wait_messages(1)[0].tls is None
