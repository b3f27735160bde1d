/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* enroll and unlock: the command-line side of luks.c. Logs once, here. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ask.h"
#include "attest-gate.h"
#include "cli.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "luks.h"
#include "macro.h"
#include "measure.h"
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

        if ((args->binary || args->anchors || args->policy) && !args->attest)
                return log_error_errno(-EINVAL, "enroll: --binary, --anchors and --policy are for --attest");
        return build_enroll_params(args, &p);
}

/* --attest: the gate PCR bound to the value `predict` computes with the attested event, and the
 * policy's digest recorded in the token, so unlock knows to attest first. */
static int bind_attested_gate(const Config *cfg, const CliArgs *args, EnrollParams *p) {
        char why[MEASURE_WHY_MAX] = "";
        unsigned gate = cfg->gate_pcr;
        MeasureInputs in;
        MeasurePlan plan;
        int r;

        if (!cfg->attest)
                return log_error_errno(-EINVAL, "enroll --attest: the configuration does not attest (set attest= and policy=)");
        if (p->predicted_mask & (1u << gate))
                return log_error_errno(-EINVAL, "enroll --attest: --pcr-value %u conflicts with --attest, which predicts the gate PCR",
                                       gate);
        predict_inputs(cfg, args, &in);
        r = measure_plan(&in, &plan, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "enroll --attest: %s", why);
        r = measure_plan_add_attested(&plan);
        if (r >= 0)
                r = measure_predict(&plan, p->pcrs.bank, p->pcrs.value[gate]);
        if (r < 0)
                return log_error_errno(r, "enroll --attest: cannot predict PCR %u: %m", gate);
        p->pcrs.mask |= 1u << gate;
        p->predicted_mask |= 1u << gate;
        p->has_attest = true;
        memcpy(p->attest, plan.policy_digest, sizeof(p->attest));
        return 0;
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

static const char *pcr_word(uint32_t mask) {
        return (mask & (mask - 1)) ? "PCRs" : "PCR";
}

/* "0,4,7": PCRs, keyslots or tokens. */
static void print_list(uint32_t mask) {
        const char *sep = "";

        for (unsigned i = 0; i < 32; i++)
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
        if (p->has_attest && json_add_hex(o, "attest", p->attest, sizeof(p->attest)) < 0)
                return -ENOMEM;
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
        printf("Enrolled TPM2 keyslot %d (token %d), bound to %s %s ", res->tpm_keyslot, res->tpm_token,
               tpm_bank_name(p->pcrs.bank), pcr_word(p->pcrs.mask));
        print_list(p->pcrs.mask);
        printf("%s.\n", p->pin ? " and a PIN" : "");
        if (p->has_attest) {
                char pd[65];

                hex_encode(p->attest, sizeof(p->attest), pd);
                printf("Unlock attests first: the gate PCR is bound to its value after attestation against policy sha256 %s.\n",
                       pd);
        }
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
        if (r >= 0 && args->attest)
                r = bind_attested_gate(cfg, args, &p);
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
        AttestGateState gate = {};
        const LuksUnlockHooks hooks = { .attest = attest_gate_token, .userdata = &gate };
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
        gate = (AttestGateState){ .cfg = cfg, .tpm = tpm };
        r = luks_unlock_tpm(device, name, tpm, pin, pin_size, &hooks, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "unlock: %s", why);
        if (gate.ran)
                log_info("unlock: attested: %s", gate.why);
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

/* ---- status ---- */

static const char *verdict_word(LuksVerdict v) {
        return v == LUKS_VERDICT_YES ? "yes" : v == LUKS_VERDICT_NO ? "no" : "unknown";
}

static int slots_json(uint32_t mask, json_object **ret) {
        json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (int i = 0; i < LUKS_SLOTS_MAX; i++)
                if ((mask & (1u << i)) && json_object_array_add(a, json_object_new_int(i)) < 0) {
                        json_object_put(a);
                        return -ENOMEM;
                }
        *ret = a;
        return 0;
}

static int tpm2_status_json(json_object *o, const LuksTokenStatus *ts) {
        const Tpm2Token *t = &ts->tpm2_token;
        size_t size = tpm_bank_digest_size(t->pcrs.bank);
        json_object *pcrs = json_object_new_array();
        int r;

        if (!pcrs)
                return -ENOMEM;
        r = json_add(o, "pcrs", pcrs);
        for (unsigned i = 0; r >= 0 && i < TPM_PCR_MAX; i++) {
                json_object *p;

                if (!(t->pcrs.mask & (1u << i)))
                        continue;
                p = json_object_new_object();
                if (!p || json_object_array_add(pcrs, p) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                r = json_add(p, "pcr", json_object_new_int((int) i));
                if (r >= 0)
                        r = json_add_hex(p, "sealed", t->pcrs.value[i], size);
                if (r >= 0 && ts->pcrs_read)
                        r = json_add_hex(p, "current", ts->now.value[i], size);
        }
        if (r >= 0)
                r = json_add(o, "pcr-bank", json_object_new_string(tpm_bank_name(t->pcrs.bank)));
        if (r >= 0)
                r = json_add(o, "pin", json_object_new_boolean(t->pin));
        if (r >= 0)
                r = json_add_hex(o, "srk-name", t->srk_name, t->srk_name_size);
        if (r >= 0 && ts->srk_read)
                r = json_add(o, "srk-matches", json_object_new_boolean(ts->srk_matches));
        return r;
}

static int token_status_json(json_object *tokens, const LuksTokenStatus *ts) {
        json_object *o = json_object_new_object(), *slots = NULL;
        int r;

        if (!o || json_object_array_add(tokens, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        r = json_add(o, "token", json_object_new_int(ts->id));
        if (r >= 0)
                r = json_add(o, "type", json_object_new_string(ts->type));
        if (r >= 0)
                r = slots_json(ts->keyslots, &slots);
        if (r >= 0)
                r = json_add(o, "keyslots", slots);
        if (r >= 0 && ts->tpm2 && ts->parsed)
                r = tpm2_status_json(o, ts);
        if (r >= 0 && (ts->tpm2 || ts->recovery) && !ts->parsed)
                r = json_add(o, "damaged", json_object_new_string(ts->why));
        if (r >= 0 && ts->tpm2) {
                r = json_add(o, "would-unlock", json_object_new_string(verdict_word(ts->verdict)));
                if (r >= 0)
                        r = json_add(o, "reason", json_object_new_string(ts->parsed ? ts->why : "the token is damaged"));
        }
        return r;
}

static int print_status_json(const char *device, const LuksStatus *s) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *keyslots = json_object_new_array(), *tokens = json_object_new_array();
        int r;

        if (!o || !keyslots || !tokens) {
                json_object_put(keyslots);
                json_object_put(tokens);
                return -ENOMEM;
        }
        r = json_add(o, "device", json_object_new_string(device));
        if (r >= 0)
                r = json_add(o, "uuid", json_object_new_string(s->uuid));
        if (r >= 0)
                r = json_add(o, "label", json_object_new_string(s->label));
        if (r >= 0)
                r = json_add(o, "cipher", json_object_new_string(s->cipher));
        if (r >= 0)
                r = json_add(o, "key-size", json_object_new_int((int) s->volume_key_size));
        if (r >= 0)
                r = json_add(o, "sector-size", json_object_new_int((int) s->sector_size));
        if (r >= 0)
                r = json_add(o, "keyslots", keyslots);
        else
                json_object_put(keyslots);
        if (r >= 0)
                r = json_add(o, "tokens", tokens);
        else
                json_object_put(tokens);
        for (int slot = 0; r >= 0 && slot < LUKS_SLOTS_MAX; slot++) {
                json_object *k, *users = json_object_new_array();

                if (!(s->keyslots & (1u << slot))) {
                        json_object_put(users);
                        continue;
                }
                k = json_object_new_object();
                if (!k || !users || json_object_array_add(keyslots, k) < 0) {
                        json_object_put(k);
                        json_object_put(users);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < s->n_tokens; i++)
                        if (s->tokens[i].keyslots & (1u << slot))
                                (void) json_object_array_add(users, json_object_new_int(s->tokens[i].id));
                r = json_add(k, "keyslot", json_object_new_int(slot));
                if (r >= 0)
                        r = json_add(k, "tokens", users);
                else
                        json_object_put(users);
        }
        for (size_t i = 0; r >= 0 && i < s->n_tokens; i++)
                r = token_status_json(tokens, &s->tokens[i]);
        if (r < 0)
                return r;
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        return 0;
}

static void print_tpm2_status(const LuksTokenStatus *ts) {
        const Tpm2Token *t = &ts->tpm2_token;
        size_t size = tpm_bank_digest_size(t->pcrs.bank);
        char sealed[2 * TPM_DIGEST_MAX + 1], now[2 * TPM_DIGEST_MAX + 1], srk[2 * TPM_NAME_MAX + 1];

        printf("  bound to %s %s ", tpm_bank_name(t->pcrs.bank), pcr_word(t->pcrs.mask));
        print_list(t->pcrs.mask);
        printf("%s\n", t->pin ? " and a PIN" : ", no PIN");
        for (unsigned i = 0; i < TPM_PCR_MAX; i++) {
                if (!(t->pcrs.mask & (1u << i)))
                        continue;
                hex_encode(t->pcrs.value[i], size, sealed);
                if (!ts->pcrs_read) {
                        printf("  PCR %u: sealed %s\n", i, sealed);
                        continue;
                }
                hex_encode(ts->now.value[i], size, now);
                printf("  PCR %u: sealed %s, now %s (%s)\n", i, sealed, now,
                       ts->differs & (1u << i) ? "differs" : "same");
        }
        hex_encode(t->srk_name, t->srk_name_size, srk);
        printf("  SRK %s%s\n", srk, !ts->srk_read ? "" : ts->srk_matches ? " (the TPM's)" : " (not the TPM's)");
}

static void print_status_text(const char *device, const LuksStatus *s) {
        char type[sizeof(s->tokens[0].type) * 4];

        printf("%s: LUKS2 %s, %s, %u-bit key, %u-byte sectors%s%s\n", device, s->uuid, s->cipher,
               s->volume_key_size * 8, s->sector_size, *s->label ? ", label " : "", s->label);
        for (int slot = 0; slot < LUKS_SLOTS_MAX; slot++) {
                const char *sep = "";

                if (!(s->keyslots & (1u << slot)))
                        continue;
                printf("keyslot %d:", slot);
                for (size_t i = 0; i < s->n_tokens; i++)
                        if (s->tokens[i].keyslots & (1u << slot)) {
                                printf("%s token %d (%s)", sep, s->tokens[i].id,
                                       log_escape(type, sizeof(type), s->tokens[i].type));
                                sep = ",";
                        }
                printf("%s\n", *sep ? "" : " no token (a passphrase or key file)");
        }
        for (size_t i = 0; i < s->n_tokens; i++) {
                const LuksTokenStatus *ts = &s->tokens[i];

                printf("token %d: %s, keyslot%s ", ts->id, log_escape(type, sizeof(type), ts->type),
                       (ts->keyslots & (ts->keyslots - 1)) ? "s" : "");
                print_list(ts->keyslots);
                printf("%s\n", ts->keyslots ? "" : "none");
                if ((ts->tpm2 || ts->recovery) && !ts->parsed)
                        printf("  damaged: %s\n", ts->why);
                if (ts->tpm2 && ts->parsed)
                        print_tpm2_status(ts);
                if (ts->tpm2)
                        printf("  would unlock now: %s%s%s\n", verdict_word(ts->verdict), *ts->why && ts->parsed ? ", " : "",
                               ts->parsed ? ts->why : "");
        }
}

int verb_status(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_free_ LuksStatus *s = calloc(1, sizeof(LuksStatus));
        char why[LUKS_WHY_LEN] = "";
        int r;

        if (!s)
                return log_error_errno(-ENOMEM, "status: out of memory");
        /* Without a TPM the header is still worth showing; the verdicts say "unknown". */
        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                log_warning("status: cannot open the TPM %s (%s): verdicts are unknown", cfg->tpm, strerror(-r));
        r = luks_status(argv[0], tpm, s, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "status: %s", why);
        if (args->json)
                return print_status_json(argv[0], s);
        print_status_text(argv[0], s);
        return 0;
}

/* ---- reseal, recover, remove ---- */

static int build_reseal_params(const CliArgs *args, ResealParams *p) {
        int r;

        *p = (ResealParams){ .token = args->token_given ? args->token : -1 };
        r = build_enroll_params(args, &p->binding);
        if (r < 0)
                return r;
        p->binding.recovery_key = false;
        p->binding_given = args->pcr_mask_given || args->pcr_bank || p->binding.predicted_mask;
        return 0;
}

int verify_reseal(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        ResealParams p;

        if (args->unlock_key_file && args->recovery_key_file)
                return log_error_errno(-EINVAL, "reseal: give --unlock-key-file or --recovery-key-file, not both");
        return build_reseal_params(args, &p);
}

int verify_remove(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        if (!args->token_given)
                return log_error_errno(-EINVAL, "remove: which token? (--token N; `cvmcrypt status DEV` lists them)");
        return 0;
}

static void print_reseal_text(const char *device, const ResealResult *res) {
        printf("%s: TPM2 keyslot %d (token %d), bound to %s %s ", device, res->tpm_keyslot, res->tpm_token,
               tpm_bank_name(res->pcrs.bank), pcr_word(res->pcrs.mask));
        print_list(res->pcrs.mask);
        printf("%s, %s.\n", res->pin ? " and a PIN" : "",
               res->proven ? "unseals the volume key" : "bound to predicted values, not tried");
        if (res->removed) {
                printf("Removed the old token ");
                print_list(res->removed);
                printf(" and its keyslot.\n");
        }
        if (res->kept) {
                printf("Kept the old token ");
                print_list(res->kept);
                printf(": once the predicted values are real, remove it with `cvmcrypt remove %s --token ", device);
                print_list(res->kept);
                printf("`.\n");
        }
}

static int print_reseal_json(const ResealResult *res) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pcrs = NULL, *removed = NULL, *kept = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add(o, "keyslot", json_object_new_int(res->tpm_keyslot));
        if (r >= 0)
                r = json_add(o, "token", json_object_new_int(res->tpm_token));
        if (r >= 0)
                r = json_add(o, "pcr-bank", json_object_new_string(tpm_bank_name(res->pcrs.bank)));
        if (r >= 0 && (r = slots_json(res->pcrs.mask, &pcrs)) >= 0)
                r = json_add(o, "pcrs", pcrs);
        if (r >= 0)
                r = json_add(o, "pin", json_object_new_boolean(res->pin));
        if (r >= 0)
                r = json_add(o, "proven", json_object_new_boolean(res->proven));
        if (r >= 0 && (r = slots_json(res->removed, &removed)) >= 0)
                r = json_add(o, "removed-tokens", removed);
        if (r >= 0 && (r = slots_json(res->kept, &kept)) >= 0)
                r = json_add(o, "kept-tokens", kept);
        if (r < 0)
                return r;
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return 0;
}

/* A refusal of the TPM path that a passphrase or the recovery key can get around. */
static bool tpm_path_refused(int r) {
        return r == -EPERM || r == -EREMCHG || r == -EUCLEAN || r == -ENOENT || r == -ENOKEY || r == -EKEYREJECTED;
}

static int reseal_run(const char *verb, const Config *cfg, const CliArgs *args, const char *device, bool recover) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        _cleanup_secmem_ char *pin = NULL, *secret = NULL;
        ResealResult res = {};
        char why[LUKS_WHY_LEN] = "";
        const char *file = recover ? args->recovery_key_file : args->unlock_key_file ? args->unlock_key_file : args->recovery_key_file;
        size_t pin_size = 0, secret_size = 0;
        ResealParams p;
        int r;

        r = build_reseal_params(args, &p);
        if (r >= 0 && args->attest) {
                r = bind_attested_gate(cfg, args, &p.binding);
                p.binding_given = true;
        }
        if (r < 0)
                return r;
        if (access(device, R_OK | W_OK) < 0)
                return log_error_errno(negative_errno(), "%s: cannot open %s: %m", verb, device);
        if (args->pin || args->pin_file) {
                r = read_pin(args, !args->pin_file, &pin, &pin_size);
                if (r < 0)
                        return r;
                p.binding.pin = pin;
                p.binding.pin_size = pin_size;
        }
        if (file || recover) {
                /* escrow_read_key() logs why the escrow did not open. */
                r = args->escrow ? escrow_read_key(args, &secret, &secret_size)
                    : file       ? ask_read_key_file(file, &secret, &secret_size)
                                 : ask_secret("Recovery key:", &secret, &secret_size);
                if (r < 0)
                        return args->escrow ? r : log_error_errno(r, "%s: cannot read the %s: %m", verb, recover ? "recovery key" : "passphrase");
                p.secret = secret;
                p.secret_size = secret_size;
                p.recovery_only = recover;
        }
        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "%s: cannot open the TPM %s: %m", verb, cfg->tpm);
        r = luks_reseal(device, tpm, &p, &res, why, sizeof(why));
        if (r < 0 && !p.secret && tpm_path_refused(r)) {
                /* The usual case after an update: the old slot no longer unseals. */
                log_notice("%s: the TPM slot cannot be used (%s); asking for the passphrase or recovery key", verb, why);
                r = ask_secret("Passphrase or recovery key:", &secret, &secret_size);
                if (r < 0)
                        return log_error_errno(r, "%s: cannot ask for the passphrase (give --unlock-key-file or --recovery-key-file): %m",
                                               verb);
                p.secret = secret;
                p.secret_size = secret_size;
                r = luks_reseal(device, tpm, &p, &res, why, sizeof(why));
        }
        if (r < 0)
                return log_error_errno(r, "%s: %s", verb, why);
        if (args->json)
                return print_reseal_json(&res);
        print_reseal_text(device, &res);
        return 0;
}

int verb_reseal(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv) {
        return reseal_run("reseal", cfg, args, argv[0], false);
}

int verb_recover(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv) {
        return reseal_run("recover", cfg, args, argv[0], true);
}

int verb_remove(const Config *cfg _unused_, const CliArgs *args, int argc _unused_, char **argv) {
        char why[LUKS_WHY_LEN] = "";
        uint32_t slots = 0;
        int r;

        r = luks_remove_token(argv[0], args->token, &slots, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "remove: %s", why);
        if (args->json) {
                printf("{\"token\":%d,\"keyslots\":[", args->token);
                print_list(slots);
                printf("]}\n");
        } else {
                printf("%s: removed token %d", argv[0], args->token);
                if (slots) {
                        printf(" and keyslot%s ", (slots & (slots - 1)) ? "s" : "");
                        print_list(slots);
                }
                printf(".\n");
        }
        return 0;
}
