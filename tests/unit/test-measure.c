/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* measure.c and measure-log.c without a TPM: event strings and digests (expected values computed
 * independently with Python's hashlib), the anchors digest, the log format, the strict parser and
 * the replay against given PCR values. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "attest.h"
#include "encoding.h"
#include "macro.h"
#include "measure.h"
#include "tap.h"

#define SHA1 0x0004
#define SHA256 0x000B
#define SHA384 0x000C
#define SHA512 0x000D

static char tmp[PATH_MAX];

#define CHECK_SAME(a, b, ...) CHECK(strcmp((a), (b)) == 0, __VA_ARGS__)

static void put(const char *name, const char *content) {
        char path[PATH_MAX + 64];
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/%s", tmp, name);
        f = fopen(path, "we");
        if (!f || fputs(content, f) < 0 || fclose(f) != 0)
                abort();
}

static const char *at(const char *name) {
        static char path[64][PATH_MAX + 64];
        static unsigned i;

        i = (i + 1) % 64;
        (void) snprintf(path[i], sizeof(path[i]), "%s/%s", tmp, name);
        return path[i];
}

static bool hex_is(const uint8_t *v, size_t n, const char *hex) {
        char buf[2 * TPM_DIGEST_MAX + 1];

        hex_encode(v, n, buf);
        return strcmp(buf, hex) == 0;
}

/* ---- events ---- */

static void test_plan_and_predict(void) {
        MeasureInputs in = { .binary = at("bin"), .config = at("conf"), .anchors = at("anchors"), .policy = NULL };
        char why[MEASURE_WHY_MAX] = "";
        uint8_t v[TPM_DIGEST_MAX];
        MeasurePlan p;

        CHECK(measure_plan(&in, &p, why, sizeof(why)) == 0, "plan from files (%s)", why);
        CHECK(p.n == 4 && !p.has_policy, "four start events, no policy");
        CHECK_SAME(p.items[0].string, "cvmcrypt:binary:sha256:961d44683bfd67ed9c5e44b94c1549bbfd5b5a385549c341fd88fa582d4fea35",
                    "binary event: SHA-256 of the file");
        CHECK_SAME(p.items[1].string, "cvmcrypt:config:sha256:59853e51941f3dfc4f749b00a5168d1396c774f67cd5d7f7e34874ea1f4d18c9",
                    "config event: SHA-256 of the file");
        CHECK_SAME(p.items[2].string, "cvmcrypt:anchors:sha256:5700757d740846b2e2436c51dee41725f873c204258bfadc1baf8157da745c8b",
                    "anchors event: sorted name + NUL + SHA-256 of each entry, dot files included");
        CHECK_SAME(p.items[3].string, "cvmcrypt:policy:none", "no policy: the none event");
        CHECK(measure_plan_add_attested(&p) == -ENOENT && p.n == 4, "no attested event without a policy");

        CHECK(measure_predict(&p, SHA1, v) == 0 && hex_is(v, 20, "4525e5266ca1ef3d8c5aea1efe06364e778a8dba"),
              "predicted sha1");
        CHECK(measure_predict(&p, SHA256, v) == 0 &&
                      hex_is(v, 32, "e79b5704455dc6ea0b862e7504ee9267c7ddf25ca3ce4d5aabe3980fc2bcbe29"),
              "predicted sha256");
        CHECK(measure_predict(&p, SHA384, v) == 0 &&
                      hex_is(v, 48, "2d83121316b33e541db2b7a7e323cf17267b4b575f97b6c39236e4cf6528800a1dcd3ae3022546f99589cc0e97d412f2"),
              "predicted sha384");
        CHECK(measure_predict(&p, SHA512, v) == 0 &&
                      hex_is(v, 64, "715412cebd17a96a44f60d7af2211a7ade846daffc44001161a9dc1e12a3e27c5a43d60442caf16afac3bb016f0986e775013cf55980ce294e2b58c223c007c6"),
              "predicted sha512");
        CHECK(measure_predict(&p, 0x0012, v) == -EOPNOTSUPP, "sm3_256 cannot be predicted");

        in.config = at("no-such.conf");
        in.anchors = at("no-such-dir");
        CHECK(measure_plan(&in, &p, why, sizeof(why)) == 0, "missing config and anchors are events (%s)", why);
        CHECK_SAME(p.items[1].string, "cvmcrypt:config:absent", "config absent");
        CHECK_SAME(p.items[2].string, "cvmcrypt:anchors:absent", "anchors absent");
        CHECK(measure_predict(&p, SHA256, v) == 0 &&
                      hex_is(v, 32, "6f6c8e1332a52c5aa4ba337b551ccdcbd5af80681cf11491095fcdb9ed9b61ae"),
              "predicted sha256 with absent config and anchors");

        in.config = tmp; /* a directory */
        CHECK(measure_plan(&in, &p, why, sizeof(why)) == -EINVAL && strstr(why, "is not a regular file"),
              "a config that is not a regular file stops the measurement (%s)", why);
        in.config = at("conf");
        in.binary = at("no-such-binary");
        CHECK(measure_plan(&in, &p, why, sizeof(why)) == -ENOENT && strstr(why, "cannot open the binary"),
              "a missing binary is an error, not an event (%s)", why);
}

static void test_policy_event(void) {
        MeasureInputs in = { .binary = at("bin"), .config = at("conf"), .anchors = at("anchors"), .policy = at("policy.json") };
        char why[MEASURE_WHY_MAX] = "", hex[65], want[128];
        uint8_t digest[32], v1[TPM_DIGEST_MAX], v2[TPM_DIGEST_MAX];
        AttestPolicy policy;
        MeasurePlan p, q;

        put("policy.json", "{\"debug\": true}\n");
        put("policy2.json", "{ \"debug\" : true }");
        CHECK(attest_policy_load(at("policy.json"), &policy, why, sizeof(why)) == 0 && attest_policy_digest(&policy, digest) == 0,
              "policy digest");
        hex_encode(digest, 32, hex);
        (void) snprintf(want, sizeof(want), "cvmcrypt:policy:sha256:%s", hex);
        CHECK(measure_plan(&in, &p, why, sizeof(why)) == 0 && p.has_policy, "plan with a policy (%s)", why);
        CHECK_SAME(p.items[3].string, want, "policy event: the canonical policy digest of attest-policy.c");
        CHECK(memcmp(p.policy_digest, digest, 32) == 0, "the plan keeps the digest for the attested event");
        CHECK(measure_plan_add_attested(&p) == 0 && p.n == 5 && p.items[4].event == MEASURE_ATTESTED, "attested appended");
        (void) snprintf(want, sizeof(want), "cvmcrypt:attested:sha256:%s", hex);
        CHECK_SAME(p.items[4].string, want, "attested event: the same digest");
        in.policy = at("policy2.json");
        CHECK(measure_plan(&in, &q, why, sizeof(why)) == 0 && measure_plan_add_attested(&q) == 0, "plan with a reformatted policy");
        CHECK(measure_predict(&p, SHA256, v1) == 0 && measure_predict(&q, SHA256, v2) == 0 && memcmp(v1, v2, 32) == 0,
              "the same policy written differently predicts the same value");
        put("bad.json", "{\"debug\": 1}");
        in.policy = at("bad.json");
        CHECK(measure_plan(&in, &p, why, sizeof(why)) < 0 && strstr(why, "attestation policy"),
              "a malformed policy stops the measurement (%s)", why);
}

static void test_anchors(void) {
        char why[MEASURE_WHY_MAX] = "", big[ATTEST_CERT_FILE_MAX + 2];
        uint8_t d[32];

        CHECK(mkdir(at("a2"), 0700) == 0 && symlink("../bin", at("a2/link.pem")) == 0, "anchors with a symlink");
        CHECK(measure_anchors_digest(at("a2"), d, why, sizeof(why)) == -ELOOP && strstr(why, "link.pem is a symlink"),
              "a symlink is refused, not followed (%s)", why);
        CHECK(unlink(at("a2/link.pem")) == 0 && mkdir(at("a2/sub"), 0700) == 0, "anchors with a subdirectory");
        CHECK(measure_anchors_digest(at("a2"), d, why, sizeof(why)) == -EINVAL && strstr(why, "sub is not a regular file"),
              "a subdirectory is refused (%s)", why);
        CHECK(rmdir(at("a2/sub")) == 0 && mkfifo(at("a2/fifo"), 0600) == 0, "anchors with a FIFO");
        CHECK(measure_anchors_digest(at("a2"), d, why, sizeof(why)) == -EINVAL && strstr(why, "fifo is not a regular file"),
              "a FIFO is refused without blocking (%s)", why);
        CHECK(unlink(at("a2/fifo")) == 0, "FIFO removed");
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        put("a2/big.pem", big);
        CHECK(measure_anchors_digest(at("a2"), d, why, sizeof(why)) == -EFBIG && strstr(why, "larger than"),
              "an anchor larger than the attestation code reads is refused (%s)", why);
        CHECK(unlink(at("a2/big.pem")) == 0, "big removed");
        for (unsigned i = 0; i <= ATTEST_ANCHOR_FILES_MAX; i++) {
                char name[32];

                (void) snprintf(name, sizeof(name), "a2/%03u.pem", i);
                put(name, "x");
        }
        CHECK(measure_anchors_digest(at("a2"), d, why, sizeof(why)) == -E2BIG && strstr(why, "more than 64 entries"),
              "too many entries (%s)", why);
        CHECK(measure_anchors_digest(at("no-such-dir"), d, why, sizeof(why)) == -ENOENT, "missing directory: -ENOENT");
}

/* ---- log format ---- */

static MeasureRecord sample(size_t index, MeasureEvent e, const char *string) {
        MeasureRecord r = { .index = index, .pcr = 15, .event = e, .n_digests = 2, .has_timestamp = true, .timestamp = 1234567 };

        (void) snprintf(r.string, sizeof(r.string), "%s", string);
        (void) snprintf(r.boot_id, sizeof(r.boot_id), "0123456789abcdef0123456789abcdef");
        r.digests[0].bank = SHA256;
        r.digests[1].bank = SHA384;
        EVP_Digest(string, strlen(string), r.digests[0].value, NULL, EVP_sha256(), NULL);
        EVP_Digest(string, strlen(string), r.digests[1].value, NULL, EVP_sha384(), NULL);
        return r;
}

static void test_format(void) {
        MeasureRecord r = sample(0, MEASURE_BOOT_DONE, "cvmcrypt:boot-done"), v = sample(1, MEASURE_VOLUME, "cvmcrypt:root:0f2a-3b");
        char *text = NULL, *t2 = NULL, *both = NULL, why[MEASURE_WHY_MAX] = "";
        MeasureLog log = {};

        CHECK(measure_record_format(&r, &text) == 0, "format a record");
        CHECK_SAME(text,
                    "\x1e{\"recnum\":0,\"pcr\":15,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":"
                    "\"33a1dcef71a5b54333cf83e68bc1bee79d13c61517dcfdc326f827c0195189d0\"},{\"hashAlg\":\"sha384\",\"digest\":"
                    "\"b140def9997284928fefef6bfc4c66e852e0adcce27d153fdeb3cf5d28e9b44c6062a5c379b7b1dbc29505f4f2a7574f\"}],"
                    "\"content_type\":\"cvmcrypt\",\"content\":{\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\","
                    "\"bootId\":\"0123456789abcdef0123456789abcdef\",\"timestamp\":1234567}}\n",
                    "record text: RS, CEL-JSON fields in order, LF");
        snprintf(v.name, sizeof(v.name), "root");
        snprintf(v.uuid, sizeof(v.uuid), "0f2a-3b");
        CHECK(measure_record_format(&v, &t2) == 0 && strstr(t2, "\"name\":\"root\",\"uuid\":\"0f2a-3b\""),
              "a volume record shows name and UUID");
        CHECK(asprintf(&both, "%s%s", text, t2) > 0, "two records");
        CHECK(measure_log_parse(both, strlen(both), &log, why, sizeof(why)) == 0 && log.n == 2, "parse them back (%s)", why);
        CHECK(log.n == 2 && log.records[0].event == MEASURE_BOOT_DONE && log.records[0].has_recnum &&
                      log.records[0].timestamp == 1234567 && strcmp(log.records[0].boot_id, r.boot_id) == 0 &&
                      memcmp(log.records[0].digests[1].value, r.digests[1].value, 48) == 0,
              "fields survive");
        CHECK(log.n == 2 && log.records[1].event == MEASURE_VOLUME && strcmp(log.records[1].name, "root") == 0 &&
                      strcmp(log.records[1].uuid, "0f2a-3b") == 0,
              "volume fields survive");
        measure_log_done(&log);
        CHECK(measure_log_parse("", 0, &log, why, sizeof(why)) == 0 && log.n == 0, "an empty log has no records");
        r.event = MEASURE_FOREIGN;
        CHECK(measure_record_format(&r, &text) == -EINVAL, "only our records are written");
        free(text);
        free(t2);
        free(both);
}

static void test_foreign(void) {
        /* As systemd 253+ writes them (no recnum), and an NvPCR record of newer systemd. */
        static const char systemd[] =
                "\x1e{\"pcr\":11,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}],"
                "\"content_type\":\"systemd\",\"content\":{\"string\":\"enter-initrd\",\"bootId\":\"c0ffee\",\"timestamp\":5,\"eventType\":\"phase\"}}\n"
                "\x1e{\"nv_index\":29360128,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"}],"
                "\"content_type\":\"systemd\",\"content\":{\"nvIndexName\":\"x\"}}\n";
        char why[MEASURE_WHY_MAX] = "";
        MeasureLog log = {};

        CHECK(measure_log_parse(systemd, strlen(systemd), &log, why, sizeof(why)) == 0 && log.n == 2,
              "systemd's records parse (%s)", why);
        CHECK(log.n == 2 && log.records[0].event == MEASURE_FOREIGN && !log.records[0].has_recnum && log.records[0].pcr == 11,
              "a systemd record is foreign, without recnum");
        CHECK(log.n == 2 && log.records[1].nv && log.records[1].digests[0].value[10] == 0xaa, "an NvPCR record, hex in either case");
        measure_log_done(&log);
}

static void test_malformed(void) {
#define OK_REC "\x1e{\"recnum\":0,\"pcr\":15,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"0000000000000000000000000000000000000000\"}]}\n"
#define D1 "[{\"hashAlg\":\"sha1\",\"digest\":\"0000000000000000000000000000000000000000\"}]"
        static const struct {
                const char *text, *expect;
        } cases[] = {
                { "{\"pcr\":1}\n", "does not start with a record separator" },
                { OK_REC "\x1e{\"pcr\":15,\"digests\":" D1 "}", "record 1 (byte 107): truncated" },
                { OK_REC "\x1e\x1e", "record 1 (byte 107): empty" },
                { OK_REC "\x1e{\"pcr\":15,\"digests\":" D1 ",}\n", "record 1 (byte 107): not valid JSON" },
                { OK_REC "\x1e[]\n", "record 1 (byte 107): not a JSON object" },
                { OK_REC "\x1e{\"pcr\":15,\"digests\":" D1 ",\"extra\":1}\n", "record 1 (byte 107): record field 'extra' is not known" },
                { OK_REC "\x1e{\"recnum\":7,\"pcr\":15,\"digests\":" D1 "}\n", "record 1 (byte 107): recnum 7 is not the record's position 1" },
                { OK_REC "\x1e{\"pcr\":24,\"digests\":" D1 "}\n", "field 'pcr' is out of range" },
                { OK_REC "\x1e{\"pcr\":-1,\"digests\":" D1 "}\n", "field 'pcr' is out of range" },
                { OK_REC "\x1e{\"pcr\":1.0,\"digests\":" D1 "}\n", "field 'pcr' is not an integer" },
                { OK_REC "\x1e{\"pcr\":99999999999999999999,\"digests\":" D1 "}\n", "field 'pcr' is out of range" },
                { OK_REC "\x1e{\"digests\":" D1 "}\n", "needs exactly one of 'pcr' and 'nv_index'" },
                { OK_REC "\x1e{\"pcr\":1,\"nv_index\":2,\"digests\":" D1 "}\n", "needs exactly one of 'pcr' and 'nv_index'" },
                { OK_REC "\x1e{\"pcr\":1}\n", "field 'digests' is missing" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":[]}\n", "holds 0 digests" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":[{\"hashAlg\":\"md5\",\"digest\":\"00\"}]}\n", "hash algorithm 'md5' is not known" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"00\"}]}\n", "the sha1 digest is not 40 hex digits" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"0000000000000000000000000000000000000000\",\"x\":1}]}\n",
                  "digest field 'x' is not known" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":" "[{\"hashAlg\":\"sha1\",\"digest\":\"0000000000000000000000000000000000000000\"},"
                  "{\"hashAlg\":\"sha1\",\"digest\":\"0000000000000000000000000000000000000000\"}]}\n", "two sha1 digests" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":" D1 ",\"content_type\":7}\n", "field 'content_type' is not a string" },
                { OK_REC "\x1e{\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":{}}\n", "needs a 'recnum'" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\"}\n", "needs a 'content' object" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"reboot\",\"string\":\"x\"}}\n", "event 'reboot' is not known" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"binary\",\"string\":\"cvmcrypt:binary:absent\"}}\n", "is not a binary event" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"config\",\"string\":\"cvmcrypt:config:sha256:ABCDEF\"}}\n", "is not a config event" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\",\"path\":\"/x\"}}\n", "'path' does not belong" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"volume\",\"string\":\"cvmcrypt:root:01\",\"name\":\"root\",\"uuid\":\"02\"}}\n",
                  "string is not cvmcrypt:NAME:UUID" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\",\"secret\":\"x\"}}\n", "content field 'secret' is not known" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\",\"bootId\":\"XYZ\"}}\n", "'bootId' is not 32" },
                { OK_REC "\x1e{\"recnum\":1,\"pcr\":1,\"digests\":" D1 ",\"content_type\":\"cvmcrypt\",\"content\":"
                  "{\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\\u0000x\"}}\n", "contains a NUL character" },
        };
        char why[MEASURE_WHY_MAX];
        MeasureLog log;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int k;

                why[0] = '\0';
                k = measure_log_parse(cases[i].text, strlen(cases[i].text), &log, why, sizeof(why));
                CHECK(k == -EBADMSG && strstr(why, cases[i].expect), "malformed case %zu: '%s' (got %d '%s')", i, cases[i].expect, k, why);
                if (k == 0)
                        measure_log_done(&log);
        }
}

static void test_bounds(void) {
        size_t rec_len = strlen(OK_REC), n = MEASURE_RECORDS_MAX + 1;
        char *text = malloc(n * rec_len + MEASURE_RECORD_MAX + 64), why[MEASURE_WHY_MAX] = "";
        MeasureLog log;

        if (!text)
                abort();
        /* recnum 0 is only right for the first record: drop it from the others. */
        for (size_t i = 0; i < n; i++)
                memcpy(text + i * rec_len, i == 0 ? OK_REC : "\x1e{\"pcr\":15,\"digests\":" D1 "}           \n", rec_len);
        CHECK(measure_log_parse(text, n * rec_len, &log, why, sizeof(why)) == -EBADMSG && strstr(why, "more than 1024 records"),
              "record count is bounded (%s)", why);
        text[0] = '\x1e';
        memset(text + 1, ' ', MEASURE_RECORD_MAX + 1);
        text[MEASURE_RECORD_MAX + 1] = '\n';
        CHECK(measure_log_parse(text, MEASURE_RECORD_MAX + 2, &log, why, sizeof(why)) == -EBADMSG && strstr(why, "larger than 16384"),
              "record size is bounded (%s)", why);
        CHECK(measure_log_parse(text, MEASURE_LOG_MAX + 1, &log, why, sizeof(why)) == -EFBIG, "log size is bounded");
        free(text);
}

/* ---- replay ---- */

static void extend(uint16_t bank, uint8_t *pcr, const uint8_t *digest) {
        const EVP_MD *md = bank == SHA256 ? EVP_sha256() : EVP_sha384();
        size_t size = (size_t) EVP_MD_get_size(md);
        uint8_t buf[2 * TPM_DIGEST_MAX];

        memcpy(buf, pcr, size);
        memcpy(buf + size, digest, size);
        EVP_Digest(buf, 2 * size, pcr, NULL, md, NULL);
}

static void test_compare(void) {
        MeasureRecord recs[4] = {
                sample(0, MEASURE_FOREIGN, "enter-initrd"),
                sample(1, MEASURE_BINARY, "cvmcrypt:binary:sha256:961d44683bfd67ed9c5e44b94c1549bbfd5b5a385549c341fd88fa582d4fea35"),
                sample(2, MEASURE_VOLUME, "cvmcrypt:root:01"),
                sample(3, MEASURE_BOOT_DONE, "cvmcrypt:boot-done"),
        };
        MeasureLog log = { .records = recs, .n = 4 };
        TpmPcrValues actual[2] = { { .bank = SHA256, .mask = 1u << 15 | 1u << 11 }, { .bank = SHA384, .mask = 1u << 15 | 1u << 11 } };
        MeasureVerdict v;

        recs[0].pcr = 11;
        memset(recs[2].digests[0].value, 0x42, 32); /* an HMAC: not the hash of its string */
        memset(recs[2].digests[1].value, 0x42, 48);
        extend(SHA256, actual[0].value[11], recs[0].digests[0].value);
        extend(SHA384, actual[1].value[11], recs[0].digests[1].value);
        for (size_t i = 1; i < 4; i++) {
                extend(SHA256, actual[0].value[15], recs[i].digests[0].value);
                extend(SHA384, actual[1].value[15], recs[i].digests[1].value);
        }
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(v.ok && v.n_pcrs == 2 && v.pcrs[0].pcr == 11 && v.pcrs[1].pcr == 15 && v.pcrs[1].n_records == 3 &&
                      v.pcrs[1].n_banks == 2,
              "a log that replays: PCRs 11 and 15 match in both banks (volume HMAC not checked against its string)");

        measure_compare(&log, 8, actual, 2, &v);
        CHECK(!v.ok && v.n_pcrs == 3 && v.pcrs[0].pcr == 8 && v.pcrs[0].n_banks == 0, "the gate PCR is always listed");

        recs[1].digests[1].value[0] ^= 1;
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(!v.ok && v.pcrs[0].ok && !v.pcrs[1].ok && v.pcrs[1].bad_record == 1 && strstr(v.pcrs[1].reason, "sha384 digest is not the hash"),
              "an edited digest: record 1 named (%s)", v.pcrs[1].reason);
        CHECK(v.pcrs[1].banks[0].ok && !v.pcrs[1].banks[1].ok, "only the edited bank differs");
        recs[1].digests[1].value[0] ^= 1;

        (void) snprintf(recs[3].string, sizeof(recs[3].string), "cvmcrypt:boot-done ");
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(!v.ok && v.pcrs[1].bad_record == 3 && v.pcrs[1].banks[0].ok,
              "an edited string with intact digests: the replay matches, the record is still named");
        (void) snprintf(recs[3].string, sizeof(recs[3].string), "cvmcrypt:boot-done");

        recs[2].digests[0].value[0] ^= 1;
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(!v.ok && v.pcrs[1].bad_record == -1 && strstr(v.pcrs[1].reason, "does not replay"),
              "an edited HMAC digest: the replay differs (%s)", v.pcrs[1].reason);
        recs[2].digests[0].value[0] ^= 1;

        recs[3].n_digests = 1;
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(!v.ok && v.pcrs[1].bad_record == 3 && strstr(v.pcrs[1].reason, "record 3 has no sha384 digest"),
              "a missing bank is named (%s)", v.pcrs[1].reason);
        recs[3].n_digests = 2;

        log.incomplete = true;
        measure_compare(&log, 15, actual, 2, &v);
        CHECK(!v.ok && v.incomplete && v.pcrs[1].ok, "an incomplete log (sticky bit) never verifies");
}

static int remove_one(const char *path, const struct stat *st _unused_, int type _unused_, struct FTW *ftw _unused_) {
        return remove(path);
}

int main(void) {
        (void) snprintf(tmp, sizeof(tmp), "/tmp/cvmcrypt-test-measure.XXXXXX");
        if (!mkdtemp(tmp))
                return 99;
        put("bin", "cvmcrypt binary\n");
        put("conf", "gate-pcr = 15\n");
        if (mkdir(at("anchors"), 0700) < 0)
                return 99;
        put("anchors/b.der", "BB");
        put("anchors/a.pem", "A\n");
        put("anchors/.hidden", "");

        test_plan_and_predict();
        test_policy_event();
        test_anchors();
        test_format();
        test_foreign();
        test_malformed();
        test_bounds();
        test_compare();

        (void) nftw(tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        return tap_done();
}
