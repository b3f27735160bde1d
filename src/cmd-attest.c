/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvmcrypt attest show|verify|fetch: the command-line face of attest.h, hcl.h and attest-fetch.h. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attest-fetch.h"
#include "attest.h"
#include "json-strict.h"
#include "cli.h"
#include "encoding.h"
#include "hcl.h"
#include "log.h"

#ifndef CVM_ANCHORS_DIR
#define CVM_ANCHORS_DIR "/usr/share/cvmcrypt/anchors"
#endif

#define NONCE_MAX 64
#define QUOTE_NONCE_SIZE 32
#define TIMEOUT_DEFAULT 10u
#define TIMEOUT_MAX 600u
#define TPM_ALG_SHA256 0x000Bu

static int parse_timeout(const char *s, unsigned *ret) {
        unsigned v = 0;

        if (!s || !*s || strlen(s) > 3 || s[0] == '0')
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*s - '0');
        }
        if (v > TIMEOUT_MAX)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int hex_decode(const char *s, uint8_t *out, size_t max, size_t *ret_size) {
        size_t len = strlen(s);

        if (len == 0 || len % 2 || len / 2 > max || hex_decode_exact(s, len, out, len / 2) < 0)
                return -EINVAL;
        *ret_size = len / 2;
        return 0;
}

int verify_attest(const CliArgs *args, int argc, char **argv) {
        const char *sub = argv[0], *path;
        bool has_file = argc > 1;
        bool quote_any = args->quote || args->quote_sig || args->pcr_values || args->nonce;
        bool verify_any = args->vcek || args->chain || args->anchors || args->policy || args->crl;
        AttestSource source = ATTEST_SOURCE_HCL_NV;
        uint8_t nonce[NONCE_MAX];
        size_t nonce_size;
        unsigned timeout;

        if (strcmp(sub, "show") != 0 && strcmp(sub, "verify") != 0 && strcmp(sub, "fetch") != 0)
                return log_error_errno(-EINVAL, "attest: unknown subcommand '%.64s' (expected verify, show or fetch)", sub);
        if (args->source && attest_source_parse(args->source, &source, &path) < 0)
                return log_error_errno(-EINVAL, "attest %s: --source must be hcl-nv, tsm[:DIR] or sev-guest[:DEVICE] (absolute paths)",
                                       sub);
        if (args->timeout && (!args->source || parse_timeout(args->timeout, &timeout) < 0))
                return log_error_errno(-EINVAL, "attest %s: --timeout takes 1..%u seconds, with --source", sub, TIMEOUT_MAX);
        if (strcmp(sub, "fetch") == 0) {
                if (!args->source || !has_file || args->hcl)
                        return log_error_errno(-EINVAL, "attest fetch: give --source SOURCE and the FILE to write the report to");
                if (verify_any || args->quote || args->quote_sig || args->pcr_values)
                        return log_error_errno(-EINVAL, "attest fetch: --vcek, --chain, --anchors, --policy, --crl and the quote options are for 'attest verify'");
                if (args->nonce && hex_decode(args->nonce, nonce, NONCE_MAX, &nonce_size) < 0)
                        return log_error_errno(-EINVAL, "attest fetch: --nonce must be 1..%d bytes as hex", NONCE_MAX);
                return 0;
        }
        if (has_file + !!args->hcl + !!args->source != 1)
                return log_error_errno(-EINVAL, "attest %s: give either a report FILE or --hcl FILE, or --source SOURCE", sub);
        if (strcmp(sub, "show") == 0) {
                if (verify_any || args->certs || quote_any)
                        return log_error_errno(-EINVAL, "attest show: --vcek, --chain, --anchors, --policy, --crl, --certs and the quote options are for 'attest verify'");
                return 0;
        }
        if (args->vcek && args->certs)
                return log_error_errno(-EINVAL, "attest verify: give --vcek FILE or --certs DIR, not both");
        /* Only an extended report brings its own certificates. */
        if (!args->vcek && !args->certs && (!args->source || source == ATTEST_SOURCE_HCL_NV))
                return log_error_errno(-EINVAL, "attest verify: --vcek FILE is required (the VCEK or VLEK that signed the report), or --certs DIR");
        if (args->source && quote_any)
                return log_error_errno(-EINVAL, "attest verify: --quote, --quote-sig, --pcr-values and --nonce are for --hcl FILE; with --source hcl-nv the vTPM is quoted live");
        if (quote_any && !(args->quote && args->quote_sig && args->pcr_values && args->nonce && args->hcl))
                return log_error_errno(-EINVAL, "attest verify: a quote needs --hcl, --quote, --quote-sig, --pcr-values and --nonce together");
        return 0;
}

/* ---- evidence: a report from a file or a live source ---- */

typedef struct Evidence {
        const char *name; /* the file, or what the source is called in messages */
        bool is_hcl;
        bool live; /* fetched just now, with our nonce */
        AttestSource source;
        unsigned timeout;
        SnpReport report;
        HclReport hcl;
        AttestEvidence raw;
        bool has_table;
        SnpCertTable table;
        TpmContext *tpm; /* hcl-nv: still open for the live AK checks */
} Evidence;

static void evidence_done(Evidence *e) {
        hcl_report_done(&e->hcl);
        attest_evidence_done(&e->raw);
        e->tpm = tpm_close(e->tpm);
}

static int evidence_parse(Evidence *e, const uint8_t *data, size_t size) {
        int k;

        if (e->is_hcl) {
                k = hcl_report_parse(data, size, &e->hcl);
                if (k == -EOPNOTSUPP)
                        return log_error_errno(k, "attest: %s: HCL report of a type we do not support (TDX?)", e->name);
                if (k < 0)
                        return log_error_errno(k, "attest: %s: not a valid Azure HCL report (run with -v for details)", e->name);
                e->report = e->hcl.snp;
                return 0;
        }
        k = snp_report_parse(data, size, &e->report);
        if (k < 0)
                return log_error_errno(k, "attest: %s: not a valid SEV-SNP report%s (run with -v for details)", e->name,
                                       size >= 4 && memcmp(data, "HCLA", 4) == 0 ? " (an Azure HCL blob? use --hcl)" : "");
        return 0;
}

static int evidence_load_file(const char *path, bool is_hcl, Evidence *e) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        e->name = path;
        e->is_hcl = is_hcl;
        k = attest_read_file(path, is_hcl ? HCL_BLOB_MAX : SNP_REPORT_SIZE * 4, &data, &size);
        if (k < 0)
                return log_error_errno(k, "attest: %s: cannot read: %m", path);
        return evidence_parse(e, data, size);
}

static int fetch_error(const Evidence *e, int r) {
        bool hcl = e->source == ATTEST_SOURCE_HCL_NV;

        switch (r) {
        case -ENODEV:
                if (hcl)
                        return log_error_errno(r, "attest: not an Azure CVM vTPM: NV index 0x%08x (HCL report) is not defined", HCL_NV_INDEX);
                if (e->source == ATTEST_SOURCE_TSM)
                        return log_error_errno(r, "attest: %s: no configfs-tsm report provider here", e->name);
                return log_error_errno(r, "attest: %s: no SEV-SNP guest device here", e->name);
        case -EBADE:
                if (hcl)
                        return log_error_errno(r, "attest: the HCL report's user-data is not the nonce written to NV index 0x%08x: the paravisor did not refresh it within %u s (stale report)",
                                               HCL_USER_DATA_NV_INDEX, e->timeout);
                return log_error_errno(r, "attest: %s: the report's REPORT_DATA is not the nonce we sent (stale or replayed report)", e->name);
        case -EBUSY:
                return log_error_errno(r, "attest: %s: another writer kept changing our report entry (generation); giving up", e->name);
        case -ETIME:
                return log_error_errno(r, "attest: %s: no report within %u s", e->name, e->timeout);
        case -EOPNOTSUPP:
                if (hcl)
                        return log_error_errno(r, "attest: %s: HCL report of a type we do not support (TDX?)", e->name);
                return log_error_errno(r, "attest: %s: the configfs-tsm provider is not sev_guest (run with -v)", e->name);
        case -EIO:
                if (e->source == ATTEST_SOURCE_SEV_GUEST)
                        return log_error_errno(r, "attest: %s: the SEV firmware refused the report request (run with -v)", e->name);
                break;
        case -EMSGSIZE:
                if (hcl)
                        return log_error_errno(r, "attest: NV index 0x%08x is smaller than the %d-byte nonce",
                                               HCL_USER_DATA_NV_INDEX, ATTEST_NONCE_SIZE);
                break;
        case -EACCES:
        case -ENOKEY:
                if (hcl)
                        return log_error_errno(r, "attest: the vTPM refused owner authorization for NV index 0x%08x or 0x%08x (run with -v)",
                                               HCL_USER_DATA_NV_INDEX, HCL_NV_INDEX);
                break;
        case -EBADMSG:
                if (hcl)
                        return log_error_errno(r, "attest: %s: not a valid Azure HCL report (run with -v for details)", e->name);
                return log_error_errno(r, "attest: %s: not a valid SEV-SNP report or response (run with -v for details)", e->name);
        }
        return log_error_errno(r, "attest: %s: %m", e->name);
}

/* Asks the source for a report with nonce as its report data / user-data. */
static int evidence_fetch(const Config *cfg, const CliArgs *args, const uint8_t nonce[ATTEST_NONCE_SIZE], Evidence *e) {
        const char *path;
        unsigned timeout = TIMEOUT_DEFAULT;
        int k;

        if (attest_source_parse(args->source, &e->source, &path) < 0 || (args->timeout && parse_timeout(args->timeout, &timeout) < 0))
                return -EINVAL; /* checked by verify_attest() */
        e->timeout = timeout;
        e->live = true;
        e->is_hcl = e->source == ATTEST_SOURCE_HCL_NV;
        switch (e->source) {
        case ATTEST_SOURCE_HCL_NV:
                e->name = "vTPM NV 0x01400001";
                k = tpm_open(cfg->tpm, &e->tpm);
                if (k < 0)
                        return log_error_errno(k, "attest: cannot open the TPM %s: %m", cfg->tpm);
                k = attest_fetch_hcl_nv(e->tpm, nonce, timeout * 1000u, &e->raw);
                break;
        case ATTEST_SOURCE_TSM:
                e->name = path;
                k = attest_fetch_tsm(path, nonce, timeout * 1000u, &e->raw);
                break;
        default:
                e->name = path;
                k = attest_fetch_sev_guest(path, nonce, &e->raw);
                break;
        }
        if (k < 0)
                return fetch_error(e, k);
        k = evidence_parse(e, e->raw.report, e->raw.report_size);
        if (k < 0)
                return k;
        if (e->raw.certs) {
                k = snp_cert_table_parse(e->raw.certs, e->raw.certs_size, &e->table);
                if (k < 0)
                        return log_error_errno(k, "attest: %s: malformed certificate table (run with -v for details)", e->name);
                e->has_table = true;
        }
        return 0;
}

static int evidence_load(const Config *cfg, const CliArgs *args, const char *path, Evidence *e) {
        uint8_t nonce[ATTEST_NONCE_SIZE];
        int k;

        if (!args->source)
                return evidence_load_file(args->hcl ? args->hcl : path, args->hcl != NULL, e);
        k = attest_random(nonce, sizeof(nonce));
        if (k < 0)
                return log_error_errno(k, "attest: cannot get random bytes: %m");
        return evidence_fetch(cfg, args, nonce, e);
}

static int table_kinds_json(const Evidence *e, json_object *o) {
        json_object *list = json_object_new_array();

        if (json_add(o, "certificates", list) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < e->table.n; i++)
                if (json_object_array_add(list, json_object_new_string(snp_cert_kind_to_string(e->table.entry[i].kind))) < 0)
                        return -ENOMEM;
        return 0;
}

/* ---- show ---- */

/* Text form of the JSON: "name: value", nested objects indented, lists space-separated. */
static void print_text(json_object *o, int indent) {
        json_object_object_foreach(o, key, val) {
                if (json_object_is_type(val, json_type_object)) {
                        printf("%*s%s:\n", indent, "", key);
                        print_text(val, indent + 2);
                } else if (json_object_is_type(val, json_type_array)) {
                        printf("%*s%s:", indent, "", key);
                        for (size_t i = 0; i < json_object_array_length(val); i++)
                                printf(" %s", json_object_get_string(json_object_array_get_idx(val, i)));
                        printf("\n");
                } else
                        printf("%*s%s: %s\n", indent, "", key, json_object_get_string(val));
        }
}

static int print_json(json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!s)
                return -ENOMEM;
        puts(s);
        return 0;
}

static int ak_fingerprint(EVP_PKEY *key, char out[65]) {
        uint8_t *der = NULL, md[32];
        unsigned len = 0;
        int n = i2d_PUBKEY(key, &der);

        if (n <= 0)
                return -ENOMEM;
        if (EVP_Digest(der, (size_t) n, md, &len, EVP_sha256(), NULL) != 1) {
                OPENSSL_free(der);
                return -EIO;
        }
        OPENSSL_free(der);
        hex_encode(md, 32, out);
        return 0;
}

static int hcl_to_json(const HclReport *h, json_object *o) {
        AttestProblems problems;
        char fp[65];
        int k;

        attest_problems_init(&problems);
        k = json_add(o, "header_version", json_object_new_int64(h->header_version));
        if (k >= 0)
                k = json_add(o, "report_size", json_object_new_int64(h->report_size));
        if (k >= 0)
                k = json_add(o, "request_type", json_object_new_int64(h->request_type));
        if (k >= 0)
                k = json_add(o, "status", json_object_new_int64(h->status));
        if (k >= 0)
                k = json_add(o, "report_type", json_object_new_int64(h->report_type));
        if (k >= 0)
                k = json_add(o, "hash_type", json_object_new_int64(h->hash_type));
        if (k >= 0)
                k = json_add(o, "runtime_data_size", json_object_new_int64((int64_t) h->runtime_size));
        if (k >= 0)
                k = json_add(o, "runtime_data_bound",
                        json_object_new_boolean(hcl_check_binding(h, &problems) == 0));
        if (k >= 0)
                k = ak_fingerprint(h->ak_pub, fp);
        if (k >= 0)
                k = json_add(o, "ak_pub_sha256", json_object_new_string(fp));
        if (k >= 0)
                k = json_add(o, "ak_pub_bits", json_object_new_int(EVP_PKEY_get_bits(h->ak_pub)));
        if (k >= 0)
                k = json_add(o, "ek_pub_present", json_object_new_boolean(h->has_ek_pub));
        if (k >= 0 && h->vm_config.has_secure_boot)
                k = json_add(o, "secure-boot", json_object_new_boolean(h->vm_config.secure_boot));
        if (k >= 0 && h->vm_config.has_tpm_enabled)
                k = json_add(o, "tpm-enabled", json_object_new_boolean(h->vm_config.tpm_enabled));
        if (k >= 0 && h->vm_config.has_console_enabled)
                k = json_add(o, "console-enabled", json_object_new_boolean(h->vm_config.console_enabled));
        if (k >= 0 && h->vm_unique_id[0])
                k = json_add(o, "vmUniqueId", json_object_new_string(h->vm_unique_id));
        if (k >= 0 && h->has_user_data)
                k = json_add_hex(o, "user_data", h->user_data, sizeof(h->user_data));
        return k;
}

static int attest_show(const Config *cfg, const CliArgs *args, const char *path) {
        _cleanup_(evidence_done) Evidence e = {};
        _cleanup_(json_object_putp) json_object *root = NULL, *rep = NULL;
        int k;

        k = evidence_load(cfg, args, path, &e);
        if (k < 0)
                return k;
        k = snp_report_to_json(&e.report, &rep);
        if (k < 0)
                return log_error_errno(k, "attest: out of memory");
        if (e.is_hcl) {
                json_object *ho = json_object_new_object();

                root = json_object_new_object();
                if (!root || json_add(root, "hcl", ho) < 0 || hcl_to_json(&e.hcl, ho) < 0 || json_add(root, "report", TAKE_PTR(rep)) < 0)
                        return log_error_errno(-ENOMEM, "attest: out of memory");
        } else
                root = TAKE_PTR(rep);
        if ((e.live && json_add(root, "source", json_object_new_string(attest_source_to_string(e.source))) < 0) ||
            (e.has_table && table_kinds_json(&e, root) < 0))
                return log_error_errno(-ENOMEM, "attest: out of memory");
        if (args->json)
                return print_json(root);
        print_text(root, 0);
        return 0;
}

/* ---- fetch ---- */

static int write_file_at(int dirfd, const char *path, const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t done = 0;

        fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0)
                return negative_errno();
        while (done < size) {
                ssize_t k = write(fd, data + done, size - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        return close(TAKE_FD(fd)) < 0 ? negative_errno() : 0;
}

/* Each known certificate of the table as DIR/NAME.der, exactly as the source gave it. */
static int write_table_certs(const Evidence *e, const char *dir) {
        _cleanup_close_ int dfd = -EBADF;
        char name[16];
        int k;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return log_error_errno(negative_errno(), "attest fetch: %s: %m", dir);
        for (size_t i = 0; i < e->table.n; i++) {
                const SnpCertEntry *c = &e->table.entry[i];

                if (c->kind == SNP_CERT_OTHER)
                        continue;
                (void) snprintf(name, sizeof(name), "%s.der", snp_cert_kind_to_string(c->kind));
                k = write_file_at(dfd, name, e->raw.certs + c->offset, c->size);
                if (k < 0)
                        return log_error_errno(k, "attest fetch: %s/%s: cannot write: %m", dir, name);
        }
        return 0;
}

static int attest_fetch(const Config *cfg, const CliArgs *args, const char *out) {
        _cleanup_(evidence_done) Evidence e = {};
        uint8_t nonce[ATTEST_NONCE_SIZE] = {};
        char hex[2 * ATTEST_NONCE_SIZE + 1];
        size_t n;
        int k;

        if (args->nonce) {
                if (hex_decode(args->nonce, nonce, sizeof(nonce), &n) < 0)
                        return -EINVAL; /* checked by verify_attest() */
        } else {
                k = attest_random(nonce, sizeof(nonce));
                if (k < 0)
                        return log_error_errno(k, "attest fetch: cannot get random bytes: %m");
        }
        k = evidence_fetch(cfg, args, nonce, &e);
        if (k < 0)
                return k;
        if (args->certs && !e.has_table)
                return log_error_errno(-ENOENT, "attest fetch: %s gave no certificate table for --certs", e.name);
        k = write_file_at(AT_FDCWD, out, e.raw.report, e.raw.report_size);
        if (k < 0)
                return log_error_errno(k, "attest fetch: %s: cannot write: %m", out);
        if (args->certs) {
                k = write_table_certs(&e, args->certs);
                if (k < 0)
                        return k;
        }
        hex_encode(nonce, sizeof(nonce), hex);
        if (args->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o || json_add(o, "source", json_object_new_string(attest_source_to_string(e.source))) < 0 ||
                    json_add(o, "file", json_object_new_string(out)) < 0 ||
                    json_add(o, "size", json_object_new_int64((int64_t) e.raw.report_size)) < 0 ||
                    json_add(o, "hcl", json_object_new_boolean(e.is_hcl)) < 0 ||
                    json_add(o, "nonce", json_object_new_string(hex)) < 0 || (e.has_table && table_kinds_json(&e, o) < 0))
                        return log_error_errno(-ENOMEM, "attest fetch: out of memory");
                return print_json(o);
        }
        printf("fetched: %s %s, %zu bytes to %s\nnonce: %s\n", attest_source_to_string(e.source),
               e.is_hcl ? "HCL report" : "SEV-SNP report", e.raw.report_size, out, hex);
        if (e.has_table) {
                printf("certificates:");
                for (size_t i = 0; i < e.table.n; i++)
                        printf(" %s", snp_cert_kind_to_string(e.table.entry[i].kind));
                printf("%s%s\n", args->certs ? " in " : "", args->certs ? args->certs : "");
        }
        return 0;
}

/* ---- verify ---- */

static int load_quote_inputs(const CliArgs *args, uint8_t **attest, size_t *attest_size, uint8_t **sig, size_t *sig_size,
                             TpmPcrValues *pcrs, uint8_t *nonce, size_t *nonce_size) {
        _cleanup_free_ uint8_t *text = NULL;
        size_t text_size;
        int k;

        if (hex_decode(args->nonce, nonce, NONCE_MAX, nonce_size) < 0)
                return log_error_errno(-EINVAL, "attest verify: --nonce must be 1..%d bytes as hex", NONCE_MAX);
        k = attest_read_file(args->quote, HCL_QUOTE_MAX, attest, attest_size);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: cannot read: %m", args->quote);
        k = attest_read_file(args->quote_sig, 4096, sig, sig_size);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: cannot read: %m", args->quote_sig);
        k = attest_read_file(args->pcr_values, 64 * 1024, &text, &text_size);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: cannot read: %m", args->pcr_values);
        k = hcl_parse_pcr_values((const char *) text, text_size, pcrs);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: not 'INDEX HEX' lines of SHA-256 PCR values", args->pcr_values);
        return 0;
}

static int push_cert(STACK_OF(X509) *s, X509 *c) {
        if (!sk_X509_push(s, c)) {
                X509_free(c);
                return -ENOMEM;
        }
        return 0;
}

/* DIR/NAME.pem or DIR/NAME.der, one certificate. 0 and NULL if neither exists. */
static int load_dir_cert(const char *dir, const char *name, X509 **ret) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_free_ char *pem = NULL, *der = NULL;
        bool has_pem, has_der;
        int k;

        *ret = NULL;
        if (asprintf(&pem, "%s/%s.pem", dir, name) < 0 || asprintf(&der, "%s/%s.der", dir, name) < 0)
                return log_error_errno(-ENOMEM, "attest verify: out of memory");
        has_pem = access(pem, F_OK) == 0;
        has_der = access(der, F_OK) == 0;
        if (has_pem && has_der)
                return log_error_errno(-EINVAL, "attest verify: %s: both %s.pem and %s.der; which one?", dir, name, name);
        if (!has_pem && !has_der)
                return 0;
        k = attest_load_certs(has_pem ? pem : der, &certs);
        if (k < 0 || sk_X509_num(certs) != 1)
                return log_error_errno(k < 0 ? k : -EBADMSG, "attest verify: %s: not exactly one certificate (PEM or DER)",
                                       has_pem ? pem : der);
        *ret = sk_X509_shift(certs);
        return 1;
}

/* The leaf (by the report's signing key) and, when chain_too, the chain from --certs DIR. */
static int certs_from_dir(const char *dir, bool vlek, bool chain_too, X509 **ret_leaf, STACK_OF(X509) *chain) {
        static const char *const chain_names[] = { "ask", "asvk", "ark" };
        const char *leaf_name = vlek ? "vlek" : "vcek";
        int k;

        k = load_dir_cert(dir, leaf_name, ret_leaf);
        if (k < 0)
                return k;
        if (k == 0)
                return log_error_errno(-ENOENT, "attest verify: %s: no %s.pem or %s.der (the report is signed by a %s)", dir,
                                       leaf_name, leaf_name, vlek ? "VLEK" : "VCEK");
        for (size_t i = 0; chain_too && i < ELEMENTSOF(chain_names); i++) {
                X509 *c;

                k = load_dir_cert(dir, chain_names[i], &c);
                if (k < 0)
                        return k;
                if (k > 0 && push_cert(chain, c) < 0)
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
        }
        return 0;
}

/* The leaf (by the report's signing key) and, when chain_too, ASK and ARK from the report's table. */
static int certs_from_table(const Evidence *e, bool vlek, bool chain_too, X509 **ret_leaf, STACK_OF(X509) *chain) {
        const SnpCertEntry *leaf = snp_cert_table_find(&e->table, vlek ? SNP_CERT_VLEK : SNP_CERT_VCEK);
        int k;

        if (!leaf)
                return log_error_errno(-ENOENT, "attest verify: %s: the report is signed by a %s but its certificate table has none; give --vcek or --certs",
                                       e->name, vlek ? "VLEK" : "VCEK");
        k = snp_cert_table_x509(e->raw.certs, leaf, ret_leaf);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: the %s in the certificate table is not a DER certificate", e->name,
                                       vlek ? "VLEK" : "VCEK");
        for (SnpCertKind kind = SNP_CERT_ASK; chain_too && kind <= SNP_CERT_ARK; kind++) {
                const SnpCertEntry *c = snp_cert_table_find(&e->table, kind);
                X509 *x;

                if (!c)
                        continue;
                k = snp_cert_table_x509(e->raw.certs, c, &x);
                if (k < 0)
                        return log_error_errno(k, "attest verify: %s: the %s in the certificate table is not a DER certificate",
                                               e->name, snp_cert_kind_to_string(kind));
                if (push_cert(chain, x) < 0)
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
        }
        return 0;
}

/* Leaf and chain, most explicit source first: --vcek (+ --chain), --certs DIR, the report's own
 * certificate table. A --chain file replaces the chain of the other two. */
static int load_certs(const CliArgs *args, const Evidence *e, X509 **ret_leaf, STACK_OF(X509) **ret_chain) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *leaf_file = NULL, *chain = NULL;
        bool vlek = snp_report_signing_key(&e->report) == SNP_SIGNING_KEY_VLEK;
        int k;

        if (args->chain) {
                k = attest_load_certs(args->chain, &chain);
                if (k < 0)
                        return log_error_errno(k, "attest verify: %s: no certificates (PEM or DER)", args->chain);
        } else {
                chain = sk_X509_new_null();
                if (!chain)
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
        }
        if (args->vcek) {
                k = attest_load_certs(args->vcek, &leaf_file);
                if (k < 0)
                        return log_error_errno(k, "attest verify: %s: no certificate (PEM or DER)", args->vcek);
                /* The first certificate is the VCEK/VLEK; any that follow (a KDS "VCEK + chain" file) are
                 * treated as part of the chain. */
                *ret_leaf = sk_X509_shift(leaf_file);
                while (sk_X509_num(leaf_file) > 0)
                        if (push_cert(chain, sk_X509_shift(leaf_file)) < 0)
                                return log_error_errno(-ENOMEM, "attest verify: out of memory");
        } else if (args->certs)
                k = certs_from_dir(args->certs, vlek, !args->chain, ret_leaf, chain);
        else if (e->has_table)
                k = certs_from_table(e, vlek, !args->chain, ret_leaf, chain);
        else
                k = log_error_errno(-ENOENT, "attest verify: %s came without certificates; give --vcek or --certs", e->name);
        if (k < 0)
                return k;
        *ret_chain = TAKE_PTR(chain);
        return 0;
}

/* Azure, on the VM itself: the vTPM's key at 0x81000003 is HCLAkPub, and it quotes the boot PCRs
 * with a fresh nonce. The quote is checked with HCLAkPub from the (verified) report, never with
 * the key the TPM reported. */
static int hcl_check_live(const Evidence *e, AttestProblems *problems) {
        _cleanup_(tpm_quote_done) TpmQuote q = {};
        uint8_t nonce[QUOTE_NONCE_SIZE];
        TpmRsaPublic key;
        TpmPcrValues pcrs;
        int k;

        k = attest_random(nonce, sizeof(nonce));
        if (k < 0)
                return log_error_errno(k, "attest verify: cannot get random bytes: %m");
        k = tpm_quote(e->tpm, HCL_AK_HANDLE, TPM_ALG_SHA256, HCL_QUOTE_PCR_MASK, nonce, sizeof(nonce), &key, &q);
        if (k == -ENOENT || k == -EMEDIUMTYPE) {
                attest_problem_add(problems, "hcl-ak", k == -ENOENT ? "no key at persistent handle 0x%08x in the vTPM" :
                                   "the vTPM key at 0x%08x is not an RSA key", HCL_AK_HANDLE);
                return -EBADE;
        }
        if (k < 0)
                return log_error_errno(k, "attest verify: the vTPM cannot quote with the key at 0x%08x: %m", HCL_AK_HANDLE);
        k = hcl_check_ak(&e->hcl, &key, problems);
        if (k < 0)
                return k == -EBADE ? k : log_error_errno(k, "attest verify: %m");
        k = tpm_pcr_read(e->tpm, TPM_ALG_SHA256, HCL_QUOTE_PCR_MASK, &pcrs);
        if (k < 0)
                return log_error_errno(k, "attest verify: cannot read the PCRs: %m");
        k = hcl_quote_verify(q.attest, q.attest_size, q.signature, q.signature_size, e->hcl.ak_pub, nonce, sizeof(nonce),
                             &pcrs, problems);
        if (k == -EBADMSG || k == -EOPNOTSUPP)
                return log_error_errno(k, "attest verify: the vTPM's quote is not one we can check");
        if (k < 0 && k != -EBADE)
                return log_error_errno(k, "attest verify: %m");
        return k;
}

static int verdict_json(const CliArgs *args, const Evidence *e, bool ok, const AttestChainInfo *info,
                        const uint8_t policy_digest[32], const AttestProblems *problems) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *list = json_object_new_array();
        bool live_hcl = e->live && e->is_hcl;
        char fp[65];

        if (!o || json_add(o, "verified", json_object_new_boolean(ok)) < 0 || json_add(o, "report", json_object_new_string(e->name)) < 0 ||
            (e->live && json_add(o, "source", json_object_new_string(attest_source_to_string(e->source))) < 0) ||
            json_add(o, "product", json_object_new_string(snp_product_to_string(info->product))) < 0 ||
            json_add(o, "signing_key", json_object_new_string(snp_signing_key_to_string(info->key))) < 0 ||
            json_add(o, "ark", json_object_new_string(info->ark_name)) < 0 ||
            json_add(o, "intermediate", json_object_new_string(info->intermediate_name)) < 0 ||
            json_add_hex(o, "measurement", e->report.measurement, sizeof(e->report.measurement)) < 0 ||
            json_add_hex(o, "policy_sha256", policy_digest, 32) < 0)
                return -ENOMEM;
        hex_encode(info->ark_sha256, 32, fp);
        if (json_add(o, "ark_sha256", json_object_new_string(fp)) < 0 ||
            (e->is_hcl && json_add(o, "hcl_checked", json_object_new_boolean(true)) < 0) ||
            (live_hcl && json_add(o, "ak_checked", json_object_new_boolean(true)) < 0) ||
            ((args->quote || live_hcl) && json_add(o, "quote_checked", json_object_new_boolean(true)) < 0) ||
            json_add(o, "problems", list) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < problems->n; i++) {
                json_object *p = json_object_new_object();
                if (!p || json_object_array_add(list, p) < 0 ||
                    json_add(p, "check", json_object_new_string(problems->item[i].check)) < 0 ||
                    json_add(p, "reason", json_object_new_string(problems->item[i].reason)) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
        }
        if (problems->truncated && json_add(o, "problems_truncated", json_object_new_boolean(true)) < 0)
                return -ENOMEM;
        return print_json(o);
}

static void print_verdict(const CliArgs *args, const Evidence *e, const AttestChainInfo *info, const uint8_t digest[32]) {
        char fp[65], pd[65];

        hex_encode(info->ark_sha256, 32, fp);
        hex_encode(digest, 32, pd);
        printf("verified: %s %s, chain %s <- %s (sha256 %s)\n", snp_product_to_string(info->product),
               info->key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", info->intermediate_name, info->ark_name, fp);
        if (e->live && e->is_hcl)
                printf("hcl: runtime data bound to REPORT_DATA, user-data is our nonce; vTPM key 0x%08x is HCLAkPub and its "
                       "quote of PCRs 0-7 (sha256) with our nonce verifies\n", HCL_AK_HANDLE);
        else if (e->live)
                printf("report: fresh from %s, REPORT_DATA is our nonce\n", attest_source_to_string(e->source));
        else if (e->is_hcl)
                printf("hcl: runtime data bound to REPORT_DATA%s\n",
                       args->quote ? "; quote signed by HCLAkPub, nonce and PCR digest match" : "");
        printf("policy: sha256 %s\n", pd);
}

static int attest_verify(const Config *cfg, const CliArgs *args, const char *path) {
        _cleanup_(evidence_done) Evidence e = {};
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(sk_X509_CRL_pop_freep) STACK_OF(X509_CRL) *crls = NULL;
        _cleanup_(attest_anchors_freep) AttestAnchors *anchors = NULL;
        _cleanup_(X509_freep) X509 *leaf = NULL;
        _cleanup_free_ uint8_t *quote = NULL, *quote_sig = NULL;
        const char *anchors_dir = args->anchors ? args->anchors : cfg->anchors ? cfg->anchors : CVM_ANCHORS_DIR;
        const char *policy_path = args->policy ? args->policy : cfg->policy;
        AttestProblems problems;
        AttestChainInfo info = {};
        AttestPolicy policy;
        uint8_t digest[32];
        char why[256];
        int k;

        /* Everything from files first: a mistake there should not cost a fresh report. */
        attest_policy_init(&policy);
        if (policy_path) {
                k = attest_policy_load(policy_path, &policy, why, sizeof(why));
                if (k < 0)
                        return log_error_errno(k, "attest verify: policy %s: %s", policy_path, why);
        }
        k = attest_policy_digest(&policy, digest);
        if (k < 0)
                return log_error_errno(k, "attest verify: cannot digest the policy: %m");
        if (args->crl) {
                X509_CRL *crl = NULL;

                crls = sk_X509_CRL_new_null();
                if (!crls)
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
                k = attest_load_crl(args->crl, &crl);
                if (k < 0)
                        return log_error_errno(k, "attest verify: %s: not a CRL (PEM or DER)", args->crl);
                if (!sk_X509_CRL_push(crls, crl)) {
                        X509_CRL_free(crl);
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
                }
        }
        k = attest_anchors_load(anchors_dir, &anchors);
        if (k < 0)
                return log_error_errno(k, "attest verify: trust anchors %s: %m", anchors_dir);

        k = evidence_load(cfg, args, path, &e);
        if (k < 0)
                return k;
        k = load_certs(args, &e, &leaf, &chain);
        if (k < 0)
                return k;

        attest_problems_init(&problems);
        k = attest_verify_report(&e.report, leaf, chain, anchors, crls, &info, &problems);
        if (k < 0 && k != -EBADE && k != -EBADMSG)
                return log_error_errno(k, "attest verify: %m");
        if (e.is_hcl) {
                k = hcl_check_binding(&e.hcl, &problems);
                if (k < 0 && k != -EBADE)
                        return log_error_errno(k, "attest verify: %m");
        }
        if (e.live && e.is_hcl) {
                k = hcl_check_live(&e, &problems);
                if (k < 0 && k != -EBADE)
                        return k;
        } else if (args->quote) {
                uint8_t nonce[NONCE_MAX];
                size_t quote_size = 0, sig_size = 0, nonce_size = 0;
                TpmPcrValues pcrs;

                k = load_quote_inputs(args, &quote, &quote_size, &quote_sig, &sig_size, &pcrs, nonce, &nonce_size);
                if (k < 0)
                        return k;
                k = hcl_quote_verify(quote, quote_size, quote_sig, sig_size, e.hcl.ak_pub, nonce, nonce_size, &pcrs, &problems);
                if (k == -EBADMSG || k == -EOPNOTSUPP)
                        return log_error_errno(k, "attest verify: %s: not a TPM2 quote we can check", args->quote);
                if (k < 0 && k != -EBADE)
                        return log_error_errno(k, "attest verify: %m");
        }
        /* The policy speaks about a report whose TCB layout is known; without it (the certificate
         * named no product) the chain checks above have already failed. */
        if (e.report.tcb_layout_known) {
                k = attest_policy_check(&policy, &e.report, e.is_hcl ? &e.hcl.vm_config : NULL, &problems);
                if (k < 0 && k != -EBADE)
                        return log_error_errno(k, "attest verify: %m");
        }

        if (args->json) {
                k = verdict_json(args, &e, problems.n == 0 && !problems.truncated, &info, digest, &problems);
                if (k < 0)
                        return log_error_errno(k, "attest verify: out of memory");
        } else if (problems.n == 0 && !problems.truncated)
                print_verdict(args, &e, &info, digest);
        if (problems.n == 0 && !problems.truncated)
                return 0;
        /* Each failed check on its own line; the exit status says "attestation failed". */
        for (size_t i = 0; i < problems.n; i++) {
                char reason[ATTEST_REASON_MAX + 16];
                log_error("attest verify: %s: %s", problems.item[i].check,
                          log_escape(reason, sizeof(reason), problems.item[i].reason));
        }
        if (problems.truncated)
                log_error("attest verify: more checks failed than listed");
        return -EBADE;
}

int verb_attest(const Config *cfg, const CliArgs *args, int argc, char **argv) {
        const char *path = argc > 1 ? argv[1] : NULL;

        if (strcmp(argv[0], "fetch") == 0)
                return attest_fetch(cfg, args, path);
        if (strcmp(argv[0], "show") == 0)
                return attest_show(cfg, args, path);
        return attest_verify(cfg, args, path);
}
