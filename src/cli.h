/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "config.h"

#include <stdint.h>

#define CLI_PCR_MAX 24

/* Parsed command-line options; main.c fills it, verbs read it. Secrets never appear here: options
 * name files that hold them. */
typedef struct CliArgs {
        bool json;
        bool dry_run;
        bool no_tempdisk;       /* boot: leave the temp disk to its own service */
        bool resume_online;     /* provision: the background re-key on the open volume */
        const char *device;
        /* enroll */
        const char *unlock_key_file;
        uint32_t pcr_mask;
        bool pcr_mask_given;
        const char *pcr_bank;
        const char *pcr_value[CLI_PCR_MAX]; /* --pcr-value N=HEX: the HEX of PCR N, or NULL */
        bool recovery_key;
        const char *recovery_key_file;
        bool pin;
        const char *pin_file;
        bool attest;            /* enroll: bind the gate PCR to its predicted attested value */
        /* reseal, recover, remove */
        int token;
        bool token_given;
        /* recover: the escrow a first boot wrote, and the admin's private key that opens it */
        const char *escrow;
        const char *escrow_key;
        /* image-prepare */
        const char *key_file;   /* receives the build-time key */
        /* unlock */
        bool test;
        bool ask;
        bool recovery;
        /* attest */
        const char *hcl;        /* Azure HCL blob instead of a bare report */
        const char *vcek;       /* VCEK or VLEK (PEM or DER), optionally followed by its chain */
        const char *chain;      /* ASK/ASVK and ARK */
        const char *anchors;    /* trust-anchor directory (default: config) */
        const char *policy;     /* attestation policy (default: config) */
        const char *crl;
        const char *quote;      /* TPMS_ATTEST of a vTPM quote */
        const char *quote_sig;
        const char *pcr_values; /* "INDEX HEX" lines */
        const char *nonce;      /* hex */
        const char *source;     /* hcl-nv, tsm[:DIR], sev-guest[:DEVICE] instead of a file */
        const char *certs;      /* verify: certificate directory; fetch: where to write the table's */
        const char *timeout;    /* seconds to wait for a fresh report */
        /* measure, predict, cap */
        const char *config;     /* the configuration file in use (--config or the default) */
        bool verify;            /* measure: replay the log instead of extending */
        const char *log;        /* event log (default: config) */
        const char *binary;     /* predict: the binary (default: this one) */
        bool no_attest;         /* predict: the value before attestation */
} CliArgs;

typedef int (*VerbRun)(const Config *cfg, const CliArgs *args, int argc, char **argv);
/* Checks option combinations before the configuration is read or anything runs; a negative return
 * is a usage error (exit 2), already logged. */
typedef int (*VerbVerify)(const CliArgs *args, int argc, char **argv);

int verify_enroll(const CliArgs *args, int argc, char **argv);
int verify_unlock(const CliArgs *args, int argc, char **argv);
int verify_attest(const CliArgs *args, int argc, char **argv);
int verify_measure(const CliArgs *args, int argc, char **argv);
int verify_predict(const CliArgs *args, int argc, char **argv);
int verify_cap(const CliArgs *args, int argc, char **argv);
int verify_reseal(const CliArgs *args, int argc, char **argv);
int verify_remove(const CliArgs *args, int argc, char **argv);
int verify_recover(const CliArgs *args, int argc, char **argv);
int verify_image_prepare(const CliArgs *args, int argc, char **argv);
int verify_provision(const CliArgs *args, int argc, char **argv);

/* What `predict` digests: the binary (--binary, else this one), the configuration file in use, and
 * the anchors and policy (--anchors, --policy, else the configuration's). */
struct MeasureInputs;
void predict_inputs(const Config *cfg, const CliArgs *args, struct MeasureInputs *ret);

int verb_enroll(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_unlock(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_boot(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_attest(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_tempdisk(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_measure(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_predict(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_cap(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_status(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_reseal(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_recover(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_remove(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_provision(const Config *cfg, const CliArgs *args, int argc, char **argv);
int verb_image_prepare(const Config *cfg, const CliArgs *args, int argc, char **argv);
/* recover --escrow: the recovery key from the escrow (secmem) */
int escrow_read_key(const CliArgs *args, char **ret, size_t *ret_size);
