/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* enroll and unlock: the command-line side of luks.c. Logs once, here. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ask.h"
#include "cli.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "luks.h"
#include "macro.h"
#include "secmem.h"
#include "tpm.h"

#define DEFAULT_PCR_MASK (1u << 7)

static int read_pin(const CliArgs *args, bool confirm, char **ret, size_t *ret_size) {
        _cleanup_secmem_ char *again = NULL;
        size_t again_size;
        int r;

        if (args->pin_file) {
                r = ask_read_key_file(args->pin_file, ret, ret_size);
                if (r < 0)
                        return log_error_errno(r, "cannot read the PIN from %s: %m", args->pin_file);
                /* A PIN is typed text: a trailing newline from `echo` is not part of it. */
                if (*ret_size > 0 && (*ret)[*ret_size - 1] == '\n')
                        (*ret)[--*ret_size] = '\0';
                return 0;
        }
        r = ask_secret("PIN:", ret, ret_size);
        if (r < 0)
                return log_error_errno(r, "cannot ask for the PIN: %m");
        if (!confirm)
                return 0;
        r = ask_secret("PIN (again):", &again, &again_size);
        if (r < 0 || again_size != *ret_size || memcmp(again, *ret, again_size) != 0) {
                *ret = secmem_free(*ret);
                return log_error_errno(-EINVAL, "the PINs do not match");
        }
        return 0;
}

/* Option combinations, checked before anything runs; a failure is a usage error (exit 2). */
static int build_enroll_params(const CliArgs *args, EnrollParams *p) {
        size_t size;
        int r;

        *p = (EnrollParams){ .pcrs.mask = args->pcr_mask_given ? args->pcr_mask : DEFAULT_PCR_MASK,
                             .recovery_key = args->recovery_key || args->recovery_key_file };
        r = tpm_bank_from_name(args->pcr_bank ? args->pcr_bank : "sha256", &p->pcrs.bank);
        if (r < 0)
                return log_error_errno(r, "enroll: unknown PCR bank");
        size = tpm_bank_digest_size(p->pcrs.bank);
        for (unsigned i = 0; i < CLI_PCR_MAX; i++) {
                const char *hex = args->pcr_value[i];

                if (!hex)
                        continue;
                if (!(p->pcrs.mask & (1u << i)))
                        return log_error_errno(-EINVAL, "enroll: --pcr-value %u is not among the bound PCRs (--pcrs)", i);
                if (hex_decode_exact(hex, strlen(hex), p->pcrs.value[i], size) < 0)
                        return log_error_errno(-EINVAL, "enroll: --pcr-value %u is not %zu hex digits", i, 2 * size);
                p->predicted_mask |= 1u << i;
        }
        return 0;
}

int verify_enroll(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        EnrollParams p;

        return build_enroll_params(args, &p);
}

int verify_unlock(const CliArgs *args, int argc, char **argv _unused_) {
        if (args->test && argc > 1)
                return log_error_errno(-EINVAL, "unlock: --test does not activate, so it takes no NAME");
        if (args->recovery && args->pin_file)
                return log_error_errno(-EINVAL, "unlock: --pin-file is for the TPM path, not --recovery");
        if (args->recovery_key_file && !args->recovery && !args->ask)
                return log_error_errno(-EINVAL, "unlock: --recovery-key-file needs --recovery or --ask");
        return 0;
}

/* Written once, 0600, never over an existing file. */
static int write_recovery_key(const char *path, const char *key) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        size_t len = strlen(key);

        if (fd < 0)
                return negative_errno();
        if (write(fd, key, len) != (ssize_t) len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static void print_pcrs(uint32_t mask) {
        const char *sep = "";

        for (unsigned i = 0; i < CLI_PCR_MAX; i++)
                if (mask & (1u << i)) {
                        printf("%s%u", sep, i);
                        sep = ",";
                }
}

static int print_enroll_json(const EnrollParams *p, const EnrollResult *res, bool show_key) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *pcrs = json_object_new_array();

        if (!o || !pcrs)
                return -ENOMEM;
        for (unsigned i = 0; i < CLI_PCR_MAX; i++)
                if (p->pcrs.mask & (1u << i))
                        json_object_array_add(pcrs, json_object_new_int((int) i));
        json_object_object_add(o, "keyslot", json_object_new_int(res->tpm_keyslot));
        json_object_object_add(o, "token", json_object_new_int(res->tpm_token));
        json_object_object_add(o, "pcr-bank", json_object_new_string(tpm_bank_name(p->pcrs.bank)));
        json_object_object_add(o, "pcrs", json_object_get(pcrs));
        json_object_object_add(o, "pin", json_object_new_boolean(p->pin != NULL));
        if (res->recovery_keyslot >= 0) {
                json_object_object_add(o, "recovery-keyslot", json_object_new_int(res->recovery_keyslot));
                json_object_object_add(o, "recovery-token", json_object_new_int(res->recovery_token));
        }
        /* The key never goes into a json_object (json-c cannot wipe its copies): splice it into the
         * text; modhex and dashes need no escaping. */
        if (show_key) {
                const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                printf("%.*s,\"recovery-key\":\"%s\"}\n", (int) strlen(text) - 1, text, res->recovery_key);
        } else
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return 0;
}

static void print_enroll_text(const EnrollParams *p, const EnrollResult *res, bool show_key) {
        printf("Enrolled TPM2 keyslot %d (token %d), bound to %s PCRs ", res->tpm_keyslot, res->tpm_token,
               tpm_bank_name(p->pcrs.bank));
        print_pcrs(p->pcrs.mask);
        printf("%s.\n", p->pin ? " and a PIN" : "");
        if (res->recovery_keyslot < 0)
                return;
        printf("Added recovery keyslot %d (token %d).\n", res->recovery_keyslot, res->recovery_token);
        if (show_key)
                printf("Recovery key (shown once; store it safely, it opens the volume on its own):\n\n    %s\n\n",
                       res->recovery_key);
}

static int report_enroll(const CliArgs *args, const EnrollParams *p, const EnrollResult *res) {
        bool show_key = res->recovery_key && !args->recovery_key_file;
        int r;

        if (res->recovery_key && args->recovery_key_file) {
                r = write_recovery_key(args->recovery_key_file, res->recovery_key);
                if (r < 0)
                        return log_error_errno(r, "enroll: cannot write the recovery key to %s (the slot exists; remove it or print the key with a new enroll): %m",
                                               args->recovery_key_file);
        }
        if (show_key && !isatty(STDOUT_FILENO))
                log_warning("the recovery key is written to standard output, which is not a terminal");
        if (args->json)
                return print_enroll_json(p, res, show_key);
        print_enroll_text(p, res, show_key);
        return 0;
}

int verb_enroll(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_secmem_ char *unlock = NULL, *pin = NULL;
        EnrollResult res = { -1, -1, -1, -1, NULL };
        char why[LUKS_WHY_LEN] = "";
        size_t unlock_size = 0, pin_size = 0;
        EnrollParams p;
        int r;

        r = build_enroll_params(args, &p);
        if (r < 0)
                return r;
        /* Before anyone is asked for a passphrase or PIN. */
        if (access(argv[0], R_OK | W_OK) < 0)
                return log_error_errno(negative_errno(), "enroll: cannot open %s: %m", argv[0]);
        if (args->pin || args->pin_file) {
                r = read_pin(args, true, &pin, &pin_size);
                if (r < 0)
                        return r;
                p.pin = pin;
                p.pin_size = pin_size;
        }
        r = args->unlock_key_file ? ask_read_key_file(args->unlock_key_file, &unlock, &unlock_size)
                                  : ask_secret("Passphrase of the volume:", &unlock, &unlock_size);
        if (r < 0)
                return log_error_errno(r, "enroll: cannot read the existing passphrase: %m");
        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "enroll: cannot open the TPM %s: %m", cfg->tpm);
        r = luks_enroll(argv[0], unlock, unlock_size, tpm, &p, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "enroll: %s", why);
        r = report_enroll(args, &p, &res);
        enroll_result_done(&res);
        return r;
}

static int unlock_with_recovery(const CliArgs *args, const char *device, const char *name) {
        _cleanup_secmem_ char *key = NULL;
        char why[LUKS_WHY_LEN] = "";
        size_t size = 0;
        int r;

        r = args->recovery_key_file ? ask_read_key_file(args->recovery_key_file, &key, &size)
                                    : ask_secret("Recovery key:", &key, &size);
        if (r < 0)
                return log_error_errno(r, "unlock: cannot read the recovery key: %m");
        r = luks_unlock_recovery(device, name, key, size, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "unlock: %s", why);
        return 0;
}

static int unlock_with_tpm(const Config *cfg, const CliArgs *args, const char *device, const char *name) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_secmem_ char *pin = NULL;
        char why[LUKS_WHY_LEN] = "";
        size_t pin_size = 0;
        int r;

        if (args->pin_file) {
                r = read_pin(args, false, &pin, &pin_size);
                if (r < 0)
                        return r;
        }
        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "unlock: cannot open the TPM %s: %m", cfg->tpm);
        r = luks_unlock_tpm(device, name, tpm, pin, pin_size, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "unlock: %s", why);
        return 0;
}

int verb_unlock(const Config *cfg, const CliArgs *args, int argc, char **argv) {
        const char *device = argv[0], *name = args->test ? NULL : argc > 1 ? argv[1] : "";
        int r;

        if (args->recovery)
                r = unlock_with_recovery(args, device, name);
        else {
                r = unlock_with_tpm(cfg, args, device, name);
                if (r < 0 && args->ask)
                        r = unlock_with_recovery(args, device, name);
        }
        if (r < 0)
                return r;
        if (args->test)
                printf("%s: key verified (not activated)\n", device);
        else
                printf("%s: activated as %s\n", device, *name ? name : "luks-UUID");
        return 0;
}
