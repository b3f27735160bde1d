/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parsers of the live report sources on hand-made input: the extended report's certificate
 * table (every strictness rule), the SEV guest device's MSG_REPORT_RSP, the configfs-tsm generation
 * counter and --source specifications. The sources themselves run in tests/bats/attest-fetch.bats. */
#include <errno.h>
#include <string.h>

#include "attest-fetch.h"
#include "attest.h"
#include "tap.h"

static const uint8_t vcek_guid[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                       0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
static const uint8_t ark_guid[16] = { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
                                      0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae };

static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static void entry(uint8_t *t, size_t i, const uint8_t guid[16], uint32_t offset, uint32_t size) {
        memcpy(t + 24 * i, guid, 16);
        put32(t + 24 * i + 16, offset);
        put32(t + 24 * i + 20, size);
}

/* Two entries (VCEK at 72, 100 bytes; ARK at 172, 50 bytes), terminator, data: 4096 bytes. */
static void good_table(uint8_t t[4096]) {
        memset(t, 0, 4096);
        entry(t, 0, vcek_guid, 72, 100);
        entry(t, 1, ark_guid, 172, 50);
}

static void test_cert_table(void) {
        static uint8_t t[SNP_CERT_TABLE_MAX + 1];
        uint8_t other[16];
        SnpCertTable ct;

        good_table(t);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == 0 && ct.n == 2 && ct.entry[0].kind == SNP_CERT_VCEK &&
                      ct.entry[0].offset == 72 && ct.entry[0].size == 100 && ct.entry[1].kind == SNP_CERT_ARK &&
                      snp_cert_table_find(&ct, SNP_CERT_ARK) == &ct.entry[1] && !snp_cert_table_find(&ct, SNP_CERT_ASK),
              "VCEK + ARK table parses; GUIDs in text byte order map to their kinds");
        memset(t, 0, 24);
        CHECK(snp_cert_table_parse(t, 24, &ct) == 0 && ct.n == 0, "a lone terminator is an empty table");
        CHECK(snp_cert_table_parse(t, 23, &ct) == -EBADMSG, "shorter than one entry: no terminator");

        good_table(t);
        CHECK(snp_cert_table_parse(t, 71, &ct) == -EBADMSG, "table cut before its terminator");
        CHECK(snp_cert_table_parse(t, 221, &ct) == -EBADMSG, "the last certificate runs past the data");
        CHECK(snp_cert_table_parse(t, 222, &ct) == 0, "... and fits exactly");
        entry(t, 1, ark_guid, 160, 50);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "overlapping certificates");
        entry(t, 1, ark_guid, 48, 10);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "a certificate inside the table");
        entry(t, 1, ark_guid, 172, 0);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "an empty certificate");
        entry(t, 1, vcek_guid, 172, 50);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "the same GUID twice");
        entry(t, 1, ark_guid, 0xFFFFFFF0u, 0x20);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "offset + length overflowing 32 bits");

        good_table(t);
        memset(t + 24, 0, 16); /* zero GUID, offset and length still set */
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "an entry with a zero GUID that is not the terminator");

        /* An unknown GUID is kept as "other". */
        good_table(t);
        memset(other, 0x5A, sizeof(other));
        entry(t, 1, other, 172, 50);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == 0 && ct.entry[1].kind == SNP_CERT_OTHER,
              "an unknown GUID is kept as 'other'");

        /* SNP_CERT_ENTRIES_MAX entries fit, one more does not. */
        memset(t, 0, sizeof(t));
        for (size_t i = 0; i < SNP_CERT_ENTRIES_MAX + 1; i++) {
                other[0] = (uint8_t) i;
                entry(t, i, other, 1024 + 16 * (uint32_t) i, 16);
        }
        memset(t + 24 * SNP_CERT_ENTRIES_MAX, 0, 24);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == 0 && ct.n == SNP_CERT_ENTRIES_MAX, "%u entries", SNP_CERT_ENTRIES_MAX);
        other[0] = SNP_CERT_ENTRIES_MAX;
        entry(t, SNP_CERT_ENTRIES_MAX, other, 1024 + 16 * SNP_CERT_ENTRIES_MAX, 16);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == -EBADMSG, "%u entries are too many", SNP_CERT_ENTRIES_MAX + 1);

        memset(t, 0, sizeof(t));
        CHECK(snp_cert_table_parse(t, SNP_CERT_TABLE_MAX, &ct) == 0, "%u bytes", SNP_CERT_TABLE_MAX);
        CHECK(snp_cert_table_parse(t, SNP_CERT_TABLE_MAX + 1, &ct) == -EBADMSG, "more than %u bytes", SNP_CERT_TABLE_MAX);

        good_table(t);
        CHECK(snp_cert_table_parse(t, 4096, &ct) == 0, "table for the certificate check");
        {
                X509 *c = NULL;
                CHECK(snp_cert_table_x509(t, &ct.entry[0], &c) == -EBADMSG && !c, "zero bytes are not a DER certificate");
        }
}

static void test_response(void) {
        static uint8_t rsp[4000];
        const uint8_t *report = NULL;

        memset(rsp, 0, sizeof(rsp));
        put32(rsp + 4, SNP_REPORT_SIZE);
        CHECK(snp_report_response_parse(rsp, sizeof(rsp), &report) == 0 && report == rsp + 0x20,
              "MSG_REPORT_RSP: status 0, 1184 bytes, the report at 0x20");
        CHECK(snp_report_response_parse(rsp, 0x20 + SNP_REPORT_SIZE - 1, &report) == -EBADMSG, "response too short");
        put32(rsp, 0x16);
        CHECK(snp_report_response_parse(rsp, sizeof(rsp), &report) == -EIO, "firmware status 0x16 is -EIO");
        put32(rsp, 0);
        put32(rsp + 4, 1000);
        CHECK(snp_report_response_parse(rsp, sizeof(rsp), &report) == -EBADMSG, "another report size");
        put32(rsp + 4, SNP_REPORT_SIZE);
        rsp[0x1F] = 1;
        CHECK(snp_report_response_parse(rsp, sizeof(rsp), &report) == -EBADMSG, "non-zero reserved bytes");
}

static void test_generation(void) {
        static const struct {
                const char *text;
                int r;
                uint64_t v;
        } cases[] = {
                { "1\n", 0, 1 },   { "0", 0, 0 },       { "42", 0, 42 },   { "18446744073709551615\n", 0, UINT64_MAX },
                { "", -EBADMSG, 0 }, { "\n", -EBADMSG, 0 }, { "01", -EBADMSG, 0 }, { "1\n\n", -EBADMSG, 0 },
                { "-1", -EBADMSG, 0 }, { " 1", -EBADMSG, 0 }, { "1x", -EBADMSG, 0 }, { "18446744073709551616", -EBADMSG, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t v = 99;
                int r = attest_tsm_generation_parse(cases[i].text, strlen(cases[i].text), &v);
                CHECK(r == cases[i].r && (r < 0 || v == cases[i].v), "generation '%.*s'%s -> %d",
                      (int) strcspn(cases[i].text, "\n"), cases[i].text, strchr(cases[i].text, '\n') ? " + newline" : "",
                      cases[i].r);
        }
}

static void test_source(void) {
        const char *path;
        AttestSource s;

        CHECK(attest_source_parse("hcl-nv", &s, &path) == 0 && s == ATTEST_SOURCE_HCL_NV && !path, "hcl-nv");
        CHECK(attest_source_parse("tsm", &s, &path) == 0 && s == ATTEST_SOURCE_TSM && strcmp(path, ATTEST_TSM_DIR_DEFAULT) == 0,
              "tsm: the default directory");
        CHECK(attest_source_parse("tsm:/x/y", &s, &path) == 0 && strcmp(path, "/x/y") == 0, "tsm:/x/y");
        CHECK(attest_source_parse("sev-guest", &s, &path) == 0 && s == ATTEST_SOURCE_SEV_GUEST &&
                      strcmp(path, ATTEST_SEV_GUEST_DEFAULT) == 0,
              "sev-guest: the default device");
        CHECK(attest_source_parse("sev-guest:/dev/x", &s, &path) == 0 && strcmp(path, "/dev/x") == 0, "sev-guest:/dev/x");
        CHECK(attest_source_parse("tsm:relative", &s, &path) == -EINVAL, "a relative path is refused");
        CHECK(attest_source_parse("tsm:", &s, &path) == -EINVAL, "an empty path is refused");
        CHECK(attest_source_parse("hcl-nv:/x", &s, &path) == -EINVAL, "hcl-nv takes no path");
        CHECK(attest_source_parse("tsmx", &s, &path) == -EINVAL && attest_source_parse("", &s, &path) == -EINVAL &&
                      attest_source_parse("nv", &s, &path) == -EINVAL,
              "unknown names are refused");
}

int main(void) {
        test_cert_table();
        test_response();
        test_generation();
        test_source();
        return tap_done();
}
