#!/usr/bin/env python3
"""Verifies an ICE journal export (`ice journal export`) with the Python standard library only.

    python3 tools/verify_journal.py --file export.jsonl --key authority.pub [--json]

`--key` is what you trust: a PEM public key file (a data dir's `authority.pub`), a file written
by `ice authority keys --json` (a cluster: every node key), or a raw ed25519 public key in
base64url (what `ice authority keys` prints). It may be given more than once.

What it checks, independently of the runtime's own code (docs/protocol.md, "Journal export"):

- canonical JSON is RFC 8785 (JCS), written here: object keys sorted by UTF-16 code units,
  numbers printed as ECMAScript does, strings escaped as JSON.stringify does, no whitespace;
  strings with lone surrogates have no canonical form;
- each chain: consecutive seqs, `prev` = the hash before, `hash = sha256(prev + JCS(body))`
  over UTF-8, body = the fact without `prev` and `hash` (facts with `v: 1`: the body's JSON in
  the key order of the file, nothing sorted);
- `intent.proposed`: `digest = sha256(JCS(intent))`; `decision`: for the intent id and digest
  of the `intent.proposed`/`approval` fact it names as cause; a `transition` of an intent:
  caused by a `granted` decision of the same intent;
- signatures (ed25519): checkpoints over `ice-checkpoint:<hash>` (with `hash = sha256(prev +
  JCS(heads))`, linked to the checkpoint before), cluster turns over
  `ice-turn:<chain>:<seq>:<hash>`, decisions with a `sig` over JCS(decision without `sig`);
  a decision with `sig: ""` and every other fact must be covered by a signed checkpoint/turn.

Python's standard library has no ed25519: signatures are checked by running
`openssl pkeyutl -verify -rawin` (OpenSSL 3). Without openssl on the PATH, signatures are
reported as UNCHECKED and the exit code is 3, never a pass.

Exit codes: 0 verified; 1 broken (the first broken entry is named: line, chain, seq, reason);
2 usage; 3 everything but the signatures verified (no openssl).
"""

import argparse
import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

EXPORT_FORMAT = "ice-journal-export"
EXPORT_VERSION = 1
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
STRICT_SIG = re.compile(r"^[A-Za-z0-9+/]{85}[AQgw]==$")


# ---------------------------------------------------------------- RFC 8785 canonical JSON


class NotCanonical(Exception):
    pass


def es_number(x):
    """A number as ECMAScript's Number::toString prints it (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, bool):
        raise NotCanonical("not a number")
    if isinstance(x, int) and abs(x) < 2**53:
        return str(x)
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        raise NotCanonical("non-finite number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # the shortest digits that round-trip, as ECMAScript picks them
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = ip + fp
    n = len(ip) + e  # the value is 0.<digits> * 10**n
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e >= 0 else "-") + str(abs(e))
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + es
    return sign + out


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def es_string(s):
    """A string as JSON.stringify writes it; a lone surrogate has no canonical form."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF:
            raise NotCanonical("a lone surrogate (not valid Unicode)")
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def utf16_key(s):
    return s.encode("utf-16-be", "surrogatepass")


def jcs(v, sort=True):
    """RFC 8785 text of a JSON value; with sort=False keys keep the order they have (v1 facts)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return es_number(v)
    if isinstance(v, str):
        return es_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x, sort) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=utf16_key) if sort else list(v.keys())
        return "{" + ",".join(es_string(k) + ":" + jcs(v[k], sort) for k in keys) + "}"
    raise NotCanonical("not a JSON value: %r" % type(v))


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- keys and signatures


def spki_der_from_pem(pem):
    body = "".join(l for l in pem.strip().splitlines() if not l.startswith("-----"))
    return base64.b64decode(body)


def key_id(der):
    return hashlib.sha256(der).hexdigest()[:16]


def raw_from_der(der):
    if len(der) != 44 or not der.startswith(ED25519_SPKI_PREFIX):
        raise ValueError("not an ed25519 public key")
    return der[len(ED25519_SPKI_PREFIX):]


def pem_from_der(der):
    b = base64.b64encode(der).decode()
    return "-----BEGIN PUBLIC KEY-----\n" + b + "\n-----END PUBLIC KEY-----\n"


def b64url_decode(s):
    s = s.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_keys(values):
    """--key values -> {keyId: spki der}."""
    keys = {}
    for v in values:
        text = open(v, encoding="utf-8").read() if os.path.isfile(v) else v
        t = text.strip()
        ders = []
        if t.startswith("-----BEGIN"):
            for pem in re.findall(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", t, re.S):
                ders.append(spki_der_from_pem(pem))
        elif t.startswith("[") or t.startswith("{"):
            v2 = json.loads(t)
            for k in v2 if isinstance(v2, list) else [v2]:
                if isinstance(k.get("publicKeyPem"), str):
                    ders.append(spki_der_from_pem(k["publicKeyPem"]))
                elif isinstance(k.get("publicKey"), str):
                    ders.append(ED25519_SPKI_PREFIX + b64url_decode(k["publicKey"]))
        else:
            raw = b64url_decode(t)
            if len(raw) != 32:
                raise ValueError("%r is no file and no raw ed25519 key (32 bytes in base64url)" % v)
            ders.append(ED25519_SPKI_PREFIX + raw)
        if not ders:
            raise ValueError("%s holds no public key" % v)
        for der in ders:
            raw_from_der(der)
            keys[key_id(der)] = der
    return keys


class Signatures:
    """ed25519 verification through `openssl pkeyutl -verify -rawin` (the stdlib has no ed25519)."""

    def __init__(self, keys):
        self.keys = keys
        self.openssl = shutil.which("openssl")
        self.unchecked = 0
        self.checked = 0
        self.dir = tempfile.mkdtemp(prefix="ice-verify-")
        self.pems = {}

    def verify(self, keyid, message, sig_b64):
        """True/False when checked; None when openssl is missing (counted as unchecked)."""
        der = self.keys[keyid]
        if not self.openssl:
            self.unchecked += 1
            return None
        if keyid not in self.pems:
            p = os.path.join(self.dir, keyid + ".pem")
            with open(p, "w") as f:
                f.write(pem_from_der(der))
            self.pems[keyid] = p
        msg = os.path.join(self.dir, "msg")
        sig = os.path.join(self.dir, "sig")
        with open(msg, "wb") as f:
            f.write(message.encode("utf-8"))
        with open(sig, "wb") as f:
            f.write(base64.b64decode(sig_b64))
        r = subprocess.run(
            [self.openssl, "pkeyutl", "-verify", "-pubin", "-inkey", self.pems[keyid], "-rawin", "-in", msg, "-sigfile", sig],
            capture_output=True,
        )
        self.checked += 1
        return r.returncode == 0

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- the check


class Broken(Exception):
    def __init__(self, line, reason, chain=None, seq=None):
        super().__init__(reason)
        self.line, self.reason, self.chain, self.seq = line, reason, chain, seq


def verify(path, keys):
    sigs = Signatures(keys)
    st = {
        "facts": 0, "chains": 0, "checkpoints": 0, "turns": 0, "transitions": 0,
        "decisions_signed": 0, "decisions_attested": 0, "outside_export": 0, "lines": 0,
    }
    chains = {}  # chain -> {first, seq, hash, facts: {seq: dict}, attested}
    header = None
    ended = False
    last_cp = None
    last_pos = 0
    turn_pos = 0  # cluster: the last turn record's position; facts after it start a new turn
    n = 0

    def signed(keyid, message, sig, what):
        if not isinstance(sig, str) or not STRICT_SIG.match(sig):
            raise Broken(n, "%s signature is not 64 bytes of base64" % what)
        if keyid not in keys:
            raise Broken(n, "%s is signed by key %s, which is not a trusted key (--key)" % (what, keyid))
        ok = sigs.verify(keyid, message, sig)
        if ok is False:
            raise Broken(n, "%s signature does not verify" % what)

    def attest(chain, seq, h, what):
        c = chains.get(chain)
        if c is None or seq < c["first"]:
            return
        f = c["facts"].get(seq)
        if f is None:
            raise Broken(n, "%s names fact %d of %s, which is not in the export before it" % (what, seq, chain), chain, seq)
        if f["hash"] != h:
            raise Broken(n, "%s names another hash for fact %d of %s (history was rewritten)" % (what, seq, chain), chain, seq)
        c["attested"] = max(c["attested"], seq)

    def check_pos(pos, ok, what):
        if not isinstance(pos, int) or isinstance(pos, bool) or not ok(pos):
            raise Broken(n, "%s is out of order (position %r after %d): records were moved or edited" % (what, pos, last_pos))

    def check_fact(f):
        if not isinstance(f, dict) or not isinstance(f.get("seq"), int) or not isinstance(f.get("hash"), str) or not isinstance(f.get("prev"), str):
            raise Broken(n, "a fact record without a fact (seq, prev, hash)")
        chain = f.get("actor", "")
        c = chains.get(chain)
        seq = f["seq"]
        if c is None:
            if seq == 1 and f["prev"] != "":
                raise Broken(n, "the first fact of a chain has a prev", chain, seq)
            c = {"first": seq, "seq": seq - 1, "hash": f["prev"], "facts": {}, "attested": seq - 1}
            chains[chain] = c
        if seq != c["seq"] + 1:
            raise Broken(n, ("fact %d repeats a position" % seq) if seq <= c["seq"] else ("fact %d is missing" % (c["seq"] + 1)), chain, seq)
        if f["prev"] != c["hash"]:
            raise Broken(n, "prev does not match the previous hash", chain, seq)
        body = {k: v for k, v in f.items() if k not in ("prev", "hash")}
        try:
            text = jcs(body, sort=body.get("v") != 1)
        except NotCanonical as e:
            raise Broken(n, "the fact has no canonical JSON (%s)" % e, chain, seq)
        if sha256_hex(f["prev"] + text) != f["hash"]:
            raise Broken(n, "hash does not match the fact body and the previous hash", chain, seq)
        seen = {"line": n, "hash": f["hash"], "type": f.get("type"), "intentId": f.get("intentId")}
        data = f.get("data") or {}
        causes = f.get("causes") or []

        def cause():
            if not causes:
                raise Broken(n, "a %s fact without a cause" % f.get("type"), chain, seq)
            s = causes[0]
            if s < c["first"]:
                st["outside_export"] += 1
                return None
            got = c["facts"].get(s)
            if got is None:
                raise Broken(n, "its cause, fact %d, is not in the chain before it" % s, chain, seq)
            return got

        t = f.get("type")
        if t == "intent.proposed":
            try:
                digest = sha256_hex(jcs(data.get("intent")))
            except NotCanonical as e:
                raise Broken(n, "the intent has no canonical JSON (%s)" % e, chain, seq)
            if data.get("digest") != digest:
                raise Broken(n, "the intent digest is not sha256(JCS(intent))", chain, seq)
            if (data.get("intent") or {}).get("id") != f.get("intentId"):
                raise Broken(n, "the intent is not the one the fact names", chain, seq)
            seen["digest"] = digest
        elif t == "approval":
            if isinstance(data.get("digest"), str):
                seen["digest"] = data["digest"]
        elif t == "decision":
            d = data.get("decision")
            if not isinstance(d, dict) or d.get("intentId") != f.get("intentId"):
                raise Broken(n, "the decision is not for the intent the fact names", chain, seq)
            of = cause()
            if of is not None:
                if of["type"] not in ("intent.proposed", "approval") or of["intentId"] != f.get("intentId"):
                    raise Broken(n, "the decision's cause (fact %d) is not the proposal of intent %s" % (causes[0], f.get("intentId")), chain, seq)
                if of.get("digest") is not None and of["digest"] != d.get("intentDigest"):
                    raise Broken(n, "the decision was made for other intent content (intentDigest differs)", chain, seq)
            seen["verdict"] = d.get("verdict")
            if d.get("sig") != "":
                unsigned = {k: v for k, v in d.items() if k != "sig"}
                try:
                    signed(d.get("authority"), jcs(unsigned), d.get("sig"), "the decision")
                except Broken as b:
                    raise Broken(n, b.reason, chain, seq)
                st["decisions_signed"] += 1
            else:
                seen["unsigned"] = True
        elif t == "transition" and f.get("intentId") is not None:
            d = cause()
            if d is not None and (d["type"] != "decision" or d["intentId"] != f.get("intentId") or d.get("verdict") != "granted"):
                raise Broken(n, "the transition's cause (fact %d) is not a granted decision for intent %s" % (causes[0], f.get("intentId")), chain, seq)
            st["transitions"] += 1
        c["facts"][seq] = seen
        c["seq"] = seq
        c["hash"] = f["hash"]
        st["facts"] += 1

    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for raw in fh:
                n += 1
                if raw.strip() == "":
                    if n == 1:
                        raise Broken(n, "empty line: not a journal export")
                    continue
                if ended:
                    raise Broken(n, "a record after the end record")
                try:
                    rec = json.loads(raw)
                except ValueError as e:
                    raise Broken(n, "not JSON (%s)" % e)
                if not isinstance(rec, dict):
                    raise Broken(n, "not a JSON object")
                try:
                    if n == 1:
                        if rec.get("type") != "header" or rec.get("format") != EXPORT_FORMAT or rec.get("version") != EXPORT_VERSION or rec.get("mode") not in ("embedded", "cluster"):
                            raise Broken(n, "the first line is not the header of an %s version %d" % (EXPORT_FORMAT, EXPORT_VERSION))
                        header = rec
                        continue
                    t = rec.get("type")
                    if t == "key":
                        der = spki_der_from_pem(rec["publicKeyPem"])
                        raw_key = raw_from_der(der)
                        if key_id(der) != rec.get("keyId") or base64.urlsafe_b64encode(raw_key).decode().rstrip("=") != rec.get("publicKey") or rec.get("alg") != "ed25519":
                            raise Broken(n, "a key record whose keyId or raw key is not that of its PEM key")
                    elif t == "fact":
                        f = rec.get("fact")
                        if header["mode"] != "cluster":
                            ok_pos = lambda p: p > last_pos
                        elif last_pos > turn_pos:  # within a turn: its facts share its position
                            ok_pos = lambda p: p == last_pos
                        else:
                            ok_pos = lambda p: p > turn_pos
                        check_pos(rec.get("pos"), ok_pos, "the fact")
                        if header.get("actor") is not None and (f or {}).get("actor") != header["actor"]:
                            raise Broken(n, "a fact of another chain than %s, which the header names" % header["actor"])
                        check_fact(f)
                        last_pos = rec["pos"]
                    elif t == "checkpoint":
                        if header["mode"] != "embedded":
                            raise Broken(n, "a checkpoint in the export of a cluster")
                        check_pos(rec.get("pos"), (lambda p: p == last_pos) if header.get("actor") is None else (lambda p: p >= last_pos), "the checkpoint")
                        if sha256_hex(rec["prev"] + jcs(rec["heads"])) != rec["hash"]:
                            raise Broken(n, "the checkpoint hash is not sha256(prev + JCS(heads))")
                        signed(rec["keyId"], "ice-checkpoint:" + rec["hash"], rec["sig"], "the checkpoint")
                        if last_cp is not None and header.get("actor") is None and rec["prev"] != last_cp["hash"]:
                            raise Broken(n, "the checkpoint does not link to the one before (history was rewritten)")
                        last_cp = rec
                        for chain, seq, h in rec["heads"]:
                            attest(chain, seq, h, "the checkpoint")
                        st["checkpoints"] += 1
                    elif t == "turn":
                        if header["mode"] != "cluster":
                            raise Broken(n, "a turn in the export of an embedded runtime")
                        check_pos(rec.get("pos"), lambda p: p == last_pos and p > turn_pos, "the turn")
                        turn_pos = rec["pos"]
                        try:
                            signed(rec["keyId"], "ice-turn:%s:%d:%s" % (rec["chain"], rec["seq"], rec["hash"]), rec["sig"], "the turn")
                        except Broken as b:
                            raise Broken(n, b.reason, rec.get("chain"), rec.get("seq"))
                        attest(rec["chain"], rec["seq"], rec["hash"], "the turn")
                        st["turns"] += 1
                    elif t == "end":
                        ended = True
                        if rec.get("facts") != st["facts"] or rec.get("checkpoints") != st["checkpoints"] or rec.get("turns") != st["turns"]:
                            raise Broken(n, "the end record's counts are not those of the file (lines were removed or added)")
                    else:
                        raise Broken(n, "unknown record type %r" % (t,))
                except Broken:
                    raise
                except (KeyError, TypeError, ValueError, AttributeError, NotCanonical) as e:
                    raise Broken(n, "a malformed record (%s: %s)" % (type(e).__name__, e))
        st["lines"] = n
        if header is None:
            raise Broken(1, "empty file: not a journal export")
        if not ended:
            raise Broken(n, "no end record: the export is truncated")
        first = None
        for chain, c in chains.items():
            for seq in sorted(c["facts"]):
                f = c["facts"][seq]
                if seq <= c["attested"]:
                    if f.get("unsigned"):
                        st["decisions_attested"] += 1
                    continue
                if first is None or f["line"] < first.line:
                    first = Broken(f["line"], "no signed checkpoint or turn covers this fact (nothing attests it)", chain, seq)
                break
        if first is not None:
            raise first
        st["chains"] = len(chains)
        return {"ok": True, "signatures": "unchecked" if sigs.unchecked else "verified", "signatures_checked": sigs.checked, **st}
    except Broken as b:
        st["chains"] = len(chains)
        st["lines"] = max(st["lines"], n)
        broken = {"line": b.line, "reason": b.reason}
        if b.chain is not None:
            broken["chain"] = b.chain
        if b.seq is not None:
            broken["seq"] = b.seq
        return {"ok": False, "broken": broken, **st}
    finally:
        sigs.close()


def main(argv):
    p = argparse.ArgumentParser(description="Verify an ICE journal export offline (Python stdlib + openssl for ed25519).")
    p.add_argument("--file", required=True, help="the export (JSON Lines) written by `ice journal export`")
    p.add_argument("--key", required=True, action="append", help="trusted authority public key: PEM file, `ice authority keys --json` file, or base64url raw key")
    p.add_argument("--json", action="store_true", help="JSON output")
    a = p.parse_args(argv)
    if not os.path.isfile(a.file):
        p.error("--file: no such file: %s" % a.file)
    try:
        keys = load_keys(a.key)
    except (OSError, ValueError) as e:
        p.error("--key: %s" % e)
    r = verify(a.file, keys)
    if a.json:
        print(json.dumps(r, indent=2))
    elif r["ok"]:
        print("%s: %d facts in %d chains; %d checkpoints, %d turns; decisions: %d signed, %d attested by a signed head; %d transitions each with a granted decision"
              % ("OK" if r["signatures"] == "verified" else "OK except signatures", r["facts"], r["chains"], r["checkpoints"], r["turns"],
                 r["decisions_signed"], r["decisions_attested"], r["transitions"]))
        if r["signatures"] != "verified":
            print("signatures UNCHECKED: openssl was not found on the PATH (Python's standard library has no ed25519)")
        else:
            print("signatures verified with openssl: %d" % r["signatures_checked"])
    else:
        b = r["broken"]
        where = ""
        if "chain" in b:
            where = " (%s%s)" % (b["chain"], " #%d" % b["seq"] if "seq" in b else "")
        print("BROKEN at line %d%s: %s" % (b["line"], where, b["reason"]))
    if not r["ok"]:
        return 1
    return 0 if r["signatures"] == "verified" else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
