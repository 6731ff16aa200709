"""
A DNSSEC-signed test zone, for the DANE tests: signs a small zone with
one ECDSA P-256 key (algorithm 13, RFC 6605) using Python's
cryptography package, and writes it as a zone file that unbound serves
as an auth-zone, with the trust anchor (a DS record) for the resolver
under test.

    z = SignedZone("test.")
    z.add("b.test.", "MX", "10 mx.b.test.")
    z.add("mx.b.test.", "A", "127.0.0.2")
    z.add("_25._tcp.mx.b.test.", "TLSA", "3 1 1 " + sha256_hex)
    z.write(zone_path, anchor_path)

Only what the tests use: SOA, NS, A, MX, TLSA, with DNSKEY, RRSIG and an
NSEC chain (so that "no such record" is provable too). Wire formats
follow RFC 1035 and RFC 4034 (canonical form, key tag, type bitmaps).
"""
import base64
import hashlib
import struct
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature

TYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "AAAA": 28, "RRSIG": 46,
         "NSEC": 47, "DNSKEY": 48, "TLSA": 52}
ALG = 13            # ECDSAP256SHA256
TTL = 300


def name_wire(name):
    labels = [l for l in name.lower().rstrip(".").split(".") if l]
    return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"


def canonical_key(name):
    """RFC 4034 6.1: labels compared from the right, as lower-case
    octet strings."""
    return [l.encode() for l in reversed(name.lower().rstrip(".").split("."))
            if l]


def type_bitmap(types):
    codes = sorted(TYPES[t] for t in types)
    out = b""
    for window in sorted({c >> 8 for c in codes}):
        bits = bytearray(32)
        for c in codes:
            if c >> 8 == window:
                low = c & 0xFF
                bits[low >> 3] |= 0x80 >> (low & 7)
        n = max(i for i in range(32) if bits[i]) + 1
        out += bytes([window, n]) + bytes(bits[:n])
    return out


def rdata_wire(rtype, text):
    f = text.split()
    if rtype == "A":
        return bytes(int(x) for x in f[0].split("."))
    if rtype == "NS":
        return name_wire(f[0])
    if rtype == "MX":
        return struct.pack(">H", int(f[0])) + name_wire(f[1])
    if rtype == "SOA":
        return name_wire(f[0]) + name_wire(f[1]) + \
            struct.pack(">IIIII", *(int(x) for x in f[2:7]))
    if rtype == "TLSA":
        return bytes([int(f[0]), int(f[1]), int(f[2])]) + \
            bytes.fromhex("".join(f[3:]))
    raise ValueError(f"type {rtype} not supported here")


class SignedZone:
    def __init__(self, origin="test."):
        self.origin = origin.lower()
        self.key = ec.generate_private_key(ec.SECP256R1())
        nums = self.key.public_key().public_numbers()
        self.pubkey = nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
        # KSK+ZSK in one: flags 257 (SEP), protocol 3.
        self.dnskey_rdata = struct.pack(">HBB", 257, 3, ALG) + self.pubkey
        self.keytag = self._keytag(self.dnskey_rdata)
        self.rrsets = {}        # (name, type) -> [text rdata]
        self.add(self.origin, "SOA",
                 f"ns.{self.origin} hostmaster.{self.origin} 1 3600 600 "
                 "86400 60")
        self.add(self.origin, "NS", f"ns.{self.origin}")

    @staticmethod
    def _keytag(rdata):
        ac = 0
        for i, b in enumerate(rdata):
            ac += b if i & 1 else b << 8
        ac += (ac >> 16) & 0xFFFF
        return ac & 0xFFFF

    def add(self, name, rtype, text):
        self.rrsets.setdefault((name.lower(), rtype), []).append(text)

    def ds(self):
        digest = hashlib.sha256(name_wire(self.origin) +
                                self.dnskey_rdata).hexdigest()
        return f"{self.origin} {TTL} IN DS {self.keytag} {ALG} 2 {digest}"

    def _sign(self, name, rtype, rdatas):
        labels = len(canonical_key(name))
        now = int(time.time())
        inception, expiration = now - 3600, now + 7 * 86400
        head = struct.pack(">HBBIII", TYPES[rtype], ALG, labels, TTL,
                           expiration, inception) + \
            struct.pack(">H", self.keytag) + name_wire(self.origin)
        owner = name_wire(name)
        data = head
        for rd in sorted(rdatas):
            data += owner + struct.pack(">HHIH", TYPES[rtype], 1, TTL,
                                        len(rd)) + rd
        der = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(expiration)) + \
            " " + time.strftime("%Y%m%d%H%M%S", time.gmtime(inception))
        return (f"{name} {TTL} IN RRSIG {rtype} {ALG} {labels} {TTL} "
                f"{stamp} {self.keytag} {self.origin} "
                f"{base64.b64encode(sig).decode()}")

    def lines(self):
        out = []
        wire = {k: [rdata_wire(k[1], t) for t in v]
                for k, v in self.rrsets.items()}
        wire[(self.origin, "DNSKEY")] = [self.dnskey_rdata]
        names = sorted({k[0] for k in wire}, key=canonical_key)
        # The NSEC chain: each name points to the next, the last to the
        # apex, listing the types that exist at the name.
        for i, name in enumerate(names):
            nxt = names[(i + 1) % len(names)]
            types = sorted({k[1] for k in wire if k[0] == name} |
                           {"NSEC", "RRSIG"})
            wire[(name, "NSEC")] = [name_wire(nxt) + type_bitmap(types)]
            out.append(f"{name} {TTL} IN NSEC {nxt} {' '.join(types)}")
        for (name, rtype), texts in sorted(self.rrsets.items()):
            for t in texts:
                out.append(f"{name} {TTL} IN {rtype} {t}")
        out.append(f"{self.origin} {TTL} IN DNSKEY 257 3 {ALG} "
                   f"{base64.b64encode(self.pubkey).decode()}")
        for (name, rtype), rdatas in sorted(wire.items()):
            out.append(self._sign(name, rtype, rdatas))
        return out

    def write(self, zone_path, anchor_path):
        zone_path.write_text("\n".join(self.lines()) + "\n")
        anchor_path.write_text(self.ds() + "\n")
