/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test-only TCTI: forwards to a child TCTI and, before each of the next N TPM2_Unseal commands, extends
 * PCR 10 in the sha256 bank. The TPM then answers the Unseal with TPM_RC_PCR_CHANGED, which is how a
 * PCR changing between PolicyPCR and Unseal looks. Config: "N:CHILD-TCTI", e.g. "1:swtpm:path=/x/S".
 * Config "xK:CHILD-TCTI" instead flips the lowest bit of byte K (K < 0: counted from the end) of every
 * successful TPM2_Unseal response, as someone on the bus would.
 * Load it by path: Tss2_TctiLdr_Initialize("/path/libtss2-tcti-cvmtest.so:1:swtpm:path=/x/S"). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>
#include <tss2/tss2_tpm2_types.h>

#define SHIM_MAGIC 0x6376756d62756d01ULL

typedef struct Shim {
        TSS2_TCTI_CONTEXT_COMMON_V1 common; /* first: the TSS reads it through the context pointer */
        TSS2_TCTI_CONTEXT *child;
        unsigned bumps;
        bool flip;          /* corrupt Unseal responses */
        long flip_at;
        bool unseal_sent;
} Shim;

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);

static void put_be(uint8_t *p, uint32_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

/* TPM2_PCR_Extend(PCR 10, sha256 = 0x11..11) with an empty password session. */
static TSS2_RC bump(TSS2_TCTI_CONTEXT *child) {
        uint8_t cmd[65], rsp[64];
        size_t rsp_size = sizeof(rsp);
        TSS2_RC rc;

        put_be(cmd, TPM2_ST_SESSIONS, 2);
        put_be(cmd + 2, sizeof(cmd), 4);
        put_be(cmd + 6, TPM2_CC_PCR_Extend, 4);
        put_be(cmd + 10, 10, 4);                 /* PCR handle */
        put_be(cmd + 14, 9, 4);                  /* authorization area size */
        put_be(cmd + 18, TPM2_RS_PW, 4);         /* password session, empty nonce/attrs/hmac: */
        memset(cmd + 22, 0, 5);
        put_be(cmd + 27, 1, 4);                  /* TPML_DIGEST_VALUES.count */
        put_be(cmd + 31, TPM2_ALG_SHA256, 2);
        memset(cmd + 33, 0x11, 32);
        rc = Tss2_Tcti_Transmit(child, sizeof(cmd), cmd);
        if (rc != TSS2_RC_SUCCESS)
                return rc;
        rc = Tss2_Tcti_Receive(child, &rsp_size, rsp, TSS2_TCTI_TIMEOUT_BLOCK);
        if (rc != TSS2_RC_SUCCESS)
                return rc;
        /* the response code must be success, or the test would not test what it claims */
        return rsp_size >= 10 && memcmp(rsp + 6, "\0\0\0\0", 4) == 0 ? TSS2_RC_SUCCESS : TSS2_TCTI_RC_GENERAL_FAILURE;
}

static TSS2_RC shim_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd) {
        Shim *s = (Shim *) ctx;
        uint32_t cc;

        s->unseal_sent = false;
        if (size >= 10) {
                cc = (uint32_t) cmd[6] << 24 | (uint32_t) cmd[7] << 16 | (uint32_t) cmd[8] << 8 | cmd[9];
                s->unseal_sent = cc == TPM2_CC_Unseal;
                if (cc == TPM2_CC_Unseal && s->bumps > 0) {
                        TSS2_RC rc = bump(s->child);
                        if (rc != TSS2_RC_SUCCESS)
                                return rc;
                        s->bumps--;
                }
        }
        return Tss2_Tcti_Transmit(s->child, size, cmd);
}

static TSS2_RC shim_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t timeout) {
        Shim *s = (Shim *) ctx;
        TSS2_RC rc = Tss2_Tcti_Receive(s->child, size, rsp, timeout);
        long at;

        if (rc != TSS2_RC_SUCCESS || !rsp || !s->flip || !s->unseal_sent || *size < 10 ||
            memcmp(rsp + 6, "\0\0\0\0", 4) != 0)
                return rc;
        at = s->flip_at < 0 ? (long) *size + s->flip_at : s->flip_at;
        if (at >= 10 && at < (long) *size)
                rsp[at] ^= 0x01;
        return rc;
}

static void shim_finalize(TSS2_TCTI_CONTEXT *ctx) {
        Tss2_TctiLdr_Finalize(&((Shim *) ctx)->child);
}

static TSS2_RC shim_cancel(TSS2_TCTI_CONTEXT *ctx) {
        return Tss2_Tcti_Cancel(((Shim *) ctx)->child);
}

static TSS2_RC shim_poll(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n) {
        return Tss2_Tcti_GetPollHandles(((Shim *) ctx)->child, h, n);
}

static TSS2_RC shim_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality) {
        return Tss2_Tcti_SetLocality(((Shim *) ctx)->child, locality);
}

static TSS2_RC shim_init(TSS2_TCTI_CONTEXT *ctx, size_t *size, const char *conf) {
        Shim *s = (Shim *) ctx;
        char *end = NULL;
        unsigned long n = 0;
        long at = 0;

        if (!ctx) {
                *size = sizeof(Shim);
                return TSS2_RC_SUCCESS;
        }
        if (!conf || *size < sizeof(Shim))
                return TSS2_TCTI_RC_BAD_VALUE;
        if (conf[0] == 'x') {
                at = strtol(conf + 1, &end, 10);
                if (end == conf + 1 || *end != ':')
                        return TSS2_TCTI_RC_BAD_VALUE;
        } else {
                n = strtoul(conf, &end, 10);
                if (end == conf || *end != ':')
                        return TSS2_TCTI_RC_BAD_VALUE;
        }
        *s = (Shim){
                .common = {
                        .magic = SHIM_MAGIC,
                        .version = 1,
                        .transmit = shim_transmit,
                        .receive = shim_receive,
                        .finalize = shim_finalize,
                        .cancel = shim_cancel,
                        .getPollHandles = shim_poll,
                        .setLocality = shim_locality,
                },
                .bumps = (unsigned) n,
                .flip = conf[0] == 'x',
                .flip_at = at,
        };
        return Tss2_TctiLdr_Initialize(end + 1, &s->child);
}

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void) {
        static const TSS2_TCTI_INFO info = {
                .version = 1,
                .name = "cvmtest",
                .description = "cvmcrypt test shim: extends PCR 10 before, or corrupts the response of, TPM2_Unseal",
                .config_help = "N:CHILD-TCTI or xBYTE:CHILD-TCTI",
                .init = shim_init,
        };
        return &info;
}
