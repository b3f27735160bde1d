/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "exit-codes.h"
#include "log.h"
#include "macro.h"
#include "secmem.h"

#ifndef CVM_CONFIG_PATH
#define CVM_CONFIG_PATH "/etc/cvmcrypt/cvmcrypt.conf"
#endif

/* Verb bits, so that each option can say which verbs accept it. */
enum {
        V_ENROLL = 1u << 0,
        V_UNLOCK = 1u << 1,
        V_BOOT = 1u << 2,
        V_TEMPDISK = 1u << 3,
        V_ATTEST = 1u << 4,
        V_MEASURE = 1u << 5,
        V_PREDICT = 1u << 6,
        V_CAP = 1u << 7,
        V_STATUS = 1u << 8,
        V_RESEAL = 1u << 9,
        V_RECOVER = 1u << 10,
        V_REMOVE = 1u << 11,
        V_PROVISION = 1u << 12,
        V_IMAGE_PREPARE = 1u << 13,
        V_GLOBAL = 1u << 31, /* only options every verb accepts carry this bit */
        V_ALL = ~0u,
};

typedef struct Verb {
        const char *name;
        unsigned bit;
        const char *synopsis; /* positional arguments */
        unsigned min_args, max_args;
        const char *summary;
        VerbRun run;
        VerbVerify verify;
} Verb;

static const Verb verbs[] = {
        { "enroll", V_ENROLL, "DEV", 1, 1, "add a TPM2-sealed keyslot and token to a LUKS2 volume", verb_enroll, verify_enroll },
        { "unlock", V_UNLOCK, "DEV [NAME]", 1, 2, "attest if required, unseal and activate (or --test)", verb_unlock, verify_unlock },
        { "boot", V_BOOT, "", 0, 0, "the initramfs sequence: measure, attest, unlock, temp disk, cap", verb_boot, NULL },
        { "tempdisk", V_TEMPDISK, "", 0, 0, "format and mount the ephemeral temp disk with a fresh key", verb_tempdisk, NULL },
        { "attest", V_ATTEST, "verify|show|fetch [FILE]", 1, 2, "verify, show or fetch an SEV-SNP / Azure HCL report", verb_attest, verify_attest },
        { "measure", V_MEASURE, "", 0, 0, "extend the gate PCR and the event log; --verify replays the log", verb_measure, verify_measure },
        { "predict", V_PREDICT, "", 0, 0, "expected gate PCR value for a binary, config and policy", verb_predict, verify_predict },
        { "cap", V_CAP, "", 0, 0, "extend the gate PCR so nothing can unseal until the next boot", verb_cap, verify_cap },
        { "status", V_STATUS, "DEV", 1, 1, "keyslots, tokens, PCR bindings and whether it would unlock now", verb_status, NULL },
        { "reseal", V_RESEAL, "DEV", 1, 1, "enroll for the current PCRs, verify, then drop the old slot", verb_reseal, verify_reseal },
        { "recover", V_RECOVER, "DEV", 1, 1, "unlock with the recovery key and re-enroll the TPM slot", verb_recover, verify_recover },
        { "remove", V_REMOVE, "DEV", 1, 1, "remove a token and its keyslot, never the last way in", verb_remove, verify_remove },
        { "provision", V_PROVISION, "DEV [NAME]", 0, 2, "first boot: re-key a build-time volume and seal it to this VM", verb_provision, verify_provision },
        { "image-prepare", V_IMAGE_PREPARE, "IMAGE", 1, 1, "encrypt a disk image for provisioning on first boot", verb_image_prepare, verify_image_prepare },
};

enum {
        OPT_JSON = 0x100,
        OPT_CONFIG,
        OPT_TPM,
        OPT_KERNEL_CMDLINE,
        OPT_VERSION,
        OPT_DRY_RUN,
        OPT_DEVICE,
        OPT_UNLOCK_KEY_FILE,
        OPT_PCRS,
        OPT_PCR_BANK,
        OPT_PCR_VALUE,
        OPT_RECOVERY_KEY,
        OPT_RECOVERY_KEY_FILE,
        OPT_PIN,
        OPT_PIN_FILE,
        OPT_TEST,
        OPT_ASK,
        OPT_RECOVERY,
        OPT_HCL,
        OPT_VCEK,
        OPT_CHAIN,
        OPT_ANCHORS,
        OPT_POLICY,
        OPT_CRL,
        OPT_QUOTE,
        OPT_QUOTE_SIG,
        OPT_PCR_VALUES,
        OPT_NONCE,
        OPT_TOKEN,
        OPT_SOURCE,
        OPT_CERTS,
        OPT_TIMEOUT,
        OPT_VERIFY,
        OPT_LOG,
        OPT_BINARY,
        OPT_NO_ATTEST,
        OPT_ESCROW,
        OPT_ESCROW_KEY,
        OPT_KEY_FILE,
        OPT_ATTEST,
        OPT_NO_TEMPDISK,
        OPT_RESUME_ONLINE,
};

typedef struct OptionDef {
        struct option opt;
        unsigned verbs;
        const char *arg;
        const char *help;
} OptionDef;

static const OptionDef option_defs[] = {
        { { "help", no_argument, NULL, 'h' }, V_ALL, NULL, "show this help" },
        { { "version", no_argument, NULL, OPT_VERSION }, V_ALL, NULL, "show the version" },
        { { "verbose", no_argument, NULL, 'v' }, V_ALL, NULL, "log debug messages" },
        { { "json", no_argument, NULL, OPT_JSON }, V_ALL, NULL, "machine-readable output" },
        { { "config", required_argument, NULL, OPT_CONFIG }, V_ALL, "FILE", "configuration file (default " CVM_CONFIG_PATH ")" },
        { { "tpm", required_argument, NULL, OPT_TPM }, V_ALL, "TCTI", "TPM to use, e.g. device:/dev/tpmrm0 or swtpm:path=SOCK" },
        { { "kernel-cmdline", required_argument, NULL, OPT_KERNEL_CMDLINE }, V_ALL, "FILE", "read cvmcrypt.* settings from FILE instead of /proc/cmdline" },
        { { "dry-run", no_argument, NULL, OPT_DRY_RUN }, V_BOOT | V_TEMPDISK, NULL, "validate and print the plan; touch nothing" },
        { { "device", required_argument, NULL, OPT_DEVICE }, V_TEMPDISK, "DEV", "the temp disk (instead of detection)" },
        { { "no-tempdisk", no_argument, NULL, OPT_NO_TEMPDISK }, V_BOOT, NULL, "leave the temp disk to cvmcrypt-tempdisk.service" },
        { { "resume-online", no_argument, NULL, OPT_RESUME_ONLINE }, V_PROVISION, NULL, "run the re-key a background provisioning left on the open volume (DEV NAME, or every one handed over)" },
        { { "unlock-key-file", required_argument, NULL, OPT_UNLOCK_KEY_FILE }, V_ENROLL | V_RESEAL | V_IMAGE_PREPARE, "FILE", "existing passphrase or key file ('-': stdin); default: ask" },
        { { "pcrs", required_argument, NULL, OPT_PCRS }, V_ENROLL | V_RESEAL | V_RECOVER | V_IMAGE_PREPARE, "LIST", "PCRs to bind, e.g. 0,4,7 (default 7; reseal: the old token's; image-prepare: besides the gate PCR)" },
        { { "pcr-bank", required_argument, NULL, OPT_PCR_BANK }, V_ENROLL | V_RESEAL | V_RECOVER | V_PREDICT | V_IMAGE_PREPARE, "BANK", "sha256 (default) or sha384" },
        { { "key-file", required_argument, NULL, OPT_KEY_FILE }, V_IMAGE_PREPARE, "FILE", "write the build-time key here (created 0600, never overwritten)" },
        { { "escrow", required_argument, NULL, OPT_ESCROW }, V_RECOVER, "FILE", "the recovery key escrow a first boot wrote (needs --key)" },
        { { "key", required_argument, NULL, OPT_ESCROW_KEY }, V_RECOVER, "FILE", "--escrow: the admin's private key (PEM)" },
        { { "pcr-value", required_argument, NULL, OPT_PCR_VALUE }, V_ENROLL | V_RESEAL | V_RECOVER, "N=HEX", "bind PCR N to a predicted value instead of the current one" },
        { { "recovery-key", no_argument, NULL, OPT_RECOVERY_KEY }, V_ENROLL, NULL, "also add a recovery key, printed once" },
        { { "recovery-key-file", required_argument, NULL, OPT_RECOVERY_KEY_FILE }, V_ENROLL | V_UNLOCK | V_RESEAL | V_RECOVER, "FILE", "enroll: write the new recovery key here (0600); others: read it from here" },
        { { "pin", no_argument, NULL, OPT_PIN }, V_ENROLL | V_RESEAL | V_RECOVER, NULL, "also require a PIN (asked, or from --pin-file)" },
        { { "pin-file", required_argument, NULL, OPT_PIN_FILE }, V_ENROLL | V_UNLOCK | V_RESEAL | V_RECOVER, "FILE", "read the PIN from FILE" },
        { { "token", required_argument, NULL, OPT_TOKEN }, V_RESEAL | V_RECOVER | V_REMOVE, "N", "the token to replace or remove (see status)" },
        { { "test", no_argument, NULL, OPT_TEST }, V_UNLOCK, NULL, "check the key without activating" },
        { { "ask", no_argument, NULL, OPT_ASK }, V_UNLOCK, NULL, "if the TPM refuses, ask for the recovery key" },
        { { "recovery", no_argument, NULL, OPT_RECOVERY }, V_UNLOCK, NULL, "unlock with the recovery key instead of the TPM" },
        { { "hcl", required_argument, NULL, OPT_HCL }, V_ATTEST, "FILE", "an Azure HCL report (vTPM NV 0x01400001) instead of a bare report" },
        { { "vcek", required_argument, NULL, OPT_VCEK }, V_ATTEST, "FILE", "verify: the VCEK or VLEK (PEM or DER), optionally with its chain" },
        { { "chain", required_argument, NULL, OPT_CHAIN }, V_ATTEST, "FILE", "verify: ASK (or ASVK) and ARK, PEM" },
        { { "anchors", required_argument, NULL, OPT_ANCHORS }, V_ATTEST | V_PREDICT | V_ENROLL, "DIR", "attest verify, predict, enroll --attest: trusted ARKs (default from the configuration)" },
        { { "policy", required_argument, NULL, OPT_POLICY }, V_ATTEST | V_PREDICT | V_ENROLL, "FILE", "attest verify, predict, enroll --attest: attestation policy (default from the configuration)" },
        { { "crl", required_argument, NULL, OPT_CRL }, V_ATTEST, "FILE", "verify: a CRL issued by the ARK or ASK" },
        { { "quote", required_argument, NULL, OPT_QUOTE }, V_ATTEST, "FILE", "verify --hcl: a vTPM quote (TPMS_ATTEST)" },
        { { "quote-sig", required_argument, NULL, OPT_QUOTE_SIG }, V_ATTEST, "FILE", "verify --hcl: the quote's signature" },
        { { "pcr-values", required_argument, NULL, OPT_PCR_VALUES }, V_ATTEST, "FILE", "verify --hcl: quoted SHA-256 PCR values, 'INDEX HEX' lines" },
        { { "nonce", required_argument, NULL, OPT_NONCE }, V_ATTEST, "HEX", "verify --hcl: the quote's expected extraData; fetch: the report data" },
        { { "source", required_argument, NULL, OPT_SOURCE }, V_ATTEST, "SOURCE", "a live report: hcl-nv, tsm[:DIR] or sev-guest[:DEVICE]" },
        { { "certs", required_argument, NULL, OPT_CERTS }, V_ATTEST, "DIR", "verify: vcek, vlek, ask, ark .pem/.der; fetch: write the report's certificates" },
        { { "timeout", required_argument, NULL, OPT_TIMEOUT }, V_ATTEST, "SECONDS", "--source: how long to wait for a fresh report (default 10)" },
        { { "verify", no_argument, NULL, OPT_VERIFY }, V_MEASURE, NULL, "replay the event log against the PCRs instead of extending" },
        { { "log", required_argument, NULL, OPT_LOG }, V_MEASURE | V_CAP, "FILE", "event log (default from the configuration)" },
        { { "binary", required_argument, NULL, OPT_BINARY }, V_PREDICT | V_ENROLL, "FILE", "predict, enroll --attest: the cvmcrypt binary of the image (default: this one)" },
        { { "attest", no_argument, NULL, OPT_ATTEST }, V_ENROLL | V_RESEAL | V_RECOVER, NULL, "bind the gate PCR to its value after attestation passed (predicted)" },
        { { "no-attest", no_argument, NULL, OPT_NO_ATTEST }, V_PREDICT, NULL, "the value before attestation (for volumes that do not demand it)" },
};

#define OPTIONS_MAX (ELEMENTSOF(option_defs) + 1)

static const char *arg_config = CVM_CONFIG_PATH;
static bool arg_config_given;
static const char *arg_tpm;
static const char *arg_kernel_cmdline = "/proc/cmdline";
static CliArgs arg_cli;

static const Verb *find_verb(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void print_options(unsigned verb_bit, bool verb_specific) {
        for (size_t i = 0; i < ELEMENTSOF(option_defs); i++) {
                const OptionDef *d = &option_defs[i];
                char left[64];

                if (verb_specific ? (d->verbs == V_ALL || !(d->verbs & verb_bit)) : d->verbs != V_ALL)
                        continue;
                (void) snprintf(left, sizeof(left), "--%s%s%s", d->opt.name, d->arg ? " " : "", d->arg ? d->arg : "");
                printf("  %-24s %s\n", left, d->help);
        }
}

static void help_main(void) {
        printf("Usage: cvmcrypt [OPTIONS] COMMAND [ARGS...]\n\n"
               "Confidential-VM disk encryption: vTPM sealing gated on SEV-SNP attestation.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-14s %s\n", verbs[i].name, verbs[i].summary);
        printf("\nOptions:\n");
        print_options(V_ALL, false);
        printf("\nRun 'cvmcrypt COMMAND --help' for a command's options. See cvmcrypt(8).\n");
}

static bool verb_has_options(const Verb *v) {
        for (size_t i = 0; i < ELEMENTSOF(option_defs); i++)
                if (option_defs[i].verbs != V_ALL && (option_defs[i].verbs & v->bit))
                        return true;
        return false;
}

static void help_verb(const Verb *v) {
        printf("Usage: cvmcrypt %s [OPTIONS]%s%s\n\n%s.\n", v->name, *v->synopsis ? " " : "", v->synopsis, v->summary);
        if (verb_has_options(v)) {
                printf("\nOptions:\n");
                print_options(v->bit, true);
        }
        printf("\nGlobal options:\n");
        print_options(V_ALL, false);
}

static void build_options(unsigned verb_bit, struct option *out) {
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(option_defs); i++)
                if (option_defs[i].verbs & verb_bit)
                        out[n++] = option_defs[i].opt;
        out[n] = (struct option){};
}

/* "0,4,7" or "0+4+7": each PCR 0..23 once, at least one. */
static int parse_pcr_list(const char *s, uint32_t *ret) {
        uint32_t mask = 0;

        do {
                unsigned v = 0;
                size_t digits = 0;

                for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
                        v = v * 10 + (unsigned) (*s - '0');
                if (digits == 0 || v >= CLI_PCR_MAX || (mask & (1u << v)) || (*s && *s != ',' && *s != '+'))
                        return -EINVAL;
                mask |= 1u << v;
        } while (*s && *++s);
        if (mask == 0 || s[-1] == ',' || s[-1] == '+')
                return -EINVAL;
        *ret = mask;
        return 0;
}

/* A LUKS2 token number: 0..31, decimal digits only. */
static int parse_token_id(const char *s, int *ret) {
        unsigned v = 0;
        size_t digits = 0;

        for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
                v = v * 10 + (unsigned) (*s - '0');
        if (digits == 0 || *s || v >= 32)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* --pcr-value N=HEX; the hex is checked against the bank's digest size by the verb. */
static int parse_pcr_value(const char *s, const char *context) {
        uint32_t mask;
        const char *eq = strchr(s, '=');
        char num[4] = "";

        if (eq && (size_t) (eq - s) < sizeof(num))
                memcpy(num, s, (size_t) (eq - s));
        if (!eq || parse_pcr_list(num, &mask) < 0 || __builtin_popcount(mask) != 1 || !eq[1])
                return log_error_errno(-EINVAL, "%s: --pcr-value '%.64s' is not N=HEX", context, s);
        if (arg_cli.pcr_value[__builtin_ctz(mask)])
                return log_error_errno(-EINVAL, "%s: --pcr-value for PCR %d given twice", context, __builtin_ctz(mask));
        arg_cli.pcr_value[__builtin_ctz(mask)] = eq + 1;
        return 0;
}

/* Returns 1 when the caller should exit 0 (help or version printed), 0 to go on, -EINVAL on misuse. */
static int handle_option(int c, const char *context, const Verb *v, char **argv) {
        switch (c) {
        case 'h':
                if (v)
                        help_verb(v);
                else
                        help_main();
                return 1;
        case OPT_VERSION:
                printf("cvmcrypt %s\n", PACKAGE_VERSION);
                return 1;
        case 'v':
                log_set_max_level(LOG_DEBUG);
                return 0;
        case OPT_JSON:
                arg_cli.json = true;
                return 0;
        case OPT_CONFIG:
                arg_config = optarg;
                arg_config_given = true;
                return 0;
        case OPT_TPM:
                arg_tpm = optarg;
                return 0;
        case OPT_KERNEL_CMDLINE:
                arg_kernel_cmdline = optarg;
                return 0;
        case OPT_DRY_RUN:
                arg_cli.dry_run = true;
                return 0;
        case OPT_DEVICE:
                arg_cli.device = optarg;
                return 0;
        case OPT_UNLOCK_KEY_FILE:
                arg_cli.unlock_key_file = optarg;
                return 0;
        case OPT_PCRS:
                arg_cli.pcr_mask_given = true;
                if (parse_pcr_list(optarg, &arg_cli.pcr_mask) < 0)
                        return log_error_errno(-EINVAL, "%s: --pcrs '%.64s' is not a list of PCRs 0-23 such as 0,4,7",
                                               context, optarg);
                return 0;
        case OPT_PCR_BANK:
                if (strcmp(optarg, "sha256") != 0 && strcmp(optarg, "sha384") != 0)
                        return log_error_errno(-EINVAL, "%s: --pcr-bank must be sha256 or sha384", context);
                arg_cli.pcr_bank = optarg;
                return 0;
        case OPT_PCR_VALUE:
                return parse_pcr_value(optarg, context);
        case OPT_RECOVERY_KEY:
                arg_cli.recovery_key = true;
                return 0;
        case OPT_RECOVERY_KEY_FILE:
                arg_cli.recovery_key_file = optarg;
                return 0;
        case OPT_PIN:
                arg_cli.pin = true;
                return 0;
        case OPT_PIN_FILE:
                arg_cli.pin_file = optarg;
                return 0;
        case OPT_TEST:
                arg_cli.test = true;
                return 0;
        case OPT_ASK:
                arg_cli.ask = true;
                return 0;
        case OPT_RECOVERY:
                arg_cli.recovery = true;
                return 0;
        case OPT_HCL:
                arg_cli.hcl = optarg;
                return 0;
        case OPT_VCEK:
                arg_cli.vcek = optarg;
                return 0;
        case OPT_CHAIN:
                arg_cli.chain = optarg;
                return 0;
        case OPT_ANCHORS:
                arg_cli.anchors = optarg;
                return 0;
        case OPT_POLICY:
                arg_cli.policy = optarg;
                return 0;
        case OPT_CRL:
                arg_cli.crl = optarg;
                return 0;
        case OPT_QUOTE:
                arg_cli.quote = optarg;
                return 0;
        case OPT_QUOTE_SIG:
                arg_cli.quote_sig = optarg;
                return 0;
        case OPT_PCR_VALUES:
                arg_cli.pcr_values = optarg;
                return 0;
        case OPT_NONCE:
                arg_cli.nonce = optarg;
                return 0;
        case OPT_SOURCE:
                arg_cli.source = optarg;
                return 0;
        case OPT_CERTS:
                arg_cli.certs = optarg;
                return 0;
        case OPT_TIMEOUT:
                arg_cli.timeout = optarg;
                return 0;
        case OPT_VERIFY:
                arg_cli.verify = true;
                return 0;
        case OPT_LOG:
                arg_cli.log = optarg;
                return 0;
        case OPT_BINARY:
                arg_cli.binary = optarg;
                return 0;
        case OPT_NO_ATTEST:
                arg_cli.no_attest = true;
                return 0;
        case OPT_ESCROW:
                arg_cli.escrow = optarg;
                return 0;
        case OPT_ESCROW_KEY:
                arg_cli.escrow_key = optarg;
                return 0;
        case OPT_KEY_FILE:
                arg_cli.key_file = optarg;
                return 0;
        case OPT_ATTEST:
                arg_cli.attest = true;
                return 0;
        case OPT_NO_TEMPDISK:
                arg_cli.no_tempdisk = true;
                return 0;
        case OPT_RESUME_ONLINE:
                arg_cli.resume_online = true;
                return 0;
        case OPT_TOKEN:
                if (parse_token_id(optarg, &arg_cli.token) < 0)
                        return log_error_errno(-EINVAL, "%s: --token '%.64s' is not a token number 0-31", context, optarg);
                arg_cli.token_given = true;
                return 0;
        case ':':
                return log_error_errno(-EINVAL, "%s%soption '%s' needs an argument", context, *context ? ": " : "",
                                       argv[optind - 1]);
        default:
                if (optopt && optopt < 0x100)
                        return log_error_errno(-EINVAL, "%s%sunknown option '-%c'", context, *context ? ": " : "",
                                               optopt);
                return log_error_errno(-EINVAL, "%s%sunknown option '%.64s'", context, *context ? ": " : "",
                                       argv[optind - 1]);
        }
}

/* Parses options up to the first non-option (global) or through the end (verb). */
static int parse_options(int argc, char **argv, const Verb *v, const char *context) {
        struct option longopts[OPTIONS_MAX];
        int c;

        build_options(v ? v->bit : V_GLOBAL, longopts);
        opterr = 0;
        while ((c = getopt_long(argc, argv, v ? ":hv" : "+:hv", longopts, NULL)) >= 0) {
                int r = handle_option(c, context, v, argv);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int exit_status(int r) {
        switch (-r) {
        case 0:
                return EXIT_OK;
        case EACCES:
        case EPERM:
        case ENOKEY:
        case EKEYREJECTED:
                return EXIT_DENIED;
        case EBADE:
                return EXIT_ATTESTATION;
        case EREMCHG:
        case ENOLCK:
                return EXIT_DENIED;
        case ENODEV:
        case ENOENT:
        case ENXIO:
        case EBUSY:
        case ENOTBLK:
        case EUCLEAN:
                return EXIT_DEVICE;
        case ECOMM:
        case EREMOTEIO:
                return EXIT_TPM;
        case EOPNOTSUPP:
                return EXIT_UNAVAILABLE;
        default:
                return EXIT_FAILURE_GENERIC;
        }
}

/* --tpm is the most specific source and wins over file and kernel command line; it goes through
 * the same checks as tpm= in the file. */
static int apply_tpm_option(Config *cfg) {
        _cleanup_free_ char *line = NULL;
        ConfigError err;
        int r;

        if (!arg_tpm)
                return 0;
        if (asprintf(&line, "tpm=%s", arg_tpm) < 0)
                return log_error_errno(-ENOMEM, "out of memory");
        r = config_parse_file_text(cfg, line, strlen(line), "--tpm", &err);
        if (r < 0)
                return log_error_errno(r, "%s", err.message);
        return 0;
}

static int load_config(Config *cfg) {
        ConfigSources src = { .file = arg_config, .file_required = arg_config_given, .cmdline = arg_kernel_cmdline };
        ConfigError err;
        int r;

        r = config_load(cfg, &src, &err);
        if (r < 0)
                return log_error_errno(r, "%s", err.message);
        r = apply_tpm_option(cfg);
        if (r < 0)
                config_done(cfg);
        return r;
}

static int run(int argc, char **argv) {
        const Verb *v;
        char context[64];
        Config cfg;
        int r;

        r = parse_options(argc, argv, NULL, "");
        if (r != 0)
                return r > 0 ? EXIT_OK : EXIT_USAGE;
        if (optind >= argc) {
                log_error("no command given (see 'cvmcrypt --help')");
                return EXIT_USAGE;
        }
        v = find_verb(argv[optind]);
        if (!v) {
                log_error("unknown command '%.64s' (see 'cvmcrypt --help')", argv[optind]);
                return EXIT_USAGE;
        }
        (void) snprintf(context, sizeof(context), "%s", v->name);
        argc -= optind;
        argv += optind;
        optind = 0; /* full reinitialisation of getopt for the verb's own arguments */
        r = parse_options(argc, argv, v, context);
        if (r != 0)
                return r > 0 ? EXIT_OK : EXIT_USAGE;
        if ((unsigned) (argc - optind) < v->min_args || (unsigned) (argc - optind) > v->max_args) {
                log_error("%s: expected %s%s", v->name, *v->synopsis ? v->synopsis : "no arguments",
                          argc - optind > (int) v->max_args ? ", got extra arguments" : "");
                return EXIT_USAGE;
        }
        if (v->verify && v->verify(&arg_cli, argc - optind, argv + optind) < 0)
                return EXIT_USAGE;
        r = load_config(&cfg);
        if (r < 0)
                return EXIT_CONFIG;
        arg_cli.config = arg_config;
        r = v->run(&cfg, &arg_cli, argc - optind, argv + optind);
        config_done(&cfg);
        return exit_status(r);
}

int main(int argc, char **argv) {
        LogTarget target = LOG_TARGET_DEFAULT;
        int status;

        /* Before anything could hold a secret: no core dumps, no ptrace by other users. */
        if (secmem_protect_process() < 0) {
                fprintf(stderr, "cvmcrypt: cannot disable core dumps: %m\n");
                return EXIT_FAILURE_GENERIC;
        }
        log_open(&target);
        status = run(argc, argv);
        if (fflush(stdout) != 0 && status == EXIT_OK) {
                log_error("cannot write output: %m");
                status = EXIT_FAILURE_GENERIC;
        }
        log_close();
        return status;
}
