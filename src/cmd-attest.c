/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvmcrypt attest show|verify|fetch: the command-line face of attest.h and hcl.h. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

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

static inline void hcl_report_donep(HclReport **h) {
        hcl_report_done(*h);
}

int verify_attest(const CliArgs *args, int argc, char **argv) {
        const char *sub = argv[0];
        bool has_file = argc > 1;
        bool quote_any = args->quote || args->quote_sig || args->pcr_values || args->nonce;

        if (strcmp(sub, "fetch") == 0)
                return 0; /* reported as not available by the verb itself */
        if (strcmp(sub, "show") != 0 && strcmp(sub, "verify") != 0)
                return log_error_errno(-EINVAL, "attest: unknown subcommand '%.64s' (expected verify, show or fetch)", sub);
        if (has_file == !!args->hcl)
                return log_error_errno(-EINVAL, "attest %s: give either a report FILE or --hcl FILE", sub);
        if (strcmp(sub, "show") == 0) {
                if (args->vcek || args->chain || args->anchors || args->policy || args->crl || quote_any)
                        return log_error_errno(-EINVAL, "attest show: --vcek, --chain, --anchors, --policy, --crl and the quote options are for 'attest verify'");
                return 0;
        }
        if (!args->vcek)
                return log_error_errno(-EINVAL, "attest verify: --vcek FILE is required (the VCEK or VLEK that signed the report)");
        if (quote_any && !(args->quote && args->quote_sig && args->pcr_values && args->nonce && args->hcl))
                return log_error_errno(-EINVAL, "attest verify: a quote needs --hcl, --quote, --quote-sig, --pcr-values and --nonce together");
        return 0;
}

static int hex_decode(const char *s, uint8_t *out, size_t max, size_t *ret_size) {
        size_t len = strlen(s);

        if (len == 0 || len % 2 || len / 2 > max || hex_decode_exact(s, len, out, len / 2) < 0)
                return -EINVAL;
        *ret_size = len / 2;
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

static int load_report(const char *path, bool is_hcl, SnpReport *ret_report, HclReport *ret_hcl) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        k = attest_read_file(path, is_hcl ? HCL_BLOB_MAX : SNP_REPORT_SIZE * 4, &data, &size);
        if (k < 0)
                return log_error_errno(k, "attest: %s: cannot read: %m", path);
        if (is_hcl) {
                k = hcl_report_parse(data, size, ret_hcl);
                if (k == -EOPNOTSUPP)
                        return log_error_errno(k, "attest: %s: HCL report of a type we do not support (TDX?)", path);
                if (k < 0)
                        return log_error_errno(k, "attest: %s: not a valid Azure HCL report (run with -v for details)", path);
                *ret_report = ret_hcl->snp;
                return 0;
        }
        k = snp_report_parse(data, size, ret_report);
        if (k < 0)
                return log_error_errno(k, "attest: %s: not a valid SEV-SNP report%s (run with -v for details)", path,
                                       size >= 4 && memcmp(data, "HCLA", 4) == 0 ? " (an Azure HCL blob? use --hcl)" : "");
        return 0;
}

static int attest_show(const CliArgs *args, const char *path) {
        _cleanup_(hcl_report_donep) HclReport *hp = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL, *rep = NULL;
        HclReport h = {};
        SnpReport r;
        int k;

        k = load_report(path, args->hcl != NULL, &r, &h);
        if (k < 0)
                return k;
        hp = &h;
        k = snp_report_to_json(&r, &rep);
        if (k < 0)
                return log_error_errno(k, "attest: out of memory");
        if (args->hcl) {
                json_object *ho = json_object_new_object();

                root = json_object_new_object();
                if (!root || json_add(root, "hcl", ho) < 0 || hcl_to_json(&h, ho) < 0 || json_add(root, "report", TAKE_PTR(rep)) < 0)
                        return log_error_errno(-ENOMEM, "attest: out of memory");
        } else
                root = TAKE_PTR(rep);
        if (args->json)
                return print_json(root);
        print_text(root, 0);
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

static int verdict_json(const CliArgs *args, const char *path, bool ok, const AttestChainInfo *info, const SnpReport *r,
                        const uint8_t policy_digest[32], const AttestProblems *problems) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *list = json_object_new_array();
        char fp[65];

        if (!o || json_add(o, "verified", json_object_new_boolean(ok)) < 0 || json_add(o, "report", json_object_new_string(path)) < 0 ||
            json_add(o, "product", json_object_new_string(snp_product_to_string(info->product))) < 0 ||
            json_add(o, "signing_key", json_object_new_string(snp_signing_key_to_string(info->key))) < 0 ||
            json_add(o, "ark", json_object_new_string(info->ark_name)) < 0 ||
            json_add(o, "intermediate", json_object_new_string(info->intermediate_name)) < 0 ||
            json_add_hex(o, "measurement", r->measurement, sizeof(r->measurement)) < 0 ||
            json_add_hex(o, "policy_sha256", policy_digest, 32) < 0)
                return -ENOMEM;
        hex_encode(info->ark_sha256, 32, fp);
        if (json_add(o, "ark_sha256", json_object_new_string(fp)) < 0 ||
            (args->hcl && json_add(o, "hcl_checked", json_object_new_boolean(true)) < 0) ||
            (args->quote && json_add(o, "quote_checked", json_object_new_boolean(true)) < 0) || json_add(o, "problems", list) < 0)
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

static int attest_verify(const Config *cfg, const CliArgs *args, const char *path) {
        _cleanup_(hcl_report_donep) HclReport *hp = NULL;
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *leaf_file = NULL, *chain = NULL;
        _cleanup_(sk_X509_CRL_pop_freep) STACK_OF(X509_CRL) *crls = NULL;
        _cleanup_(attest_anchors_freep) AttestAnchors *anchors = NULL;
        _cleanup_(X509_freep) X509 *leaf = NULL;
        _cleanup_free_ uint8_t *quote = NULL, *quote_sig = NULL;
        const char *anchors_dir = args->anchors ? args->anchors : cfg->anchors ? cfg->anchors : CVM_ANCHORS_DIR;
        const char *policy_path = args->policy ? args->policy : cfg->policy;
        AttestProblems problems;
        AttestChainInfo info = {};
        AttestPolicy policy;
        HclReport h = {};
        SnpReport r;
        uint8_t digest[32];
        char why[256];
        int k;

        k = load_report(path, args->hcl != NULL, &r, &h);
        if (k < 0)
                return k;
        hp = &h;
        attest_policy_init(&policy);
        if (policy_path) {
                k = attest_policy_load(policy_path, &policy, why, sizeof(why));
                if (k < 0)
                        return log_error_errno(k, "attest verify: policy %s: %s", policy_path, why);
        }
        k = attest_policy_digest(&policy, digest);
        if (k < 0)
                return log_error_errno(k, "attest verify: cannot digest the policy: %m");

        k = attest_load_certs(args->vcek, &leaf_file);
        if (k < 0)
                return log_error_errno(k, "attest verify: %s: no certificate (PEM or DER)", args->vcek);
        /* The first certificate is the VCEK/VLEK; any that follow (a KDS "VCEK + chain" file) are
         * treated as part of the chain. */
        leaf = sk_X509_shift(leaf_file);
        if (args->chain) {
                k = attest_load_certs(args->chain, &chain);
                if (k < 0)
                        return log_error_errno(k, "attest verify: %s: no certificates (PEM or DER)", args->chain);
        } else {
                chain = sk_X509_new_null();
                if (!chain)
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
        }
        while (sk_X509_num(leaf_file) > 0) {
                X509 *c = sk_X509_shift(leaf_file);
                if (!sk_X509_push(chain, c)) {
                        X509_free(c);
                        return log_error_errno(-ENOMEM, "attest verify: out of memory");
                }
        }
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

        attest_problems_init(&problems);
        k = attest_verify_report(&r, leaf, chain, anchors, crls, &info, &problems);
        if (k < 0 && k != -EBADE && k != -EBADMSG)
                return log_error_errno(k, "attest verify: %m");
        if (args->hcl) {
                k = hcl_check_binding(&h, &problems);
                if (k < 0 && k != -EBADE)
                        return log_error_errno(k, "attest verify: %m");
                if (args->quote) {
                        uint8_t nonce[NONCE_MAX];
                        size_t quote_size = 0, sig_size = 0, nonce_size = 0;
                        TpmPcrValues pcrs;

                        k = load_quote_inputs(args, &quote, &quote_size, &quote_sig, &sig_size, &pcrs, nonce, &nonce_size);
                        if (k < 0)
                                return k;
                        k = hcl_quote_verify(quote, quote_size, quote_sig, sig_size, h.ak_pub, nonce, nonce_size, &pcrs,
                                             &problems);
                        if (k == -EBADMSG || k == -EOPNOTSUPP)
                                return log_error_errno(k, "attest verify: %s: not a TPM2 quote we can check", args->quote);
                        if (k < 0 && k != -EBADE)
                                return log_error_errno(k, "attest verify: %m");
                }
        }
        /* The policy speaks about a report whose TCB layout is known; without it (the certificate
         * named no product) the chain checks above have already failed. */
        if (r.tcb_layout_known) {
                k = attest_policy_check(&policy, &r, args->hcl ? &h.vm_config : NULL, &problems);
                if (k < 0 && k != -EBADE)
                        return log_error_errno(k, "attest verify: %m");
        }

        if (args->json) {
                k = verdict_json(args, path, problems.n == 0 && !problems.truncated, &info, &r, digest, &problems);
                if (k < 0)
                        return log_error_errno(k, "attest verify: out of memory");
        } else if (problems.n == 0) {
                char fp[65], pd[65];

                hex_encode(info.ark_sha256, 32, fp);
                hex_encode(digest, 32, pd);
                printf("verified: %s %s, chain %s <- %s (sha256 %s)\n", snp_product_to_string(info.product),
                       info.key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", info.intermediate_name, info.ark_name, fp);
                if (args->hcl)
                        printf("hcl: runtime data bound to REPORT_DATA%s\n",
                               args->quote ? "; quote signed by HCLAkPub, nonce and PCR digest match" : "");
                printf("policy: sha256 %s\n", pd);
        }
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
        const char *path = args->hcl ? args->hcl : argc > 1 ? argv[1] : NULL;

        if (strcmp(argv[0], "fetch") == 0)
                return log_error_errno(-EOPNOTSUPP, "attest fetch: not available in this build");
        if (strcmp(argv[0], "show") == 0)
                return attest_show(args, path);
        return attest_verify(cfg, args, path);
}
