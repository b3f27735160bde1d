/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "json-strict.h"
#include "log.h"
#include "macro.h"

typedef struct PlanStep {
        const char *step;
        char what[768];
        bool available; /* implemented in this build */
} PlanStep;

static void describe_tempdisk(const Config *cfg, char *buf, size_t n) {
        switch (cfg->tempdisk) {
        case TEMPDISK_OFF:
                (void) snprintf(buf, n, "disabled");
                break;
        case TEMPDISK_AUTO:
                (void) snprintf(buf, n, "detect by identity, fresh key, mount at %s", cfg->tempdisk_mount);
                break;
        case TEMPDISK_DEVICE:
                (void) snprintf(buf, n, "%s, fresh key, mount at %s", cfg->tempdisk_device, cfg->tempdisk_mount);
                break;
        }
}

static size_t build_plan(const Config *cfg, PlanStep *steps, size_t max) {
        size_t n = 0;

        steps[n] = (PlanStep){ .step = "measure" };
        (void) snprintf(steps[n++].what, sizeof(steps[0].what),
                        "binary, config, anchors %s and policy into PCR %u; event log %s", cfg->anchors, cfg->gate_pcr,
                        cfg->event_log);
        steps[n] = (PlanStep){ .step = "attest" };
        if (cfg->policy)
                (void) snprintf(steps[n++].what, sizeof(steps[0].what), "verify SEV-SNP report against policy %s",
                                cfg->policy);
        else
                (void) snprintf(steps[n++].what, sizeof(steps[0].what), "skipped: no policy configured");
        for (size_t i = 0; i < cfg->n_volumes && n + 2 < max; i++) {
                steps[n] = (PlanStep){ .step = "unlock" };
                (void) snprintf(steps[n++].what, sizeof(steps[0].what), "%s as %s", cfg->volumes[i].device,
                                cfg->volumes[i].name ? cfg->volumes[i].name : "luks-UUID");
        }
        steps[n] = (PlanStep){ .step = "tempdisk" };
        describe_tempdisk(cfg, steps[n++].what, sizeof(steps[0].what));
        steps[n] = (PlanStep){ .step = "cap" };
        (void) snprintf(steps[n++].what, sizeof(steps[0].what), "extend PCR %u so nothing can unseal until reboot",
                        cfg->gate_pcr);
        return n;
}

static int print_plan_json(const Config *cfg, const PlanStep *steps, size_t n) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object(), *arr = json_object_new_array();

        if (!root || !arr)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object();
                if (!o || json_object_array_add(arr, o) < 0)
                        return -ENOMEM;
                json_object_object_add(o, "step", json_object_new_string(steps[i].step));
                json_object_object_add(o, "what", json_object_new_string(steps[i].what));
                json_object_object_add(o, "available", json_object_new_boolean(steps[i].available));
        }
        json_object_object_add(root, "tpm", json_object_new_string(cfg->tpm));
        json_object_object_add(root, "tpm-timeout", json_object_new_int((int) cfg->tpm_timeout));
        json_object_object_add(root, "gate-pcr", json_object_new_int((int) cfg->gate_pcr));
        json_object_object_add(root, "steps", json_object_get(arr));
        puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

static void print_plan_text(const Config *cfg, const PlanStep *steps, size_t n) {
        printf("boot plan (dry run: nothing is touched)\n");
        printf("  TPM: %s (wait up to %u s)\n", cfg->tpm, cfg->tpm_timeout);
        for (size_t i = 0; i < n; i++)
                printf("  %zu. %-9s %s%s\n", i + 1, steps[i].step, steps[i].what,
                       steps[i].available ? "" : " [not available in this build]");
}

int verb_boot(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        PlanStep steps[CONFIG_VOLUMES_MAX + 4];
        size_t n;
        int r;

        if (!args->dry_run)
                return log_error_errno(-EOPNOTSUPP, "boot: only --dry-run is available in this build");
        n = build_plan(cfg, steps, ELEMENTSOF(steps));
        if (!args->json) {
                print_plan_text(cfg, steps, n);
                return 0;
        }
        r = print_plan_json(cfg, steps, n);
        if (r < 0)
                return log_error_errno(r, "boot: cannot build the plan: %m");
        return 0;
}
