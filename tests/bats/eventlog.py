#!/usr/bin/env python3
# An independent reader and writer of the TPM event log for tests/bats/measure.bats: systemd's
# userspace log format (src/shared/tpm2-util.c: RS + JSON + LF records, flock LOCK_EX while
# extending and appending), replay with hashlib, and edited copies of a log.
#
#   eventlog.py replay LOG PCR BANK          the PCR value the log's records replay to, hex
#   eventlog.py systemd LOG PCR STRING BANK... as systemd-pcrextend: lock, extend, append a record
#   eventlog.py format LOG                   check our records field by field against the format
#   eventlog.py variants LOG DIR             one edited copy of LOG per record and kind of edit
import fcntl
import hashlib
import json
import os
import subprocess
import sys

RS = b"\x1e"
SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def records(data):
    assert data[:1] == RS, "the log does not start with RS"
    out = []
    for chunk in data[1:].split(RS):
        assert chunk.endswith(b"\n"), "a record does not end with LF"
        out.append(chunk)
    return out


def replay(path, pcr, bank):
    value = bytes(SIZES[bank])
    with open(path, "rb") as f:
        for chunk in records(f.read()):
            rec = json.loads(chunk)
            if rec.get("pcr") != pcr:
                continue
            digest = [d["digest"] for d in rec["digests"] if d["hashAlg"] == bank]
            assert len(digest) == 1, "record without a %s digest" % bank
            value = hashlib.new(bank, value + bytes.fromhex(digest[0])).digest()
    print(value.hex())


def systemd(path, pcr, string, banks):
    digests = [(b, hashlib.new(b, string.encode()).hexdigest()) for b in banks]
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    spec = "%d:%s" % (pcr, ",".join("%s=%s" % d for d in digests))
    subprocess.run(["tpm2_pcrextend", spec], check=True)
    rec = {
        "pcr": pcr,
        "digests": [{"hashAlg": b, "digest": h} for b, h in digests],
        "content_type": "systemd",
        "content": {"string": string, "bootId": "0" * 32, "timestamp": 1, "eventType": "phase"},
    }
    os.lseek(fd, 0, os.SEEK_END)
    os.write(fd, RS + json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    os.close(fd)


def pairs(items):
    keys = [k for k, _ in items]
    assert len(keys) == len(set(keys)), "duplicate key"
    return dict(items)


def check_format(path):
    st = os.stat(path)
    assert st.st_mode & 0o7777 == 0o600, "mode %o, not 0600" % (st.st_mode & 0o7777)
    with open(path, "rb") as f:
        data = f.read()
    ours = 0
    for i, chunk in enumerate(records(data)):
        text = chunk.decode("utf-8")
        rec = json.loads(text, object_pairs_hook=pairs)
        if rec.get("content_type") != "cvmcrypt":
            continue
        ours += 1
        assert list(rec) == ["recnum", "pcr", "digests", "content_type", "content"], list(rec)
        assert rec["recnum"] == i and isinstance(rec["pcr"], int) and 0 <= rec["pcr"] < 24
        assert text == json.dumps(rec, separators=(",", ":")) + "\n", "not compact JSON"
        for d in rec["digests"]:
            assert list(d) == ["hashAlg", "digest"], list(d)
            assert d["hashAlg"] in SIZES, d["hashAlg"]
            assert len(d["digest"]) == 2 * SIZES[d["hashAlg"]] and d["digest"] == d["digest"].lower()
            bytes.fromhex(d["digest"])
        c = rec["content"]
        assert c["string"].startswith("cvmcrypt:") and c["event"] and len(c["bootId"]) == 32
        assert isinstance(c["timestamp"], int) and c["timestamp"] > 0
        if c["event"] != "volume":
            for d in rec["digests"]:
                assert hashlib.new(d["hashAlg"], c["string"].encode()).hexdigest() == d["digest"], "digest != H(string)"
    print("ok %d" % ours)


def variants(path, outdir):
    with open(path, "rb") as f:
        recs = [json.loads(c) for c in records(f.read())]

    def write(name, edited):
        with open(os.path.join(outdir, name), "wb") as f:
            for r in edited:
                f.write(RS + json.dumps(r, separators=(",", ":")).encode() + b"\n")

    for i, rec in enumerate(recs):
        e = json.loads(json.dumps(recs))
        d = e[i]["digests"][1]
        d["digest"] = ("1" if d["digest"][0] != "1" else "2") + d["digest"][1:]
        write("%d-digest" % i, e)
        e = json.loads(json.dumps(recs))
        e[i]["pcr"] = e[i]["pcr"] - 1
        write("%d-pcr" % i, e)
        write("%d-delete" % i, recs[:i] + recs[i + 1:])
        if i + 1 < len(recs):
            write("%d-swap" % i, recs[:i] + [recs[i + 1], recs[i]] + recs[i + 2:])
        if rec.get("content_type") == "cvmcrypt":
            # Only our events carry what was hashed; systemd's content is a description.
            e = json.loads(json.dumps(recs))
            s = e[i]["content"]["string"]
            e[i]["content"]["string"] = s[:-1] + ("0" if s[-1] != "0" else "1")
            write("%d-string" % i, e)
            e = json.loads(json.dumps(recs))
            e[i]["recnum"] += 1
            write("%d-recnum" % i, e)


def main():
    cmd = sys.argv[1]
    if cmd == "replay":
        replay(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "systemd":
        systemd(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
    elif cmd == "format":
        check_format(sys.argv[2])
    elif cmd == "variants":
        variants(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
