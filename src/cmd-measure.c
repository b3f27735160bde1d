/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* measure, predict and cap: the command-line side of measure.c. Logs once, here. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <tss2/tss2_tpm2_types.h>

#include "cli.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "tpm.h"

#define SELF_EXE "/proc/self/exe"

static const uint16_t predict_banks[] = { TPM2_ALG_SHA1, TPM2_ALG_SHA256, TPM2_ALG_SHA384, TPM2_ALG_SHA512 };

static const char *log_path(const Config *cfg, const CliArgs *args) {
        return args->log ? args->log : cfg->event_log;
}

static int check_paths(const char *verb, const CliArgs *args) {
        if ((args->log && !*args->log) || (args->binary && !*args->binary) || (args->anchors && !*args->anchors) ||
            (args->policy && !*args->policy))
                return log_error_errno(-EINVAL, "%s: --log, --binary, --anchors and --policy need a non-empty path", verb);
        return 0;
}

int verify_measure(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        return check_paths("measure", args);
}

int verify_predict(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        return check_paths("predict", args);
}

int verify_cap(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        return check_paths("cap", args);
}

static int items_json(const MeasurePlan *p, json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                json_object *o = json_object_new_object();
                int r;

                if (!o || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
                r = json_add(o, "event", json_object_new_string(measure_event_name(p->items[i].event)));
                if (r >= 0)
                        r = json_add(o, "string", json_object_new_string(p->items[i].string));
                if (r >= 0 && p->items[i].path)
                        r = json_add(o, "path", json_object_new_string(p->items[i].path));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

static int print_json(json_object *o) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!text)
                return -ENOMEM;
        puts(text);
        return 0;
}

/* ---- measure --verify ---- */

static int bank_json(const MeasureBankResult *b, json_object *banks) {
        size_t size = tpm_bank_digest_size(b->bank);
        json_object *o = json_object_new_object();
        int r;

        if (!o || json_object_array_add(banks, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        r = json_add(o, "bank", json_object_new_string(tpm_bank_name(b->bank)));
        if (r >= 0)
                r = json_add(o, "ok", json_object_new_boolean(b->ok));
        if (r >= 0)
                r = json_add_hex(o, "log", b->replayed, size);
        if (r >= 0)
                r = json_add_hex(o, "tpm", b->actual, size);
        return r;
}

static int pcr_json(const MeasurePcrResult *p, json_object *pcrs) {
        _cleanup_(json_object_putp) json_object *banks = json_object_new_array();
        json_object *o = json_object_new_object();
        int r;

        if (!banks || !o || json_object_array_add(pcrs, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        for (size_t k = 0; k < p->n_banks; k++) {
                r = bank_json(&p->banks[k], banks);
                if (r < 0)
                        return r;
        }
        r = json_add(o, "pcr", json_object_new_int((int) p->pcr));
        if (r >= 0)
                r = json_add(o, "ok", json_object_new_boolean(p->ok));
        if (r >= 0)
                r = json_add(o, "records", json_object_new_int64((int64_t) p->n_records));
        if (r >= 0 && p->bad_record >= 0)
                r = json_add(o, "first-bad-record", json_object_new_int64(p->bad_record));
        if (r >= 0 && p->reason[0])
                r = json_add(o, "reason", json_object_new_string(p->reason));
        if (r >= 0)
                r = json_add(o, "banks", json_object_get(banks));
        return r;
}

static int verdict_json(const char *log, const MeasureVerdict *v) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object(), *pcrs = json_object_new_array();
        int r;

        if (!root || !pcrs)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_pcrs; i++) {
                r = pcr_json(&v->pcrs[i], pcrs);
                if (r < 0)
                        return r;
        }
        r = json_add(root, "log", json_object_new_string(log));
        if (r >= 0)
                r = json_add(root, "records", json_object_new_int64((int64_t) v->n_records));
        if (r >= 0)
                r = json_add(root, "incomplete", json_object_new_boolean(v->incomplete));
        if (r >= 0)
                r = json_add(root, "ok", json_object_new_boolean(v->ok));
        if (r >= 0)
                r = json_add(root, "pcrs", json_object_get(pcrs));
        if (r < 0)
                return r;
        return print_json(root);
}

static void verdict_text(const char *log, const MeasureVerdict *v) {
        printf("Event log %s: %zu record%s.\n", log, v->n_records, v->n_records == 1 ? "" : "s");
        if (v->incomplete)
                printf("The log is incomplete: a writer extended a PCR and stopped before logging it.\n");
        for (size_t i = 0; i < v->n_pcrs; i++) {
                const MeasurePcrResult *p = &v->pcrs[i];

                printf("PCR %u: %s (", p->pcr, p->ok ? "matches" : "DIFFERS");
                for (size_t k = 0; k < p->n_banks; k++)
                        printf("%s%s", k ? ", " : "", tpm_bank_name(p->banks[k].bank));
                printf("; %zu record%s)%s%s\n", p->n_records, p->n_records == 1 ? "" : "s", p->ok ? "" : ": ",
                       p->ok ? "" : p->reason);
                for (size_t k = 0; k < p->n_banks; k++) {
                        const MeasureBankResult *b = &p->banks[k];
                        char replayed[2 * TPM_DIGEST_MAX + 1], actual[2 * TPM_DIGEST_MAX + 1];

                        if (b->ok)
                                continue;
                        hex_encode(b->replayed, tpm_bank_digest_size(b->bank), replayed);
                        hex_encode(b->actual, tpm_bank_digest_size(b->bank), actual);
                        printf("  %s: log replays to %s, TPM has %s\n", tpm_bank_name(b->bank), replayed, actual);
                }
        }
}

static int measure_verify_cmd(const Config *cfg, const CliArgs *args) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        const char *log = log_path(cfg, args);
        char why[MEASURE_WHY_MAX] = "";
        MeasureVerdict v;
        int r;

        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "measure --verify: cannot open the TPM %s: %m", cfg->tpm);
        r = measure_verify(tpm, log, cfg->gate_pcr, &v, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "measure --verify: %s", why);
        if (args->json) {
                r = verdict_json(log, &v);
                if (r < 0)
                        return log_error_errno(r, "measure --verify: cannot build the report: %m");
        } else
                verdict_text(log, &v);
        if (!v.ok)
                return log_error_errno(-EBADMSG, "measure --verify: the event log %s does not match the TPM", log);
        return 0;
}

/* ---- measure ---- */

static int measure_json(const char *log, unsigned pcr, const MeasurePlan *p) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *items = NULL;
        int r;

        if (!root)
                return -ENOMEM;
        r = json_add(root, "pcr", json_object_new_int((int) pcr));
        if (r >= 0)
                r = json_add(root, "log", json_object_new_string(log));
        if (r >= 0)
                r = items_json(p, &items);
        if (r >= 0)
                r = json_add(root, "events", items);
        if (r < 0)
                return r;
        return print_json(root);
}

int verb_measure(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        const MeasureInputs in = { .binary = SELF_EXE, .config = args->config, .anchors = cfg->anchors, .policy = cfg->policy };
        const char *log = log_path(cfg, args);
        char why[MEASURE_WHY_MAX] = "";
        MeasurePlan plan;
        int r;

        if (args->verify)
                return measure_verify_cmd(cfg, args);
        r = measure_plan(&in, &plan, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "measure: %s", why);
        /* The TPM first: without one the log is not touched. */
        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "measure: cannot open the TPM %s: %m", cfg->tpm);
        r = measure_start(tpm, log, cfg->gate_pcr, &plan, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "measure: %s", why);
        if (args->json) {
                r = measure_json(log, cfg->gate_pcr, &plan);
                if (r < 0)
                        return log_error_errno(r, "measure: cannot build the report: %m");
                return 0;
        }
        for (size_t i = 0; i < plan.n; i++)
                printf("PCR %u: %s\n", cfg->gate_pcr, plan.items[i].string);
        return 0;
}

/* ---- predict ---- */

static int predict_json(unsigned pcr, const MeasurePlan *p, bool attested) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object(), *values = json_object_new_object();
        json_object *items = NULL;
        int r;

        if (!root || !values)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(predict_banks); i++) {
                uint8_t v[TPM_DIGEST_MAX];

                r = measure_predict(p, predict_banks[i], v);
                if (r >= 0)
                        r = json_add_hex(values, tpm_bank_name(predict_banks[i]), v, tpm_bank_digest_size(predict_banks[i]));
                if (r < 0)
                        return r;
        }
        r = json_add(root, "pcr", json_object_new_int((int) pcr));
        if (r >= 0)
                r = json_add(root, "attested", json_object_new_boolean(attested));
        if (r >= 0)
                r = items_json(p, &items);
        if (r >= 0)
                r = json_add(root, "events", items);
        if (r >= 0)
                r = json_add(root, "values", json_object_get(values));
        if (r < 0)
                return r;
        return print_json(root);
}

void predict_inputs(const Config *cfg, const CliArgs *args, MeasureInputs *ret) {
        *ret = (MeasureInputs){
                .binary = args->binary ? args->binary : SELF_EXE,
                .config = args->config,
                .anchors = args->anchors ? args->anchors : cfg->anchors,
                .policy = args->policy ? args->policy : cfg->policy,
        };
}

int verb_predict(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        char why[MEASURE_WHY_MAX] = "", hex[2 * TPM_DIGEST_MAX + 1];
        uint8_t value[TPM_DIGEST_MAX];
        MeasureInputs in;
        MeasurePlan plan;
        bool attested;
        uint16_t bank;
        int r;

        predict_inputs(cfg, args, &in);
        r = measure_plan(&in, &plan, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "predict: %s", why);
        /* Boot attests (and measures it) only when the configuration names a source and a policy. */
        attested = !args->no_attest && plan.has_policy && cfg->attest;
        if (attested)
                (void) measure_plan_add_attested(&plan);
        if (args->json) {
                r = predict_json(cfg->gate_pcr, &plan, attested);
                if (r < 0)
                        return log_error_errno(r, "predict: cannot build the report: %m");
                return 0;
        }
        r = tpm_bank_from_name(args->pcr_bank ? args->pcr_bank : "sha256", &bank);
        if (r >= 0)
                r = measure_predict(&plan, bank, value);
        if (r < 0)
                return log_error_errno(r, "predict: cannot compute the PCR value: %m");
        hex_encode(value, tpm_bank_digest_size(bank), hex);
        /* The form enroll --pcr-value takes. */
        printf("%u=%s\n", cfg->gate_pcr, hex);
        return 0;
}

/* ---- cap ---- */

int verb_cap(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        const char *log = log_path(cfg, args);
        char why[MEASURE_WHY_MAX] = "";
        int r;

        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "cap: cannot open the TPM %s: %m", cfg->tpm);
        r = measure_boot_done(tpm, log, cfg->gate_pcr, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "cap: %s", why);
        if (r > 0) /* capped, but the record is missing: say so, and fail so that someone looks */
                return log_error_errno(-EIO, "cap: %s", why);
        if (args->json)
                printf("{\"pcr\":%u,\"event\":\"boot-done\",\"string\":\"cvmcrypt:boot-done\"}\n", cfg->gate_pcr);
        else
                printf("PCR %u capped (cvmcrypt:boot-done).\n", cfg->gate_pcr);
        return 0;
}
