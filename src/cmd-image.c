/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* image-prepare, provision and recover --escrow: the command-line side of image.c and provision.c.
 * Logs once, here. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ask.h"
#include "cli.h"
#include "encoding.h"
#include "image.h"
#include "json-strict.h"
#include "log.h"
#include "luks.h"
#include "measure.h"
#include "macro.h"
#include "provision.h"
#include "secmem.h"
#include "tpm.h"

#define DEFAULT_PCR_MASK (1u << 7)

int verify_image_prepare(const CliArgs *args, int argc _unused_, char **argv _unused_) {
        if (!args->key_file)
                return log_error_errno(-EINVAL, "image-prepare: where does the build-time key go? (--key-file FILE)");
        return 0;
}

int verify_provision(const CliArgs *args, int argc, char **argv _unused_) {
        if (!args->resume_online)
                return argc == 0 ? log_error_errno(-EINVAL, "provision: expected DEV [NAME]") : 0;
        if (argc == 1)
                return log_error_errno(-EINVAL, "provision --resume-online: give DEV and NAME, or neither (every volume handed over)");
        if (args->json)
                return log_error_errno(-EINVAL, "provision --resume-online: there is no --json output");
        return 0;
}

int verify_recover(const CliArgs *args, int argc, char **argv) {
        if (!args->escrow != !args->escrow_key)
                return log_error_errno(-EINVAL, "recover: --escrow and --key go together");
        if (args->escrow && args->recovery_key_file)
                return log_error_errno(-EINVAL, "recover: give --escrow or --recovery-key-file, not both");
        return verify_reseal(args, argc, argv);
}

int escrow_read_key(const CliArgs *args, char **ret, size_t *ret_size) {
        char why[LUKS_WHY_LEN] = "";
        int r;

        r = escrow_open(args->escrow, args->escrow_key, ret, ret_size, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "recover: %s", why);
        return 0;
}

static void print_pcrs(uint32_t mask) {
        const char *sep = "";

        for (unsigned i = 0; i < 32; i++)
                if (mask & (1u << i)) {
                        printf("%s%u", sep, i);
                        sep = ",";
                }
}

static int pcrs_json(uint32_t mask, json_object **ret) {
        json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (int i = 0; i < 32; i++)
                if ((mask & (1u << i)) && json_object_array_add(a, json_object_new_int(i)) < 0) {
                        json_object_put(a);
                        return -ENOMEM;
                }
        *ret = a;
        return 0;
}

static int print_prepare_json(const Config *cfg, const char *image, const ImagePrepareParams *p,
                              const ImagePrepareResult *res) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pcrs = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add(o, "image", json_object_new_string(image));
        if (r >= 0)
                r = json_add(o, "uuid", json_object_new_string(res->uuid));
        if (r >= 0)
                r = json_add(o, "encrypted", json_object_new_boolean(res->encrypted));
        if (r >= 0)
                r = json_add(o, "resumed", json_object_new_boolean(res->resumed));
        if (r >= 0)
                r = json_add(o, "grown", json_object_new_int64((int64_t) res->grown));
        if (r >= 0)
                r = json_add(o, "sector-size", json_object_new_int((int) res->sector_size));
        if (r >= 0)
                r = json_add(o, "keyslot", json_object_new_int(res->keyslot));
        if (r >= 0)
                r = json_add(o, "token", json_object_new_int(res->token));
        if (r >= 0)
                r = json_add(o, "pcr-bank", json_object_new_string(tpm_bank_name(p->bank)));
        if (r >= 0 && (r = pcrs_json(p->pcr_mask, &pcrs)) >= 0)
                r = json_add(o, "pcrs", pcrs);
        if (r >= 0)
                r = json_add(o, "gate-pcr", json_object_new_int((int) cfg->gate_pcr));
        if (r < 0)
                return r;
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

int verb_image_prepare(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv) {
        _cleanup_secmem_ char *unlock = NULL;
        ImagePrepareParams p = { .key_file = args->key_file,
                                 .pcr_mask = args->pcr_mask_given ? args->pcr_mask : DEFAULT_PCR_MASK };
        ImagePrepareResult res;
        char why[LUKS_WHY_LEN] = "";
        size_t unlock_size = 0;
        int r;

        r = tpm_bank_from_name(args->pcr_bank ? args->pcr_bank : "sha256", &p.bank);
        if (r < 0)
                return log_error_errno(r, "image-prepare: unknown PCR bank");
        if (p.pcr_mask & (1u << cfg->gate_pcr))
                return log_error_errno(-EINVAL, "image-prepare: PCR %u is the gate PCR, which the first boot binds anyway",
                                       cfg->gate_pcr);
        if (args->unlock_key_file) {
                r = ask_read_key_file(args->unlock_key_file, &unlock, &unlock_size);
                if (r < 0)
                        return log_error_errno(r, "image-prepare: cannot read the passphrase: %m");
                p.unlock_secret = unlock;
                p.unlock_size = unlock_size;
        }
        r = image_prepare(argv[0], &p, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "image-prepare: %s", why);
        if (args->json) {
                r = print_prepare_json(cfg, argv[0], &p, &res);
                if (r < 0)
                        return log_error_errno(r, "image-prepare: cannot print the result: %m");
                return 0;
        }
        if (res.resumed)
                printf("%s: finished the interrupted encryption", argv[0]);
        else if (res.encrypted)
                printf("%s: encrypted the %s file system in place (the image grew by %llu MiB)", argv[0], res.fs_type,
                       (unsigned long long) (res.grown >> 20));
        else
                printf("%s: LUKS2 already", argv[0]);
        printf(": LUKS2 %s, %u-byte sectors.\nBuild-time keyslot %d, provisioning token %d: the first boot re-keys the volume and seals it to %s PCRs ",
               res.uuid, res.sector_size, res.keyslot, res.token, tpm_bank_name(p.bank));
        print_pcrs(p.pcr_mask | (1u << cfg->gate_pcr));
        printf(" (gate PCR %u).\n", cfg->gate_pcr);
        if (!res.resumed)
                printf("Build-time key: %s (it opens every copy of this image until their first boot).\n", args->key_file);
        return 0;
}

static const char *stage_name(ProvisionStage s) {
        switch (s) {
        case PROVISION_STAGE_NONE:
                return "nothing";
        case PROVISION_STAGE_PREPARE:
                return "prepare";
        case PROVISION_STAGE_REKEY:
                return "re-key";
        case PROVISION_STAGE_FINISH:
                return "finish";
        }
        return "?";
}

static int print_provision_json(const char *device, const char *name, const char *escrow_out,
                                const ProvisionResult *res, const char *fingerprint) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add(o, "device", json_object_new_string(device));
        if (r >= 0)
                r = json_add(o, "uuid", json_object_new_string(res->uuid));
        if (r >= 0)
                r = json_add(o, "started-at", json_object_new_string(stage_name(res->started_at)));
        if (r >= 0)
                r = json_add(o, "tpm-keyslot", json_object_new_int(res->tpm_keyslot));
        if (r >= 0)
                r = json_add(o, "recovery-keyslot", json_object_new_int(res->recovery_keyslot));
        if (r >= 0 && res->escrowed)
                r = json_add(o, "escrow", json_object_new_string(escrow_out));
        if (r >= 0 && res->escrowed)
                r = json_add(o, "escrow-sha256", json_object_new_string(fingerprint));
        if (r >= 0)
                r = json_add(o, "activated", json_object_new_boolean(name != NULL));
        if (r >= 0)
                r = json_add(o, "rekey-pending", json_object_new_boolean(res->rekey_pending));
        if (r < 0)
                return r;
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

/* ---- provision --resume-online: cvmcrypt-reencrypt.service ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

static volatile sig_atomic_t stop_requested;

static void request_stop(int sig _unused_) {
        stop_requested = 1;
}

typedef struct OnlineProgress {
        const char *name;
        unsigned tenths; /* logged so far */
} OnlineProgress;

static int online_progress(uint64_t size, uint64_t offset, void *userdata) {
        OnlineProgress *p = userdata;
        unsigned tenths = size ? (unsigned) (offset * 10 / size) : 10;

        if (tenths > p->tenths && tenths < 10) {
                log_info("provision: %s: %u%% re-keyed", p->name, tenths * 10);
                p->tenths = tenths;
        }
        /* libcryptsetup stops after this hot zone and leaves the re-key to resume. */
        return stop_requested;
}

static int resume_one(const char *device, const char *name) {
        OnlineProgress progress = { .name = name };
        ProvisionOnlineResult res;
        char why[LUKS_WHY_LEN] = "";
        int r;

        log_info("provision: %s: re-keying %s online", name, device);
        r = provision_resume_online(device, name, online_progress, &progress, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "provision: %s", why);
        if (res.stopped)
                printf("%s: stopped; the re-key of %s resumes at the next start or boot.\n", name, device);
        else if (res.done)
                printf("%s: re-keyed online (LUKS2 %s): re-key keyslot and provisioning token removed.\n", name, res.uuid);
        else
                printf("%s: %s has no provisioning token: nothing to do.\n", name, device);
        return 0;
}

/* DEV NAME, or every volume a boot handed over in PROVISION_REENCRYPT_DIR. */
static int resume_online(int argc, char **argv) {
        struct sigaction sa = { .sa_handler = request_stop };
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;
        int r, result = 0;

        if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
                return log_error_errno(negative_errno(), "provision: cannot handle SIGTERM: %m");
        if (argc == 2)
                return resume_one(argv[0], argv[1]);
        dir = opendir(PROVISION_REENCRYPT_DIR);
        if (!dir && errno == ENOENT) {
                printf("No volume was handed over (%s is missing): nothing to do.\n", PROVISION_REENCRYPT_DIR);
                return 0;
        }
        if (!dir)
                return log_error_errno(negative_errno(), "provision: cannot open %s: %m", PROVISION_REENCRYPT_DIR);
        while (!stop_requested && (de = readdir(dir))) {
                _cleanup_free_ char *device = NULL;
                char why[LUKS_WHY_LEN] = "";

                if (de->d_name[0] == '.')
                        continue;
                r = provision_marker_device(de->d_name, &device, why, sizeof(why));
                if (r < 0)
                        r = log_error_errno(r, "provision: %s", why);
                else
                        r = resume_one(device, de->d_name);
                if (r < 0 && result == 0)
                        result = r;
        }
        return result;
}

int verb_provision(const Config *cfg, const CliArgs *args, int argc, char **argv) {
        _cleanup_(tpm_closep) TpmContext *tpm = NULL;
        const char *device, *name;
        ProvisionResult res;
        char why[LUKS_WHY_LEN] = "", fingerprint[65] = "";
        int r;

        if (args->resume_online)
                return resume_online(argc, argv);
        device = argv[0];
        name = argc > 1 ? argv[1] : NULL;

        r = tpm_open(cfg->tpm, &tpm);
        if (r < 0)
                return log_error_errno(r, "provision: cannot open the TPM %s: %m", cfg->tpm);
        r = provision_volume(cfg, tpm, device, name, NULL, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "provision: %s", why);
        if (r == 0) {
                printf("%s: no provisioning token: nothing to do.\n", device);
                return 0;
        }
        /* After the unseal that the event would otherwise break. */
        r = measure_provisioned(tpm, cfg->event_log, cfg->gate_pcr, res.uuid, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "provision: %s", why);
        if (r > 0)
                log_warning("provision: %s", why);
        if (res.escrowed) {
                hex_encode(res.escrow_fingerprint, sizeof(res.escrow_fingerprint), fingerprint);
                log_info("provision: recovery key escrowed to %s, fingerprint sha256:%s", cfg->provision_escrow_out,
                         fingerprint);
        } else if (res.started_at == PROVISION_STAGE_PREPARE)
                log_warning("provision: no escrow configured (provision-escrow-cert=): the volume has no recovery key");
        if (args->json) {
                r = print_provision_json(device, name, cfg->provision_escrow_out, &res, fingerprint);
                if (r < 0)
                        return log_error_errno(r, "provision: cannot print the result: %m");
                return 0;
        }
        if (res.rekey_pending)
                printf("%s: provisioned (LUKS2 %s): sealed to this TPM; the re-key to a fresh volume key is pending%s.\n",
                       device, res.uuid, res.started_at == PROVISION_STAGE_PREPARE ? "" : " (resumed an interrupted run)");
        else
                printf("%s: provisioned (LUKS2 %s): re-keyed to a fresh volume key, sealed to this TPM, build-time keyslot removed%s.\n",
                       device, res.uuid, res.started_at == PROVISION_STAGE_PREPARE ? "" : " (resumed an interrupted run)");
        if (res.escrowed)
                printf("Recovery key escrowed to %s (sha256:%s).\n", cfg->provision_escrow_out, fingerprint);
        if (res.rekey_pending)
                printf("%s\n", name ? "The volume is open; the re-key runs online (cvmcrypt-reencrypt.service, or provision --resume-online)."
                                    : "The new TPM slot opens the volume (not activated); the re-key runs when it is opened with a NAME.");
        else
                printf("%s\n", name ? "The volume is open." : "The new TPM slot opens the volume (not activated).");
        return 0;
}
