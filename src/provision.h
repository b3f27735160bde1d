/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "image.h"
#include "luks.h"
#include "tpm.h"

/* First-boot provisioning of an image that image-prepare made (image.h): every VM deployed from
 * one image starts with the same build-time volume key, so its first boot
 *   1. re-keys the volume to a fresh volume key from getrandom (LUKS2 reencryption),
 *   2. seals the new key to this VM's TPM (the token's PCRs plus the gate PCR, which holds the
 *      attestation verdict at this point of the boot),
 *   3. creates a recovery key and escrows it encrypted to the admin's certificate,
 *   4. drops the build-time keyslot and the provisioning token,
 * and the caller measures the event (measure_provisioned) once the volume is open.
 *
 * Every step is recorded in the LUKS2 header before the next begins, so a power cut at any point
 * resumes on the next run and loses nothing:
 *   prepare  (no re-key pending, the build-time slot still there): drops whatever an interrupted
 *            prepare left (every keyslot and token but the build-time ones), then adds the slots of
 *            the new key: a TPM slot, the recovery slot, and a slot for the re-key itself whose
 *            passphrase derives from the new key; the old key gets the same passphrase, since
 *            libcryptsetup opens both with one. The escrow file is written (atomically) before
 *            the re-key is initialized, so a pending re-key always has its recovery key escrowed.
 *   re-key   (pending): the new key comes from the TPM slot; libcryptsetup recovers a hot zone a
 *            crash cut off, then goes on. At its end libcryptsetup drops the old key's slots.
 *   finish   (done, the provisioning token without keyslot): drops the re-key slot, then the token.
 *
 * In the background (provision-reencrypt=background) the re-key is initialized but not run: the
 * volume opens with it pending (libcryptsetup maps the re-keyed part with the new key and the rest
 * with the old one), and the real root runs it online on the open volume
 * (provision_resume_online(), from cvmcrypt-reencrypt.service). The re-key passphrase gets there
 * through the kernel keyring (keyring.h), as PROVISION_KEY_PREFIX and the volume's UUID, and a
 * marker PROVISION_REENCRYPT_DIR/NAME holds the device path. A power cut during it leaves the re-key
 * pending, and the next boot opens the volume that way again (or finishes it offline in the
 * foreground); the finish stage runs at the end of the online re-key.
 *
 * Functions return 0 or a negative errno with `why` for the caller to log once, with the errors of
 * luks.h. A volume without a cvmcrypt-provision token is provisioned already: 0, PROVISION_STAGE_NONE. */

#define PROVISION_ESCROW_MAX (64u * 1024) /* bytes of an escrow file */
#define PROVISION_RUN_DIR "/run/cvmcrypt"
#define PROVISION_REENCRYPT_DIR PROVISION_RUN_DIR "/reencrypt"
#define PROVISION_KEY_PREFIX "cvmcrypt:reencrypt:"

typedef struct ProvisionParams {
        unsigned gate_pcr;
        bool has_attest;            /* the new TPM token demands attestation against this policy digest */
        uint8_t attest[32];
        const char *escrow_cert;    /* admin certificate (PEM) the recovery key is encrypted to; NULL: none */
        const char *escrow_out;     /* where the escrow (PEM CMS) is written */
        bool background;            /* leave the re-key pending (and a crashed hot zone restored) */
        ReencryptProgress progress;
        void *userdata;
} ProvisionParams;

typedef enum ProvisionStage {
        PROVISION_STAGE_NONE,       /* no cvmcrypt-provision token: nothing to do */
        PROVISION_STAGE_PREPARE,
        PROVISION_STAGE_REKEY,
        PROVISION_STAGE_FINISH,
} ProvisionStage;

typedef struct ProvisionResult {
        ProvisionStage started_at;  /* where this run found the volume */
        char uuid[37];
        int tpm_keyslot, recovery_keyslot;     /* -1: not known (made by an earlier, interrupted run) */
        bool escrowed;
        uint8_t escrow_fingerprint[32];        /* SHA-256 of the escrow's DER encoding */
        bool rekey_pending;                    /* background: the re-key is left to run online */
} ProvisionResult;

int provision_run(const char *device, TpmContext *tpm, const ProvisionParams *p, ProvisionResult *ret, char *why,
                  size_t n);

/* The first boot's whole step for one volume, for `cvmcrypt boot` and the provision verb: the
 * parameters from the configuration (escrow, gate PCR; a configuration that attests makes the new
 * token demand it, as enroll --attest does), provision_run(), then the volume opened through its
 * new TPM slot as name (NULL: the key only checked), with hooks as luks_unlock_tpm() takes them.
 * In the background (cfg->provision_reencrypt) the new slot's key opens the volume with the re-key
 * pending, which is handed over for provision_resume_online() (name NULL: nothing is handed over).
 * Returns 1 when it provisioned (the volume is open), 0 when the volume has no token (the caller
 * unlocks it as usual), or a negative errno with why. The caller measures the event
 * (measure_provisioned) once nothing else has to unseal against the gate PCR's present value. */
int provision_volume(const Config *cfg, TpmContext *tpm, const char *device, const char *name,
                     const LuksUnlockHooks *hooks, ProvisionResult *ret, char *why, size_t n);

typedef struct ProvisionOnlineResult {
        char uuid[37];
        bool done;                  /* re-keyed, the re-key slot and the token dropped, the hand-over too */
        bool stopped;               /* progress asked to stop: the re-key stays pending and resumes later */
} ProvisionOnlineResult;

/* The background re-key on the open volume name (whose device holds the header), with the
 * passphrase that open_pending handed over in the keyring; then the finish stage, and the key and
 * the marker go. progress returning non-zero stops it after the hot zone at hand (SIGTERM). Neither
 * done nor stopped: the volume has no provisioning token (any hand-over left is removed). Errors
 * as provision_run(), and -ENOKEY when no passphrase was handed over, -EBUSY when the re-key has
 * not started. */
int provision_resume_online(const char *device, const char *name, ReencryptProgress progress, void *userdata,
                            ProvisionOnlineResult *ret, char *why, size_t n);
/* The device path in the marker of the volume name (a file in PROVISION_REENCRYPT_DIR). */
int provision_marker_device(const char *name, char **ret, char *why, size_t n);

/* Escrow: the recovery key in a CMS EnvelopedData (AES-256-CBC content key, RSA-OAEP with SHA-256
 * or ECDH with a SHA-256 KDF to the certificate's key), PEM. The file holds nothing else: no plaintext,
 * no key identifier but the recipient's issuer and serial. The fingerprint is SHA-256 over the DER
 * encoding of that ciphertext: it names the file and tells nothing of the key. */
int escrow_seal(const char *cert_path, const char *secret, size_t size, char **ret_pem, size_t *ret_pem_size,
                uint8_t ret_fingerprint[32], char *why, size_t n);
/* The admin side: decrypts with the private key (PEM); *ret is a secmem buffer with the content. */
int escrow_open(const char *escrow_path, const char *key_path, char **ret, size_t *ret_size, char *why, size_t n);
/* Parses an escrow (PEM or DER, at most PROVISION_ESCROW_MAX bytes) and decrypts it with pkey when
 * given (an EVP_PKEY *); exposed for the fuzz target. */
int escrow_decode(const uint8_t *buf, size_t size, void *pkey, char **ret, size_t *ret_size, char *why, size_t n);
