/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Attestation as one step, shared by `attest show|verify|fetch`, `unlock` and `boot`: get a report
 * (from a file or a live source), verify it with its certificates against the trust anchors and
 * the policy, for Azure also the HCL binding and, live, the vTPM's AK and a fresh quote; and, for
 * the boot gate, record the verdict in the gate PCR. Functions return 0 or a negative errno and
 * put a one-line reason into `why` (size n) for the caller to log once:
 *   -EBADE     the evidence does not verify or violates the policy (the verdict lists each check)
 *   -ENOMSG    gate: cvmcrypt has not measured itself in this boot, so attesting means nothing
 *   -EALREADY  gate: already attested, or the gate PCR was capped, in this boot
 * and the errors of attest.h, hcl.h, attest-fetch.h and tpm.h. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest-fetch.h"
#include "attest.h"
#include "config.h"
#include "hcl.h"
#include "token.h"
#include "tpm.h"

#define ATTEST_TIMEOUT_DEFAULT 10u /* seconds a live source gets for a fresh report */
#define ATTEST_WHY_MAX 512u
#define ATTEST_NAME_MAX 512u

/* What to attest and what to check it with. Paths may be NULL. */
typedef struct AttestRequest {
        const char *file;        /* a report from a file (an HCL blob when file_is_hcl)... */
        bool file_is_hcl;
        bool live;               /* ...or from a live source */
        AttestSource source;
        const char *source_path; /* tsm directory or SEV guest device */
        unsigned timeout;        /* seconds; 0: ATTEST_TIMEOUT_DEFAULT */
        const uint8_t *nonce;    /* live: the report data to ask for (ATTEST_NONCE_SIZE); NULL: random */
        TpmContext *tpm;         /* hcl-nv: the vTPM, borrowed */
        const char *vcek;        /* the VCEK or VLEK, optionally followed by its chain */
        const char *chain;       /* ASK/ASVK and ARK */
        const char *certs;       /* directory of vcek, vlek, ask, asvk, ark .pem/.der */
        const char *crl;
        const char *anchors;
        const char *policy;      /* NULL: the default policy (debug forbidden) */
        const char *quote;       /* a vTPM quote from files, for an HCL report from a file */
        const char *quote_sig;
        const char *pcr_values;
        const char *quote_nonce; /* hex */
} AttestRequest;

/* The report and what came with it. */
typedef struct AttestSubject {
        char name[ATTEST_NAME_MAX]; /* the file, or what the source is called */
        bool is_hcl;
        bool live;                  /* fetched just now, with nonce as its report data */
        AttestSource source;
        unsigned timeout;
        uint8_t nonce[ATTEST_NONCE_SIZE];
        SnpReport report;
        HclReport hcl;
        AttestEvidence raw;
        bool has_table;
        SnpCertTable table;
} AttestSubject;

void attest_subject_done(AttestSubject *s);

/* Reads the file or asks the live source (with rq->nonce or a random one) and parses the report,
 * the HCL blob around it and the certificate table. */
int attest_subject_load(const AttestRequest *rq, AttestSubject *ret, char *why, size_t n);

typedef struct AttestVerdict {
        AttestSubject subject;
        AttestChainInfo info;
        uint8_t policy_digest[32]; /* attest_policy_digest() of the policy checked */
        bool quote_checked;        /* a vTPM quote verified: from files, or live */
        bool ok;
        AttestProblems problems;   /* every failed check when !ok */
} AttestVerdict;

void attest_verdict_done(AttestVerdict *v);

/* Loads policy, CRL and anchors first (a mistake there should not cost a fresh report), then the
 * subject, its certificates (--vcek, --certs DIR, or the report's own table), and runs every
 * check. 0 when a verdict was reached, ok or not: the failed checks are in ret->problems. */
int attest_verify_run(const AttestRequest *rq, AttestVerdict *ret, char *why, size_t n);

/* "hex" of 1..max bytes. */
int attest_hex_parse(const char *s, uint8_t *out, size_t max, size_t *ret_size);

/* The boot gate: attests as the configuration says (attest=, attest-certs=, anchors=, policy=),
 * with tpm as the vTPM for hcl-nv, and only when everything verified extends the gate PCR with
 * cvmcrypt:attested and the policy's digest (measure_attested()). A failure extends nothing, so
 * the PCR lacks the value a token that demands attestation was sealed to, and the TPM refuses it.
 * -EBADE with why listing the failed checks; -EINVAL when the configuration does not attest. */
int attest_gate(const Config *cfg, TpmContext *tpm, AttestVerdict *ret, char *why, size_t n);

/* The policy digest the configuration's policy measures to (what enroll --attest records). */
int attest_config_policy_digest(const Config *cfg, uint8_t ret[32], char *why, size_t n);

/* The gate as unlock and boot run it: at most once per process, its outcome remembered. */
typedef struct AttestGateState {
        const Config *cfg;
        TpmContext *tpm;
        bool ran;
        int result;                 /* attest_gate()'s return */
        char why[ATTEST_WHY_MAX];   /* its reason; on success what was verified */
} AttestGateState;

int attest_gate_once(AttestGateState *st);

/* LuksUnlockHooks.attest, with state an AttestGateState: nothing to do when the gate PCR already
 * holds the value the token was sealed to; else the configuration must attest against the policy
 * the token names (-EBADE when it names another), and the gate runs, once. */
int attest_gate_token(void *state, const Tpm2Token *t, int token_id, char *why, size_t n);
