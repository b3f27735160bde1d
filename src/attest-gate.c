/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One attestation, from the report to the verdict, and the boot gate that records a passed one in
 * the gate PCR. Nothing here logs above debug level: the verbs log the reasons. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attest-gate.h"
#include "encoding.h"
#include "log.h"
#include "macro.h"
#include "measure.h"

#define NONCE_MAX 64
#define QUOTE_NONCE_SIZE 32
#define TPM_ALG_SHA256 0x000Bu

int attest_hex_parse(const char *s, uint8_t *out, size_t max, size_t *ret_size) {
        size_t len = s ? strlen(s) : 0;

        if (len == 0 || len % 2 || len / 2 > max || hex_decode_exact(s, len, out, len / 2) < 0)
                return -EINVAL;
        *ret_size = len / 2;
        return 0;
}

/* ---- the subject: a report from a file or a live source ---- */

void attest_subject_done(AttestSubject *s) {
        hcl_report_done(&s->hcl);
        attest_evidence_done(&s->raw);
}

static int subject_parse(AttestSubject *s, const uint8_t *data, size_t size, char *why, size_t n) {
        int k;

        if (s->is_hcl) {
                k = hcl_report_parse(data, size, &s->hcl);
                if (k == -EOPNOTSUPP)
                        return format_reason(why, n, k, "%s: HCL report of a type we do not support (TDX?)", s->name);
                if (k < 0)
                        return format_reason(why, n, k, "%s: not a valid Azure HCL report (run with -v for details)", s->name);
                s->report = s->hcl.snp;
                return 0;
        }
        k = snp_report_parse(data, size, &s->report);
        if (k < 0)
                return format_reason(why, n, k, "%s: not a valid SEV-SNP report%s (run with -v for details)", s->name,
                                     size >= 4 && memcmp(data, "HCLA", 4) == 0 ? " (an Azure HCL blob? use --hcl)" : "");
        return 0;
}

static int subject_load_file(const AttestRequest *rq, AttestSubject *s, char *why, size_t n) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        (void) snprintf(s->name, sizeof(s->name), "%s", rq->file);
        s->is_hcl = rq->file_is_hcl;
        k = attest_read_file(rq->file, s->is_hcl ? HCL_BLOB_MAX : SNP_REPORT_SIZE * 4, &data, &size);
        if (k < 0)
                return format_reason(why, n, k, "%s: cannot read: %s", rq->file, strerror(-k));
        return subject_parse(s, data, size, why, n);
}

static int fetch_error(const AttestSubject *s, int r, char *why, size_t n) {
        bool hcl = s->source == ATTEST_SOURCE_HCL_NV;

        switch (r) {
        case -ENODEV:
                if (hcl)
                        return format_reason(why, n, r, "not an Azure CVM vTPM: NV index 0x%08x (HCL report) is not defined",
                                             HCL_NV_INDEX);
                if (s->source == ATTEST_SOURCE_TSM)
                        return format_reason(why, n, r, "%s: no configfs-tsm report provider here", s->name);
                return format_reason(why, n, r, "%s: no SEV-SNP guest device here", s->name);
        case -EBADE:
                if (hcl)
                        return format_reason(why, n, r,
                                             "the HCL report's user-data is not the nonce written to NV index 0x%08x: the paravisor did not refresh it within %u s (stale report)",
                                             HCL_USER_DATA_NV_INDEX, s->timeout);
                return format_reason(why, n, r, "%s: the report's REPORT_DATA is not the nonce we sent (stale or replayed report)",
                                     s->name);
        case -EBUSY:
                return format_reason(why, n, r, "%s: another writer kept changing our report entry (generation); giving up",
                                     s->name);
        case -ETIME:
                return format_reason(why, n, r, "%s: no report within %u s", s->name, s->timeout);
        case -EOPNOTSUPP:
                if (hcl)
                        return format_reason(why, n, r, "%s: HCL report of a type we do not support (TDX?)", s->name);
                return format_reason(why, n, r, "%s: the configfs-tsm provider is not sev_guest (run with -v)", s->name);
        case -EIO:
                if (s->source == ATTEST_SOURCE_SEV_GUEST)
                        return format_reason(why, n, r, "%s: the SEV firmware refused the report request (run with -v)", s->name);
                break;
        case -EMSGSIZE:
                if (hcl)
                        return format_reason(why, n, r, "NV index 0x%08x is smaller than the %d-byte nonce",
                                             HCL_USER_DATA_NV_INDEX, ATTEST_NONCE_SIZE);
                break;
        case -EACCES:
        case -ENOKEY:
                if (hcl)
                        return format_reason(why, n, r, "the vTPM refused owner authorization for NV index 0x%08x or 0x%08x (run with -v)",
                                             HCL_USER_DATA_NV_INDEX, HCL_NV_INDEX);
                break;
        case -EBADMSG:
                if (hcl)
                        return format_reason(why, n, r, "%s: not a valid Azure HCL report (run with -v for details)", s->name);
                return format_reason(why, n, r, "%s: not a valid SEV-SNP report or response (run with -v for details)", s->name);
        }
        return format_reason(why, n, r, "%s: %s", s->name, strerror(-r));
}

/* Asks the source for a report with the nonce as its report data / user-data. */
static int subject_fetch(const AttestRequest *rq, AttestSubject *s, char *why, size_t n) {
        int k;

        s->live = true;
        s->source = rq->source;
        s->timeout = rq->timeout ? rq->timeout : ATTEST_TIMEOUT_DEFAULT;
        s->is_hcl = rq->source == ATTEST_SOURCE_HCL_NV;
        if (rq->nonce)
                memcpy(s->nonce, rq->nonce, sizeof(s->nonce));
        else {
                k = attest_random(s->nonce, sizeof(s->nonce));
                if (k < 0)
                        return format_reason(why, n, k, "cannot get random bytes: %s", strerror(-k));
        }
        switch (rq->source) {
        case ATTEST_SOURCE_HCL_NV:
                (void) snprintf(s->name, sizeof(s->name), "vTPM NV 0x%08x", HCL_NV_INDEX);
                if (!rq->tpm)
                        return format_reason(why, n, -EINVAL, "hcl-nv needs the vTPM");
                k = attest_fetch_hcl_nv(rq->tpm, s->nonce, s->timeout * 1000u, &s->raw);
                break;
        case ATTEST_SOURCE_TSM:
                (void) snprintf(s->name, sizeof(s->name), "%s", rq->source_path);
                k = attest_fetch_tsm(rq->source_path, s->nonce, s->timeout * 1000u, &s->raw);
                break;
        default:
                (void) snprintf(s->name, sizeof(s->name), "%s", rq->source_path);
                k = attest_fetch_sev_guest(rq->source_path, s->nonce, &s->raw);
                break;
        }
        if (k < 0)
                return fetch_error(s, k, why, n);
        k = subject_parse(s, s->raw.report, s->raw.report_size, why, n);
        if (k < 0)
                return k;
        if (s->raw.certs) {
                k = snp_cert_table_parse(s->raw.certs, s->raw.certs_size, &s->table);
                if (k < 0)
                        return format_reason(why, n, k, "%s: malformed certificate table (run with -v for details)", s->name);
                s->has_table = true;
        }
        return 0;
}

int attest_subject_load(const AttestRequest *rq, AttestSubject *ret, char *why, size_t n) {
        *ret = (AttestSubject){};
        if (rq->live)
                return subject_fetch(rq, ret, why, n);
        if (!rq->file)
                return format_reason(why, n, -EINVAL, "no report file and no live source");
        return subject_load_file(rq, ret, why, n);
}

/* ---- certificates ---- */

static int push_cert(STACK_OF(X509) *s, X509 *c) {
        if (!sk_X509_push(s, c)) {
                X509_free(c);
                return -ENOMEM;
        }
        return 0;
}

/* DIR/NAME.pem or DIR/NAME.der, one certificate. 0 and NULL if neither exists. */
static int load_dir_cert(const char *dir, const char *name, X509 **ret, char *why, size_t n) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_free_ char *pem = NULL, *der = NULL;
        bool has_pem, has_der;
        int k;

        *ret = NULL;
        if (asprintf(&pem, "%s/%s.pem", dir, name) < 0 || asprintf(&der, "%s/%s.der", dir, name) < 0)
                return format_reason(why, n, -ENOMEM, "out of memory");
        has_pem = access(pem, F_OK) == 0;
        has_der = access(der, F_OK) == 0;
        if (has_pem && has_der)
                return format_reason(why, n, -EINVAL, "%s: both %s.pem and %s.der; which one?", dir, name, name);
        if (!has_pem && !has_der)
                return 0;
        k = attest_load_certs(has_pem ? pem : der, &certs);
        if (k < 0 || sk_X509_num(certs) != 1)
                return format_reason(why, n, k < 0 ? k : -EBADMSG, "%s: not exactly one certificate (PEM or DER)",
                                     has_pem ? pem : der);
        *ret = sk_X509_shift(certs);
        return 1;
}

/* The leaf (by the report's signing key) and, when chain_too, the chain from a certificate directory. */
static int certs_from_dir(const char *dir, bool vlek, bool chain_too, X509 **ret_leaf, STACK_OF(X509) *chain,
                          char *why, size_t n) {
        static const char *const chain_names[] = { "ask", "asvk", "ark" };
        const char *leaf_name = vlek ? "vlek" : "vcek";
        int k;

        k = load_dir_cert(dir, leaf_name, ret_leaf, why, n);
        if (k < 0)
                return k;
        if (k == 0)
                return format_reason(why, n, -ENOENT, "%s: no %s.pem or %s.der (the report is signed by a %s)", dir,
                                     leaf_name, leaf_name, vlek ? "VLEK" : "VCEK");
        for (size_t i = 0; chain_too && i < ELEMENTSOF(chain_names); i++) {
                X509 *c;

                k = load_dir_cert(dir, chain_names[i], &c, why, n);
                if (k < 0)
                        return k;
                if (k > 0 && push_cert(chain, c) < 0)
                        return format_reason(why, n, -ENOMEM, "out of memory");
        }
        return 0;
}

/* The leaf (by the report's signing key) and, when chain_too, ASK and ARK from the report's table. */
static int certs_from_table(const AttestSubject *s, bool vlek, bool chain_too, X509 **ret_leaf, STACK_OF(X509) *chain,
                            char *why, size_t n) {
        const SnpCertEntry *leaf = snp_cert_table_find(&s->table, vlek ? SNP_CERT_VLEK : SNP_CERT_VCEK);
        int k;

        if (!leaf)
                return format_reason(why, n, -ENOENT,
                                     "%s: the report is signed by a %s but its certificate table has none; give --vcek or --certs",
                                     s->name, vlek ? "VLEK" : "VCEK");
        k = snp_cert_table_x509(s->raw.certs, leaf, ret_leaf);
        if (k < 0)
                return format_reason(why, n, k, "%s: the %s in the certificate table is not a DER certificate", s->name,
                                     vlek ? "VLEK" : "VCEK");
        for (SnpCertKind kind = SNP_CERT_ASK; chain_too && kind <= SNP_CERT_ARK; kind++) {
                const SnpCertEntry *c = snp_cert_table_find(&s->table, kind);
                X509 *x;

                if (!c)
                        continue;
                k = snp_cert_table_x509(s->raw.certs, c, &x);
                if (k < 0)
                        return format_reason(why, n, k, "%s: the %s in the certificate table is not a DER certificate",
                                             s->name, snp_cert_kind_to_string(kind));
                if (push_cert(chain, x) < 0)
                        return format_reason(why, n, -ENOMEM, "out of memory");
        }
        return 0;
}

/* Leaf and chain, most explicit source first: the vcek file (+ chain), the certificate directory,
 * the report's own certificate table. A chain file replaces the chain of the other two. */
static int load_certs(const AttestRequest *rq, const AttestSubject *s, X509 **ret_leaf, STACK_OF(X509) **ret_chain,
                      char *why, size_t n) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *leaf_file = NULL, *chain = NULL;
        bool vlek = snp_report_signing_key(&s->report) == SNP_SIGNING_KEY_VLEK;
        int k;

        if (rq->chain) {
                k = attest_load_certs(rq->chain, &chain);
                if (k < 0)
                        return format_reason(why, n, k, "%s: no certificates (PEM or DER)", rq->chain);
        } else {
                chain = sk_X509_new_null();
                if (!chain)
                        return format_reason(why, n, -ENOMEM, "out of memory");
        }
        if (rq->vcek) {
                k = attest_load_certs(rq->vcek, &leaf_file);
                if (k < 0)
                        return format_reason(why, n, k, "%s: no certificate (PEM or DER)", rq->vcek);
                /* The first certificate is the VCEK/VLEK; any that follow (a KDS "VCEK + chain" file) are
                 * treated as part of the chain. */
                *ret_leaf = sk_X509_shift(leaf_file);
                while (sk_X509_num(leaf_file) > 0)
                        if (push_cert(chain, sk_X509_shift(leaf_file)) < 0)
                                return format_reason(why, n, -ENOMEM, "out of memory");
        } else if (rq->certs)
                k = certs_from_dir(rq->certs, vlek, !rq->chain, ret_leaf, chain, why, n);
        else if (s->has_table)
                k = certs_from_table(s, vlek, !rq->chain, ret_leaf, chain, why, n);
        else
                k = format_reason(why, n, -ENOENT, "%s came without certificates; give --vcek or --certs", s->name);
        if (k < 0)
                return k;
        *ret_chain = TAKE_PTR(chain);
        return 0;
}

/* ---- the vTPM: a quote from files, or a live one ---- */

static int file_quote_check(const AttestRequest *rq, const AttestSubject *s, AttestProblems *problems, char *why,
                            size_t n) {
        _cleanup_free_ uint8_t *attest = NULL, *sig = NULL, *text = NULL;
        size_t attest_size, sig_size, text_size, nonce_size;
        uint8_t nonce[NONCE_MAX];
        TpmPcrValues pcrs;
        int k;

        if (attest_hex_parse(rq->quote_nonce, nonce, NONCE_MAX, &nonce_size) < 0)
                return format_reason(why, n, -EINVAL, "--nonce must be 1..%d bytes as hex", NONCE_MAX);
        k = attest_read_file(rq->quote, HCL_QUOTE_MAX, &attest, &attest_size);
        if (k < 0)
                return format_reason(why, n, k, "%s: cannot read: %s", rq->quote, strerror(-k));
        k = attest_read_file(rq->quote_sig, 4096, &sig, &sig_size);
        if (k < 0)
                return format_reason(why, n, k, "%s: cannot read: %s", rq->quote_sig, strerror(-k));
        k = attest_read_file(rq->pcr_values, 64 * 1024, &text, &text_size);
        if (k < 0)
                return format_reason(why, n, k, "%s: cannot read: %s", rq->pcr_values, strerror(-k));
        k = hcl_parse_pcr_values((const char *) text, text_size, &pcrs);
        if (k < 0)
                return format_reason(why, n, k, "%s: not 'INDEX HEX' lines of SHA-256 PCR values", rq->pcr_values);
        k = hcl_quote_verify(attest, attest_size, sig, sig_size, s->hcl.ak_pub, nonce, nonce_size, &pcrs, problems);
        if (k == -EBADMSG || k == -EOPNOTSUPP)
                return format_reason(why, n, k, "%s: not a TPM2 quote we can check", rq->quote);
        if (k < 0 && k != -EBADE)
                return format_reason(why, n, k, "the quote: %s", strerror(-k));
        return 0;
}

/* Azure, on the VM itself: the vTPM's key at 0x81000003 is HCLAkPub, and it quotes the boot PCRs
 * with a fresh nonce. The quote is checked with HCLAkPub from the (verified) report, never with
 * the key the TPM reported. Failed checks go into problems. */
static int hcl_check_live(TpmContext *tpm, const AttestSubject *s, AttestProblems *problems, char *why, size_t n) {
        _cleanup_(tpm_quote_done) TpmQuote q = {};
        uint8_t nonce[QUOTE_NONCE_SIZE];
        TpmRsaPublic key;
        TpmPcrValues pcrs;
        int k;

        k = attest_random(nonce, sizeof(nonce));
        if (k < 0)
                return format_reason(why, n, k, "cannot get random bytes: %s", strerror(-k));
        k = tpm_quote(tpm, HCL_AK_HANDLE, TPM_ALG_SHA256, HCL_QUOTE_PCR_MASK, nonce, sizeof(nonce), &key, &q);
        if (k == -ENOENT || k == -EMEDIUMTYPE) {
                attest_problem_add(problems, "hcl-ak", k == -ENOENT ? "no key at persistent handle 0x%08x in the vTPM" :
                                   "the vTPM key at 0x%08x is not an RSA key", HCL_AK_HANDLE);
                return 0;
        }
        if (k < 0)
                return format_reason(why, n, k, "the vTPM cannot quote with the key at 0x%08x: %s", HCL_AK_HANDLE,
                                     strerror(-k));
        k = hcl_check_ak(&s->hcl, &key, problems);
        if (k < 0 && k != -EBADE)
                return format_reason(why, n, k, "the vTPM's key: %s", strerror(-k));
        if (k < 0)
                return 0;
        k = tpm_pcr_read(tpm, TPM_ALG_SHA256, HCL_QUOTE_PCR_MASK, &pcrs);
        if (k < 0)
                return format_reason(why, n, k, "cannot read the PCRs: %s", strerror(-k));
        k = hcl_quote_verify(q.attest, q.attest_size, q.signature, q.signature_size, s->hcl.ak_pub, nonce, sizeof(nonce),
                             &pcrs, problems);
        if (k == -EBADMSG || k == -EOPNOTSUPP)
                return format_reason(why, n, k, "the vTPM's quote is not one we can check");
        if (k < 0 && k != -EBADE)
                return format_reason(why, n, k, "the vTPM's quote: %s", strerror(-k));
        return 0;
}

/* ---- the verdict ---- */

void attest_verdict_done(AttestVerdict *v) {
        attest_subject_done(&v->subject);
}

static int load_crls(const char *path, STACK_OF(X509_CRL) **ret, char *why, size_t n) {
        _cleanup_(sk_X509_CRL_pop_freep) STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
        X509_CRL *crl = NULL;
        int k;

        if (!crls)
                return format_reason(why, n, -ENOMEM, "out of memory");
        k = attest_load_crl(path, &crl);
        if (k < 0)
                return format_reason(why, n, k, "%s: not a CRL (PEM or DER)", path);
        if (!sk_X509_CRL_push(crls, crl)) {
                X509_CRL_free(crl);
                return format_reason(why, n, -ENOMEM, "out of memory");
        }
        *ret = TAKE_PTR(crls);
        return 0;
}

int attest_verify_run(const AttestRequest *rq, AttestVerdict *ret, char *why, size_t n) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(sk_X509_CRL_pop_freep) STACK_OF(X509_CRL) *crls = NULL;
        _cleanup_(attest_anchors_freep) AttestAnchors *anchors = NULL;
        _cleanup_(X509_freep) X509 *leaf = NULL;
        AttestSubject *s = &ret->subject;
        AttestPolicy policy;
        char reason[256];
        int k;

        *ret = (AttestVerdict){};
        attest_problems_init(&ret->problems);
        /* Everything from files first: a mistake there should not cost a fresh report. */
        attest_policy_init(&policy);
        if (rq->policy) {
                k = attest_policy_load(rq->policy, &policy, reason, sizeof(reason));
                if (k < 0)
                        return format_reason(why, n, k, "policy %s: %s", rq->policy, reason);
        }
        k = attest_policy_digest(&policy, ret->policy_digest);
        if (k < 0)
                return format_reason(why, n, k, "cannot digest the policy: %s", strerror(-k));
        if (rq->crl) {
                k = load_crls(rq->crl, &crls, why, n);
                if (k < 0)
                        return k;
        }
        k = attest_anchors_load(rq->anchors, &anchors);
        if (k < 0)
                return format_reason(why, n, k, "trust anchors %s: %s", rq->anchors, strerror(-k));

        k = attest_subject_load(rq, s, why, n);
        if (k < 0)
                return k;
        k = load_certs(rq, s, &leaf, &chain, why, n);
        if (k < 0)
                return k;

        k = attest_verify_report(&s->report, leaf, chain, anchors, crls, &ret->info, &ret->problems);
        if (k < 0 && k != -EBADE && k != -EBADMSG)
                return format_reason(why, n, k, "the report: %s", strerror(-k));
        if (s->is_hcl) {
                k = hcl_check_binding(&s->hcl, &ret->problems);
                if (k < 0 && k != -EBADE)
                        return format_reason(why, n, k, "the HCL binding: %s", strerror(-k));
        }
        if (s->live && s->is_hcl) {
                k = hcl_check_live(rq->tpm, s, &ret->problems, why, n);
                if (k < 0)
                        return k;
                ret->quote_checked = true;
        } else if (rq->quote) {
                k = file_quote_check(rq, s, &ret->problems, why, n);
                if (k < 0)
                        return k;
                ret->quote_checked = true;
        }
        /* The policy speaks about a report whose TCB layout is known; without it (the certificate
         * named no product) the chain checks above have already failed. */
        if (s->report.tcb_layout_known) {
                k = attest_policy_check(&policy, &s->report, s->is_hcl ? &s->hcl.vm_config : NULL, &ret->problems);
                if (k < 0 && k != -EBADE)
                        return format_reason(why, n, k, "the policy check: %s", strerror(-k));
        }
        ret->ok = ret->problems.n == 0 && !ret->problems.truncated;
        return 0;
}

/* ---- the boot gate ---- */

static int gate_request(const Config *cfg, TpmContext *tpm, AttestRequest *ret, char *why, size_t n) {
        AttestSource source;
        const char *path;

        if (!cfg->attest || !cfg->policy)
                return format_reason(why, n, -EINVAL, "the configuration does not attest (attest= and policy= are not set)");
        if (attest_source_parse(cfg->attest, &source, &path) < 0)
                return format_reason(why, n, -EINVAL, "attest=%s is not an attestation source", cfg->attest);
        *ret = (AttestRequest){ .live = true, .source = source, .source_path = path, .tpm = tpm,
                                .certs = cfg->attest_certs, .anchors = cfg->anchors, .policy = cfg->policy };
        return 0;
}

/* "check: reason; check: reason" as far as it fits. */
static void summarize_problems(const AttestProblems *p, char *why, size_t n) {
        size_t len = (size_t) snprintf(why, n, "attestation failed: ");

        for (size_t i = 0; i < p->n && len < n; i++)
                len += (size_t) snprintf(why + len, n - len, "%s%s: %s", i ? "; " : "", p->item[i].check, p->item[i].reason);
        if (p->truncated && len < n)
                (void) snprintf(why + len, n - len, "; more checks failed than listed");
}

int attest_gate(const Config *cfg, TpmContext *tpm, AttestVerdict *ret, char *why, size_t n) {
        char mwhy[MEASURE_WHY_MAX] = "";
        AttestRequest rq;
        int k;

        *ret = (AttestVerdict){};
        k = gate_request(cfg, tpm, &rq, why, n);
        if (k < 0)
                return k;
        /* Not measured, or capped: a report would change nothing. */
        k = measure_attest_ready(cfg->event_log, cfg->gate_pcr, why, n);
        if (k < 0)
                return k;
        k = attest_verify_run(&rq, ret, why, n);
        if (k < 0)
                return k;
        if (!ret->ok) {
                summarize_problems(&ret->problems, why, n);
                return -EBADE;
        }
        k = measure_attested(tpm, cfg->event_log, cfg->gate_pcr, ret->policy_digest, mwhy, sizeof(mwhy));
        if (k < 0)
                return format_reason(why, n, k, "attestation passed, but %s", mwhy);
        return 0;
}

int attest_config_policy_digest(const Config *cfg, uint8_t ret[32], char *why, size_t n) {
        AttestPolicy policy;
        char reason[256];
        int k;

        if (!cfg->policy)
                return format_reason(why, n, -EINVAL, "no policy= is configured");
        k = attest_policy_load(cfg->policy, &policy, reason, sizeof(reason));
        if (k < 0)
                return format_reason(why, n, k, "policy %s: %s", cfg->policy, reason);
        k = attest_policy_digest(&policy, ret);
        if (k < 0)
                return format_reason(why, n, k, "cannot digest the policy %s: %s", cfg->policy, strerror(-k));
        return 0;
}

int attest_gate_once(AttestGateState *st) {
        _cleanup_free_ AttestVerdict *v = NULL;
        char pd[65];

        if (st->ran)
                return st->result;
        st->ran = true;
        v = calloc(1, sizeof(AttestVerdict));
        if (!v)
                return st->result = format_reason(st->why, sizeof(st->why), -ENOMEM, "out of memory");
        st->result = attest_gate(st->cfg, st->tpm, v, st->why, sizeof(st->why));
        if (st->result >= 0) {
                hex_encode(v->policy_digest, sizeof(v->policy_digest), pd);
                (void) format_reason(st->why, sizeof(st->why), 0, "%s from %s: %s %s, chain %s <- %s%s; policy sha256 %s",
                                v->subject.is_hcl ? "HCL report" : "SEV-SNP report", v->subject.name,
                                snp_product_to_string(v->info.product),
                                v->info.key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", v->info.intermediate_name,
                                v->info.ark_name, v->quote_checked ? ", vTPM AK and quote checked" : "", pd);
        }
        attest_verdict_done(v);
        return st->result;
}

int attest_gate_token(void *state, const Tpm2Token *t, int token_id, char *why, size_t n) {
        AttestGateState *st = state;
        unsigned gate = st->cfg->gate_pcr;
        uint8_t digest[32];
        char want[65], have[65], reason[ATTEST_WHY_MAX] = "";
        TpmPcrValues now;
        int k;

        if (!(t->pcrs.mask & (1u << gate)))
                return format_reason(why, n, -EBADE, "token %d demands attestation but is not bound to the gate PCR %u",
                                     token_id, gate);
        k = tpm_pcr_read(st->tpm, t->pcrs.bank, 1u << gate, &now);
        if (k < 0)
                return format_reason(why, n, k, "cannot read the gate PCR %u: %s", gate, strerror(-k));
        if (memcmp(now.value[gate], t->pcrs.value[gate], tpm_bank_digest_size(t->pcrs.bank)) == 0)
                return 0;
        if (!st->ran) {
                k = st->cfg->attest ? attest_config_policy_digest(st->cfg, digest, reason, sizeof(reason)) : -EINVAL;
                if (k < 0)
                        return format_reason(why, n, k,
                                             "token %d demands attestation, but the configuration does not attest (attest= and policy=)%s%s",
                                             token_id, *reason ? ": " : "", reason);
                if (memcmp(digest, t->attest, sizeof(digest)) != 0) {
                        hex_encode(t->attest, sizeof(t->attest), want);
                        hex_encode(digest, sizeof(digest), have);
                        return format_reason(why, n, -EBADE, "token %d demands attestation against the policy sha256 %s, but policy= %s is sha256 %s",
                                             token_id, want, st->cfg->policy, have);
                }
        }
        k = attest_gate_once(st);
        if (k < 0)
                return format_reason(why, n, k, "%s", st->why);
        return 0;
}
