#!/usr/bin/env python3
"""Counts the TPM commands in a pcapng file written by the tss2 pcap TCTI (TCTI_PCAP_FILE).

Prints the number of commands, then their names in order. Commands are the TCP segments sent to
port 2321 whose payload starts with a TPM command header (tag 0x8001 or 0x8002)."""
import struct
import sys

NAMES = {
    0x17A: "GetCapability", 0x17E: "PCR_Read", 0x182: "PCR_Extend", 0x176: "StartAuthSession",
    0x157: "Load", 0x17F: "PolicyPCR", 0x16B: "PolicyAuthValue", 0x15E: "Unseal", 0x165: "FlushContext",
    0x173: "ReadPublic", 0x131: "CreatePrimary", 0x153: "Create", 0x189: "PolicyGetDigest",
    0x17B: "GetRandom", 0x144: "Startup", 0x16C: "PolicyCommandCode", 0x16D: "ContextSave",
    0x161: "ContextLoad", 0x174: "RSA_Decrypt", 0x120: "EvictControl", 0x14E: "NV_Read",
    0x169: "NV_ReadPublic", 0x16F: "PolicyNV", 0x172: "PolicyOR", 0x15B: "HMAC",
    0x17D: "Hash", 0x160: "ECDH_ZGen", 0x163: "ECDH_KeyGen", 0x178: "TestParms",
}


def commands(path):
    data = open(path, "rb").read()
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12 or off + blen > len(data):
            break
        if btype == 6:  # Enhanced Packet Block
            caplen = struct.unpack_from("<I", data, off + 20)[0]
            pkt = data[off + 28: off + 28 + caplen]
            ihl = (pkt[0] & 0x0F) * 4
            tcp = pkt[ihl:]
            dport = struct.unpack_from(">H", tcp, 2)[0]
            thl = (tcp[12] >> 4) * 4
            payload = tcp[thl:]
            if dport == 2321 and len(payload) >= 10:
                tag, _, cc = struct.unpack_from(">HII", payload, 0)
                if tag in (0x8001, 0x8002):
                    yield NAMES.get(cc, hex(cc))
        off += blen


def main():
    cmds = list(commands(sys.argv[1]))
    print(len(cmds))
    print(" ".join(cmds))


if __name__ == "__main__":
    main()
