/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvmcrypt attest show|verify|fetch: the command-line face of attest-gate.h. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attest-gate.h"
#include "cli.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"

#ifndef CVM_ANCHORS_DIR
#define CVM_ANCHORS_DIR "/usr/share/cvmcrypt/anchors"
#endif

#define NONCE_MAX 64
#define TIMEOUT_MAX 600u

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
                if (args->nonce && attest_hex_parse(args->nonce, nonce, NONCE_MAX, &nonce_size) < 0)
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

/* ---- the request: what the options say ---- */

/* The request of the command line, with the configuration's anchors and policy as defaults. The
 * vTPM is opened for hcl-nv (*ret_tpm, the caller closes it). */
static int build_request(const Config *cfg, const CliArgs *args, const char *path, const char *verb, AttestRequest *rq,
                         TpmContext **ret_tpm) {
        const char *source_path = NULL;
        AttestSource source = ATTEST_SOURCE_HCL_NV;
        unsigned timeout = 0;
        int k;

        if (args->source && (attest_source_parse(args->source, &source, &source_path) < 0 ||
                             (args->timeout && parse_timeout(args->timeout, &timeout) < 0)))
                return -EINVAL; /* checked by verify_attest() */
        *rq = (AttestRequest){
                .file = args->hcl ? args->hcl : path,
                .file_is_hcl = args->hcl != NULL,
                .live = args->source != NULL,
                .source = source,
                .source_path = source_path,
                .timeout = timeout,
                .vcek = args->vcek,
                .chain = args->chain,
                .certs = args->certs,
                .crl = args->crl,
                .anchors = args->anchors ? args->anchors : cfg->anchors ? cfg->anchors : CVM_ANCHORS_DIR,
                .policy = args->policy ? args->policy : cfg->policy,
                .quote = args->quote,
                .quote_sig = args->quote_sig,
                .pcr_values = args->pcr_values,
                .quote_nonce = args->nonce,
        };
        if (rq->live && source == ATTEST_SOURCE_HCL_NV) {
                k = tpm_open(cfg->tpm, ret_tpm);
                if (k < 0)
                        return log_error_errno(k, "%s: cannot open the TPM %s: %m", verb, cfg->tpm);
                rq->tpm = *ret_tpm;
        }
        return 0;
}

static int table_kinds_json(const AttestSubject *e, json_object *o) {
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
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_(attest_subject_done) AttestSubject e = {};
        _cleanup_(json_object_putp) json_object *root = NULL, *rep = NULL;
        char why[ATTEST_WHY_MAX] = "";
        AttestRequest rq;
        int k;

        k = build_request(cfg, args, path, "attest", &rq, &tpm);
        if (k < 0)
                return k;
        k = attest_subject_load(&rq, &e, why, sizeof(why));
        if (k < 0)
                return log_error_errno(k, "attest: %s", why);
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
static int write_table_certs(const AttestSubject *e, const char *dir) {
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
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_(attest_subject_done) AttestSubject e = {};
        uint8_t nonce[ATTEST_NONCE_SIZE] = {};
        char hex[2 * ATTEST_NONCE_SIZE + 1], why[ATTEST_WHY_MAX] = "";
        AttestRequest rq;
        size_t n;
        int k;

        k = build_request(cfg, args, NULL, "attest fetch", &rq, &tpm);
        if (k < 0)
                return k;
        rq.quote_nonce = NULL;
        if (args->nonce) {
                if (attest_hex_parse(args->nonce, nonce, sizeof(nonce), &n) < 0)
                        return -EINVAL; /* checked by verify_attest() */
                rq.nonce = nonce;
        }
        k = attest_subject_load(&rq, &e, why, sizeof(why));
        if (k < 0)
                return log_error_errno(k, "attest: %s", why);
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
        hex_encode(e.nonce, sizeof(e.nonce), hex);
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

static int verdict_json(const AttestSubject *e, bool ok, bool quote_checked, const AttestChainInfo *info,
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
            (quote_checked && json_add(o, "quote_checked", json_object_new_boolean(true)) < 0) ||
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

static void print_verdict(const AttestSubject *e, bool quote_checked, const AttestChainInfo *info, const uint8_t digest[32]) {
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
                       quote_checked ? "; quote signed by HCLAkPub, nonce and PCR digest match" : "");
        printf("policy: sha256 %s\n", pd);
}

static void verdict_freep(AttestVerdict **v) {
        if (*v)
                attest_verdict_done(*v);
        free(*v);
}

static int attest_verify(const Config *cfg, const CliArgs *args, const char *path) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_(verdict_freep) AttestVerdict *v = calloc(1, sizeof(AttestVerdict));
        char why[ATTEST_WHY_MAX] = "";
        AttestRequest rq;
        int k;

        if (!v)
                return log_error_errno(-ENOMEM, "attest verify: out of memory");
        k = build_request(cfg, args, path, "attest verify", &rq, &tpm);
        if (k < 0)
                return k;
        k = attest_verify_run(&rq, v, why, sizeof(why));
        if (k < 0)
                return log_error_errno(k, "attest verify: %s", why);
        if (args->json) {
                k = verdict_json(&v->subject, v->ok, v->quote_checked, &v->info, v->policy_digest, &v->problems);
                if (k < 0)
                        return log_error_errno(k, "attest verify: out of memory");
        } else if (v->ok)
                print_verdict(&v->subject, v->quote_checked, &v->info, v->policy_digest);
        if (v->ok)
                return 0;
        /* Each failed check on its own line; the exit status says "attestation failed". */
        for (size_t i = 0; i < v->problems.n; i++) {
                char reason[ATTEST_REASON_MAX + 16];
                log_error("attest verify: %s: %s", v->problems.item[i].check,
                          log_escape(reason, sizeof(reason), v->problems.item[i].reason));
        }
        if (v->problems.truncated)
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
