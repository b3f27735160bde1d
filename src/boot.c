/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvmcrypt boot: the initramfs sequence of design.md, composed from the modules: measure, attest,
 * unlock each configured volume, temp disk, cap. Each step's outcome is logged (to the kernel log
 * in the initrd) and the cap runs whatever happened before it. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest-gate.h"
#include "cli.h"
#include "config.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "luks.h"
#include "macro.h"
#include "measure.h"
#include "provision.h"
#include "secmem.h"

#define INITRD_RELEASE "/etc/initrd-release"
/* Left after the cap, so that cvmcrypt-cap.service (the cap for a boot that crashed) stays off. */
#define CAPPED_DIR "/run/cvmcrypt"
#define CAPPED_MARKER CAPPED_DIR "/capped"
#define SELF_EXE "/proc/self/exe"
#define TPM_DEVICE_DEFAULT "/dev/tpmrm0"
#define WAIT_STEP_NS 100000000L

typedef struct PlanStep {
        const char *step;
        char what[768];
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

static size_t build_plan(const Config *cfg, const CliArgs *args, PlanStep *steps, size_t max) {
        size_t n = 0;

        steps[n] = (PlanStep){ .step = "measure" };
        (void) snprintf(steps[n++].what, sizeof(steps[0].what),
                        "binary, config, anchors %s and policy into PCR %u; event log %s", cfg->anchors, cfg->gate_pcr,
                        cfg->event_log);
        steps[n] = (PlanStep){ .step = "attest" };
        if (cfg->attest)
                (void) snprintf(steps[n++].what, sizeof(steps[0].what),
                                "fresh report from %s, verified against anchors %s and policy %s; passed: cvmcrypt:attested into PCR %u",
                                cfg->attest, cfg->anchors, cfg->policy, cfg->gate_pcr);
        else
                (void) snprintf(steps[n++].what, sizeof(steps[0].what), "skipped: attest=none");
        for (size_t i = 0; i < cfg->n_volumes && n + 2 < max; i++) {
                steps[n] = (PlanStep){ .step = "unlock" };
                (void) snprintf(steps[n++].what, sizeof(steps[0].what),
                                "%s as %s (first provisioned if it carries a cvmcrypt-provision token)",
                                cfg->volumes[i].device, cfg->volumes[i].name ? cfg->volumes[i].name : "luks-UUID");
        }
        steps[n] = (PlanStep){ .step = "tempdisk" };
        if (args->no_tempdisk)
                (void) snprintf(steps[n++].what, sizeof(steps[0].what), "left to cvmcrypt-tempdisk.service (--no-tempdisk)");
        else
                describe_tempdisk(cfg, steps[n++].what, sizeof(steps[0].what));
        steps[n] = (PlanStep){ .step = "cap" };
        (void) snprintf(steps[n++].what, sizeof(steps[0].what),
                        "extend PCR %u with each unlocked volume's identity and cvmcrypt:boot-done, so nothing can unseal until reboot",
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
        }
        json_object_object_add(root, "tpm", json_object_new_string(cfg->tpm));
        json_object_object_add(root, "tpm-timeout", json_object_new_int((int) cfg->tpm_timeout));
        json_object_object_add(root, "device-timeout", json_object_new_int((int) cfg->device_timeout));
        json_object_object_add(root, "gate-pcr", json_object_new_int((int) cfg->gate_pcr));
        /* What an initramfs generator must copy (the files that boot measures or reads). */
        json_object_object_add(root, "anchors", json_object_new_string(cfg->anchors));
        json_object_object_add(root, "policy", cfg->policy ? json_object_new_string(cfg->policy) : NULL);
        json_object_object_add(root, "attest", json_object_new_string(cfg->attest ? cfg->attest : "none"));
        json_object_object_add(root, "attest-certs", cfg->attest_certs ? json_object_new_string(cfg->attest_certs) : NULL);
        json_object_object_add(root, "steps", json_object_get(arr));
        puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

static void print_plan_text(const Config *cfg, const PlanStep *steps, size_t n) {
        printf("boot plan (dry run: nothing is touched)\n");
        printf("  TPM: %s (wait up to %u s)\n", cfg->tpm, cfg->tpm_timeout);
        for (size_t i = 0; i < n; i++)
                printf("  %zu. %-9s %s\n", i + 1, steps[i].step, steps[i].what);
}

/* ---- the sequence ---- */

typedef struct BootVolume {
        char name[MEASURE_NAME_MAX];
        char uuid[MEASURE_UUID_MAX];
        uint8_t *vk; /* secmem, until the cap has measured it */
        size_t vk_size;
        bool provisioned; /* this boot provisioned it: the cap measures that first */
} BootVolume;

typedef struct Boot {
        const Config *cfg;
        TpmContext *tpm;
        AttestGateState gate;
        BootVolume volumes[CONFIG_VOLUMES_MAX];
        size_t n_volumes;
        const char *current_name; /* the configured mapping name of the volume being unlocked, or NULL */
        int result;               /* the first failure */
} Boot;

static void boot_done(Boot *b) {
        for (size_t i = 0; i < b->n_volumes; i++)
                b->volumes[i].vk = secmem_free(b->volumes[i].vk);
        b->tpm = tpm_close(b->tpm);
}

static void boot_fail(Boot *b, int r) {
        if (b->result == 0)
                b->result = r;
}

/* Waits up to timeout seconds for path to exist: the TPM and the disks may appear late in boot. */
static int wait_for_path(const char *path, unsigned timeout) {
        struct timespec step = { .tv_nsec = WAIT_STEP_NS };

        for (unsigned long i = 0;; i++) {
                if (access(path, F_OK) == 0)
                        return 0;
                if (i >= (unsigned long) timeout * 10)
                        return -ETIMEDOUT;
                (void) nanosleep(&step, NULL);
        }
}

/* The device node a TCTI opens: "device" (the default node), or "device:PATH" on its own or at the
 * end of a wrapping TCTI's configuration. NULL for TCTIs that open no device node (swtpm, mssim). */
static const char *tpm_device_path(const char *tcti) {
        const char *p;

        if (strcmp(tcti, "device") == 0)
                return TPM_DEVICE_DEFAULT;
        if (strncmp(tcti, "device:", 7) == 0)
                return tcti[7] ? tcti + 7 : TPM_DEVICE_DEFAULT;
        p = strstr(tcti, ":device:");
        return p && p[8] == '/' ? p + 8 : NULL;
}

static int boot_open_tpm(Boot *b) {
        const char *dev = tpm_device_path(b->cfg->tpm);
        char path[256];
        int r;

        if (dev) {
                (void) snprintf(path, sizeof(path), "%.*s", (int) strcspn(dev, ":,"), dev);
                if (access(path, F_OK) < 0) {
                        log_info("boot: waiting up to %u s for the TPM device %s", b->cfg->tpm_timeout, path);
                        if (wait_for_path(path, b->cfg->tpm_timeout) < 0)
                                return log_error_errno(-ENODEV, "boot: the TPM device %s did not appear within %u s (tpm-timeout=)",
                                                       path, b->cfg->tpm_timeout);
                        log_info("boot: the TPM device %s appeared", path);
                }
        }
        r = tpm_open(b->cfg->tpm, &b->tpm);
        if (r < 0)
                return log_error_errno(r, "boot: cannot open the TPM %s: %m", b->cfg->tpm);
        return 0;
}

static void boot_measure(Boot *b, const CliArgs *args) {
        const MeasureInputs in = { .binary = SELF_EXE, .config = args->config, .anchors = b->cfg->anchors,
                                   .policy = b->cfg->policy };
        char why[MEASURE_WHY_MAX] = "";
        MeasurePlan plan;
        int r;

        r = measure_plan(&in, &plan, why, sizeof(why));
        if (r >= 0)
                r = measure_start(b->tpm, b->cfg->event_log, b->cfg->gate_pcr, &plan, why, sizeof(why));
        if (r < 0) {
                /* Without the start events the gate PCR is wrong and the TPM will refuse: go on to the cap. */
                boot_fail(b, log_error_errno(r, "boot: measure: %s", why));
                return;
        }
        log_info("boot: measure: binary, config, anchors and policy extended into PCR %u", b->cfg->gate_pcr);
}

static void boot_attest(Boot *b) {
        int r;

        if (!b->cfg->attest) {
                log_info("boot: attest: skipped (attest=none)");
                return;
        }
        r = attest_gate_once(&b->gate);
        if (r < 0) {
                boot_fail(b, log_error_errno(r, "boot: attest: %s", b->gate.why));
                return;
        }
        log_info("boot: attest: %s", b->gate.why);
}

/* LuksUnlockHooks.unlocked: keeps the volume key (in secure memory) for the cap's volume event. */
static int keep_volume(void *userdata, const char *uuid, const uint8_t *vk, size_t vk_size) {
        Boot *b = userdata;
        BootVolume *v;

        if (b->n_volumes >= ELEMENTSOF(b->volumes))
                return -ENOBUFS;
        v = &b->volumes[b->n_volumes];
        v->vk = secmem_alloc(vk_size);
        if (!v->vk)
                return -ENOMEM;
        memcpy(v->vk, vk, vk_size);
        v->vk_size = vk_size;
        (void) snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
        if (b->current_name)
                (void) snprintf(v->name, sizeof(v->name), "%s", b->current_name);
        else
                (void) snprintf(v->name, sizeof(v->name), "luks-%s", uuid);
        b->n_volumes++;
        return 0;
}

static int gate_for_token(void *userdata, const Tpm2Token *t, int token_id, char *why, size_t n) {
        Boot *b = userdata;

        return attest_gate_token(&b->gate, t, token_id, why, n);
}

static void log_provisioned(const Config *cfg, const ConfigVolume *v, const ProvisionResult *res) {
        char fingerprint[65];

        if (res->rekey_pending)
                log_info("boot: unlock %s: provisioned LUKS2 %s%s: sealed to this TPM, opened with the re-key pending; cvmcrypt-reencrypt.service runs it",
                         v->device, res->uuid, res->started_at == PROVISION_STAGE_PREPARE ? "" : " (resumed an interrupted run)");
        else
                log_info("boot: unlock %s: provisioned LUKS2 %s%s: re-keyed to a fresh volume key, sealed to this TPM, build-time keyslot removed",
                         v->device, res->uuid, res->started_at == PROVISION_STAGE_PREPARE ? "" : " (resumed an interrupted run)");
        if (res->escrowed) {
                hex_encode(res->escrow_fingerprint, sizeof(res->escrow_fingerprint), fingerprint);
                log_info("boot: unlock %s: recovery key escrowed to %s, fingerprint sha256:%s", v->device,
                         cfg->provision_escrow_out, fingerprint);
        } else if (res->started_at == PROVISION_STAGE_PREPARE)
                log_warning("boot: unlock %s: no escrow configured (provision-escrow-cert=): the volume has no recovery key",
                            v->device);
}

static void boot_unlock(Boot *b, const ConfigVolume *v) {
        const LuksUnlockHooks hooks = { .attest = gate_for_token, .unlocked = keep_volume, .userdata = b };
        char path[CONFIG_LINE_MAX + 32], why[LUKS_WHY_LEN] = "";
        ProvisionResult res;
        int r;

        if (strncmp(v->device, "UUID=", 5) == 0)
                (void) snprintf(path, sizeof(path), "/dev/disk/by-uuid/%s", v->device + 5);
        else
                (void) snprintf(path, sizeof(path), "%s", v->device);
        if (access(path, F_OK) < 0) {
                log_info("boot: unlock %s: waiting up to %u s for %s", v->device, b->cfg->device_timeout, path);
                if (wait_for_path(path, b->cfg->device_timeout) < 0) {
                        boot_fail(b, log_error_errno(-ENODEV, "boot: unlock %s: %s did not appear within %u s (device-timeout=)",
                                                     v->device, path, b->cfg->device_timeout));
                        return;
                }
        }
        b->current_name = v->name;
        /* A prepared image's first boot: provisioning opens the volume through its new slot. */
        r = provision_volume(b->cfg, b->tpm, path, v->name ? v->name : "", &hooks, &res, why, sizeof(why));
        if (r == 0)
                r = luks_unlock_tpm(path, v->name ? v->name : "", b->tpm, NULL, 0, &hooks, why, sizeof(why));
        b->current_name = NULL;
        if (r < 0) {
                boot_fail(b, log_error_errno(r, "boot: unlock %s: %s (the volume stays closed: the passphrase or recovery key opens it)",
                                             v->device, why));
                return;
        }
        if (r > 0) {
                b->volumes[b->n_volumes - 1].provisioned = true;
                log_provisioned(b->cfg, v, &res);
        }
        log_info("boot: unlock %s: opened as %s", v->device, b->volumes[b->n_volumes - 1].name);
}

static void boot_tempdisk(Boot *b) {
        const CliArgs targs = {};
        int r;

        if (b->cfg->tempdisk == TEMPDISK_OFF) {
                log_info("boot: tempdisk: turned off (tempdisk=0)");
                return;
        }
        /* A disk named in the configuration may still be on its way; one found by identity is
         * looked for once, as it is. */
        if (b->cfg->tempdisk == TEMPDISK_DEVICE && access(b->cfg->tempdisk_device, F_OK) < 0) {
                log_info("boot: tempdisk: waiting up to %u s for %s", b->cfg->device_timeout, b->cfg->tempdisk_device);
                (void) wait_for_path(b->cfg->tempdisk_device, b->cfg->device_timeout);
        }
        /* The verb logs its own failures and prints what it formatted. */
        r = verb_tempdisk(b->cfg, &targs, 0, NULL);
        if (r < 0) {
                boot_fail(b, r);
                return;
        }
        log_info("boot: tempdisk: done");
}

/* Runs whatever happened before: after this, nothing that runs in this boot can unseal. */
static void boot_cap(Boot *b) {
        char why[MEASURE_WHY_MAX] = "";
        int r;

        for (size_t i = 0; i < b->n_volumes; i++) {
                BootVolume *v = &b->volumes[i];

                if (v->provisioned) {
                        r = measure_provisioned(b->tpm, b->cfg->event_log, b->cfg->gate_pcr, v->uuid, why, sizeof(why));
                        if (r != 0)
                                boot_fail(b, log_error_errno(r < 0 ? r : -EIO, "boot: cap: volume %s: %s", v->name, why));
                }
                r = measure_volume(b->tpm, b->cfg->event_log, b->cfg->gate_pcr, v->name, v->uuid, v->vk, v->vk_size, why,
                                   sizeof(why));
                v->vk = secmem_free(v->vk);
                if (r != 0)
                        boot_fail(b, log_error_errno(r < 0 ? r : -EIO, "boot: cap: volume %s: %s", v->name, why));
        }
        r = measure_boot_done(b->tpm, b->cfg->event_log, b->cfg->gate_pcr, why, sizeof(why));
        if (r < 0) {
                /* The one failure that leaves secrets reachable: say it loudly. */
                boot_fail(b, log_error_errno(r, "boot: cap: PCR %u NOT capped: %s", b->cfg->gate_pcr, why));
                return;
        }
        if (r > 0)
                boot_fail(b, log_error_errno(-EIO, "boot: cap: %s", why));
        if ((mkdir(CAPPED_DIR, 0755) < 0 && errno != EEXIST) || mknod(CAPPED_MARKER, S_IFREG | 0644, 0) < 0)
                log_warning("boot: cap: cannot leave %s: %m", CAPPED_MARKER);
        log_info("boot: cap: PCR %u extended with %zu volume event%s and cvmcrypt:boot-done", b->cfg->gate_pcr,
                 b->n_volumes, b->n_volumes == 1 ? "" : "s");
}

static int boot_run(const Config *cfg, const CliArgs *args) {
        _cleanup_(boot_done) Boot b = { .cfg = cfg };
        int r;

        /* It measures, unlocks and caps the running system: that is the initrd's job, not a live system's. */
        if (access(INITRD_RELEASE, F_OK) < 0)
                return log_error_errno(-EPERM, "boot: not in an initrd (%s is missing): nothing done", INITRD_RELEASE);
        r = boot_open_tpm(&b);
        if (r < 0) {
                /* No TPM: nothing can unseal, and nothing can be capped. */
                if (!args->no_tempdisk)
                        boot_tempdisk(&b);
                return r;
        }
        b.gate = (AttestGateState){ .cfg = cfg, .tpm = b.tpm };
        boot_measure(&b, args);
        boot_attest(&b);
        for (size_t i = 0; i < cfg->n_volumes; i++)
                boot_unlock(&b, &cfg->volumes[i]);
        if (!args->no_tempdisk)
                boot_tempdisk(&b);
        boot_cap(&b);
        return b.result;
}

int verb_boot(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        PlanStep steps[CONFIG_VOLUMES_MAX + 4];
        size_t n;
        int r;

        if (!args->dry_run)
                return boot_run(cfg, args);
        n = build_plan(cfg, args, steps, ELEMENTSOF(steps));
        if (!args->json) {
                print_plan_text(cfg, steps, n);
                return 0;
        }
        r = print_plan_json(cfg, steps, n);
        if (r < 0)
                return log_error_errno(r, "boot: cannot build the plan: %m");
        return 0;
}
