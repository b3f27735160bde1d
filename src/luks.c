/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libcryptsetup.h>
#include <string.h>
#include <sys/random.h>

#include "encoding.h"
#include "log.h"
#include "luks-header.h"
#include "luks.h"
#include "macro.h"
#include "recovery-key.h"
#include "secmem.h"
#include "token.h"

#define SECRET_SIZE 32
#define VK_MAX 64

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

/* libcryptsetup prints to stderr by default; its messages are details for --verbose only. */
static void log_from_libcryptsetup(int level _unused_, const char *msg, void *usrptr _unused_) {
        char line[512];
        size_t len = strlen(msg);

        (void) snprintf(line, sizeof(line), "libcryptsetup: %.*s", (int) (len && msg[len - 1] == '\n' ? len - 1 : len),
                        msg);
        log_debug("%s", line);
}

void luks_log_setup(void) {
        crypt_set_log_callback(NULL, log_from_libcryptsetup, NULL);
}

static int random_bytes(void *p, size_t n) {
        return getrandom(p, n, 0) == (ssize_t) n ? 0 : -EIO;
}

/* Snapshot + allow-list + a libcryptsetup context on the checked copy, with data_device as its data
 * device; NULL for a context that reads the header alone, enough to check a volume key and cheaper
 * (libcryptsetup probes a data device with a direct-I/O read). */
static int open_checked_on(const char *device, const char *data_device, LuksSnapshotFlags flags, LuksHeader *hdr,
                           struct crypt_device **ret, char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        char reason[LUKS_WHY_MAX] = "";
        int r;

        luks_log_setup();
        r = luks_header_snapshot(device, flags, hdr, reason, sizeof(reason));
        if (r == -ENOENT || r == -ENXIO || r == -EACCES)
                return format_reason(why, n, r == -EACCES ? r : -ENODEV, "%s: cannot read: %s", device, strerror(-r));
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: LUKS2 header rejected: %s", device, reason);
        r = crypt_init_data_device(&cd, hdr->path, data_device);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: libcryptsetup cannot load the checked header: %s", device,
                            strerror(-r));
        *ret = TAKE_PTR(cd);
        return 0;
}

static int open_checked(const char *device, LuksSnapshotFlags flags, LuksHeader *hdr, struct crypt_device **ret,
                        char *why, size_t n) {
        return open_checked_on(device, device, flags, hdr, ret, why, n);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != v)
                        return false;
        return true;
}

/* Current values for the PCRs that are not predicted; a PCR nobody extended binds to nothing. */
static int fill_current_pcrs(TpmContext *tpm, const EnrollParams *p, TpmPcrValues *out, char *why, size_t n) {
        uint32_t current = p->pcrs.mask & ~p->predicted_mask;
        size_t size = tpm_bank_digest_size(p->pcrs.bank);
        TpmPcrValues now;
        int r;

        *out = p->pcrs;
        if (current == 0)
                return 0;
        r = tpm_pcr_read(tpm, p->pcrs.bank, current, &now);
        if (r < 0)
                return format_reason(why, n, r, "cannot read PCRs: %s", strerror(-r));
        for (unsigned i = 0; i < TPM_PCR_MAX; i++) {
                if (!(current & (1u << i)))
                        continue;
                if (all_bytes(now.value[i], size, 0) || all_bytes(now.value[i], size, 0xff))
                        return format_reason(why, n, -ENOMEDIUM,
                                    "PCR %u has never been extended; binding to it protects nothing (give --pcr-value %u=HEX to bind to a predicted value)",
                                    i, i);
                memcpy(out->value[i], now.value[i], size);
        }
        return 0;
}

/* Keyslots for high-entropy secrets: a slow KDF adds nothing but boot time. */
int luks_use_fast_kdf(struct crypt_device *cd) {
        static const struct crypt_pbkdf_type fast = {
                .type = CRYPT_KDF_PBKDF2,
                .hash = "sha512",
                .iterations = 1000,
                .flags = CRYPT_PBKDF_NO_BENCHMARK,
        };

        return crypt_set_pbkdf_type(cd, &fast);
}

/* A writable context on the real device whose header is still the one we checked and whose
 * digest accepts vk (when given). */
static int open_for_write(const char *device, const LuksHeader *hdr, const uint8_t *vk, size_t vk_size,
                          struct crypt_device **ret, char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        const char *uuid;
        int r;

        r = crypt_init(&cd, device);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot open for writing: %s", device, strerror(-r));
        uuid = crypt_get_uuid(cd);
        if (!uuid || strcmp(uuid, hdr->info.uuid) != 0 || (vk && crypt_volume_key_verify(cd, (const char *) vk, vk_size) < 0))
                return format_reason(why, n, -EBUSY, "%s: the header changed while we worked on it", device);
        r = luks_use_fast_kdf(cd);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot set the keyslot KDF: %s", device, strerror(-r));
        *ret = TAKE_PTR(cd);
        return 0;
}

/* key_flags 0: vk is the volume key; else crypt_keyslot_add_by_key() flags for a key that is not yet
 * the volume's (provisioning's new key). */
static int add_keyslot(struct crypt_device *cd, const uint8_t *vk, size_t vk_size, const char *pass, size_t pass_size,
                       uint32_t key_flags) {
        if (key_flags)
                return crypt_keyslot_add_by_key(cd, CRYPT_ANY_SLOT, (const char *) vk, vk_size, pass, pass_size, key_flags);
        return crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *) vk, vk_size, pass, pass_size);
}

static int add_tpm_slot(struct crypt_device *cd, TpmContext *tpm, const EnrollParams *p, const TpmPcrValues *pcrs,
                        const uint8_t *vk, size_t vk_size, uint32_t key_flags, EnrollResult *res, char *why, size_t n) {
        _cleanup_secmem_ uint8_t *payload = secmem_alloc(SECRET_SIZE + VK_MAX);
        _cleanup_free_ char *json = NULL;
        TpmSealed sealed = {};
        Tpm2Token tok = {};
        int r, slot;

        if (!payload)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = random_bytes(payload, SECRET_SIZE);
        if (r < 0)
                return format_reason(why, n, r, "cannot generate the secret");
        /* The sealed object holds the keyslot secret and the volume key itself. Unlock checks that
         * key against the volume's digest: a swapped volume or a forged header cannot accept a key
         * the host never saw, and unlocking skips the keyslot's anti-forensic merge, the slow part
         * of a LUKS2 open. The keyslot stays, so the slot is visible, removable and revocable. */
        memcpy(payload + SECRET_SIZE, vk, vk_size);
        r = tpm_seal(tpm, pcrs, p->pin, p->pin_size, payload, SECRET_SIZE + vk_size, &sealed);
        if (r < 0)
                return format_reason(why, n, r, "sealing to the TPM failed: %s", strerror(-r));
        if (sealed.blob_size > sizeof(tok.blob)) {
                tpm_sealed_done(&sealed);
                return format_reason(why, n, -E2BIG, "sealed blob too large");
        }
        slot = add_keyslot(cd, vk, vk_size, (const char *) payload, SECRET_SIZE, key_flags);
        if (slot < 0) {
                tpm_sealed_done(&sealed);
                return format_reason(why, n, slot, "adding the TPM keyslot failed: %s", strerror(-slot));
        }
        tok = (Tpm2Token){ .keyslot = (unsigned) slot, .blob_size = sealed.blob_size, .pcrs = *pcrs,
                           .srk_name_size = sealed.srk_name_size, .pin = p->pin != NULL, .has_attest = p->has_attest };
        memcpy(tok.attest, p->attest, sizeof(tok.attest));
        memcpy(tok.blob, sealed.blob, sealed.blob_size);
        memcpy(tok.policy_hash, sealed.policy, sizeof(tok.policy_hash));
        memcpy(tok.srk_name, sealed.srk_name, sealed.srk_name_size);
        tpm_sealed_done(&sealed);
        r = token_tpm2_format(&tok, &json);
        if (r >= 0)
                r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
        if (r < 0) {
                /* Without its token the slot is useless: take it back out. */
                (void) crypt_keyslot_destroy(cd, slot);
                return format_reason(why, n, r, "writing the token failed: %s", strerror(-r));
        }
        res->tpm_keyslot = slot;
        res->tpm_token = r;
        return 0;
}

static int add_recovery_slot(struct crypt_device *cd, const uint8_t *vk, size_t vk_size, uint32_t key_flags,
                             EnrollResult *res, char *why, size_t n) {
        _cleanup_secmem_ char *formatted = NULL, *pass = NULL;
        _cleanup_free_ char *json = NULL;
        int r, slot;

        r = recovery_key_generate(&formatted, &pass);
        if (r < 0)
                return format_reason(why, n, r, "cannot generate a recovery key");
        slot = add_keyslot(cd, vk, vk_size, pass, RECOVERY_KEY_CHARS, key_flags);
        if (slot < 0)
                return format_reason(why, n, slot, "adding the recovery keyslot failed: %s", strerror(-slot));
        r = token_recovery_format(&(RecoveryToken){ .keyslot = (unsigned) slot }, &json);
        if (r >= 0)
                r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
        if (r < 0) {
                (void) crypt_keyslot_destroy(cd, slot);
                return format_reason(why, n, r, "writing the recovery token failed: %s", strerror(-r));
        }
        res->recovery_keyslot = slot;
        res->recovery_token = r;
        res->recovery_key = TAKE_PTR(formatted);
        return 0;
}

int luks_enroll(const char *device, const char *unlock_secret, size_t unlock_size, TpmContext *tpm,
                const EnrollParams *p, EnrollResult *ret, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *ro = NULL, *cd = NULL;
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(VK_MAX);
        EnrollResult res = { -1, -1, -1, -1, NULL };
        size_t vk_size = VK_MAX;
        TpmPcrValues pcrs;
        int r;

        if (!vk)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = open_checked(device, LUKS_SNAPSHOT_KEYSLOTS, &hdr, &ro, why, n);
        if (r < 0)
                return r;
        r = crypt_volume_key_get(ro, CRYPT_ANY_SLOT, (char *) vk, &vk_size, unlock_secret, unlock_size);
        if (r < 0)
                return format_reason(why, n, -ENOKEY, "%s: the passphrase or key file opens no keyslot", device);
        r = fill_current_pcrs(tpm, p, &pcrs, why, n);
        if (r < 0)
                return r;
        r = open_for_write(device, &hdr, vk, vk_size, &cd, why, n);
        if (r < 0)
                return r;
        r = add_tpm_slot(cd, tpm, p, &pcrs, vk, vk_size, 0, &res, why, n);
        if (r < 0)
                return r;
        if (p->recovery_key) {
                r = add_recovery_slot(cd, vk, vk_size, 0, &res, why, n);
                if (r < 0)
                        return r;
        }
        *ret = res;
        return 0;
}

void enroll_result_done(EnrollResult *r) {
        r->recovery_key = secmem_free(r->recovery_key);
}

/* Names the PCRs whose current value differs from what the token was sealed to. */
static int explain_pcr_refusal(TpmContext *tpm, const Tpm2Token *t, int token_id, char *why, size_t n) {
        size_t size = tpm_bank_digest_size(t->pcrs.bank), len = 0;
        TpmPcrValues now;
        int r;

        r = tpm_pcr_read(tpm, t->pcrs.bank, t->pcrs.mask, &now);
        if (r < 0)
                return format_reason(why, n, -EPERM, "token %d: the TPM refused the PCR policy", token_id);
        why[0] = '\0';
        for (unsigned i = 0; i < TPM_PCR_MAX && len + 1 < n; i++) {
                char sealed[2 * TPM_DIGEST_MAX + 1], cur[2 * TPM_DIGEST_MAX + 1];

                if (!(t->pcrs.mask & (1u << i)) || memcmp(now.value[i], t->pcrs.value[i], size) == 0)
                        continue;
                hex_encode(t->pcrs.value[i], size, sealed);
                hex_encode(now.value[i], size, cur);
                len += (size_t) snprintf(why + len, n - len, "%sPCR %u differs from the sealed policy (sealed %s, now %s)",
                                         len ? "; " : "", i, sealed, cur);
        }
        if (len == 0)
                return format_reason(why, n, -EPERM, "token %d: the TPM refused the PCR policy", token_id);
        return -EPERM;
}

static int explain_unseal_error(TpmContext *tpm, const Tpm2Token *t, int token_id, int r, char *why, size_t n) {
        switch (r) {
        case -EPERM:
                return explain_pcr_refusal(tpm, t, token_id, why, n);
        case -EREMCHG:
                return format_reason(why, n, r, "token %d: the TPM's SRK differs from the one at enroll (TPM cleared, or another VM)",
                            token_id);
        case -EUCLEAN:
                return format_reason(why, n, r, "token %d: the sealed object's policy differs from the token's policy hash",
                            token_id);
        case -ENOKEY:
                return format_reason(why, n, r, "token %d: wrong PIN", token_id);
        case -ENOLCK:
                return format_reason(why, n, r, "the TPM is in dictionary-attack lockout");
        case -EBADMSG:
                return format_reason(why, n, -EUCLEAN, "token %d: the sealed blob is malformed", token_id);
        default:
                return format_reason(why, n, r, "token %d: unsealing failed: %s", token_id, strerror(-r));
        }
}

/* data_device: a context opened on the header alone gets its data device here, first. */
static int activate(struct crypt_device *cd, const char *data_device, const char *name, const LuksHeader *hdr,
                    const uint8_t *vk, size_t vk_size, char *why, size_t n) {
        char def[64];
        int r;

        if (!name) /* test mode: the key was already checked against the volume's digest */
                return 0;
        if (data_device) {
                r = crypt_set_data_device(cd, data_device);
                if (r < 0)
                        return format_reason(why, n, r, "%s: cannot open the data device: %s", data_device, strerror(-r));
        }
        if (!*name) {
                (void) snprintf(def, sizeof(def), "luks-%s", hdr->info.uuid);
                name = def;
        }
        r = crypt_activate_by_volume_key(cd, name, (const char *) vk, vk_size, 0);
        if (r < 0)
                return format_reason(why, n, r, "activating %s failed: %s", name, strerror(-r));
        return 0;
}

/* Unseal with one token and check the sealed volume key against the volume; vk receives it. */
static int unseal_token(struct crypt_device *cd, TpmContext *tpm, int id, const Tpm2Token *t, const char *pin,
                        size_t pin_size, uint8_t *vk, size_t *vk_size, char *why, size_t n) {
        _cleanup_secmem_ uint8_t *payload = NULL;
        uint8_t policy[32];
        TpmSealed sealed = { .blob = (uint8_t *) t->blob, .blob_size = t->blob_size,
                             .srk_name_size = t->srk_name_size };
        size_t size = 0;
        int r, key_size = crypt_get_volume_key_size(cd);

        r = crypt_keyslot_status(cd, (int) t->keyslot);
        if (r != CRYPT_SLOT_ACTIVE && r != CRYPT_SLOT_ACTIVE_LAST)
                return format_reason(why, n, -ENOENT, "token %d: its keyslot %u is gone", id, t->keyslot);
        if (tpm_policy_digest(&t->pcrs, t->pin, policy) < 0 || memcmp(policy, t->policy_hash, 32) != 0)
                return format_reason(why, n, -EUCLEAN, "token %d: its PCR values do not match its policy hash (tampered token)", id);
        if (t->pin && !pin)
                return format_reason(why, n, -ENOKEY, "token %d needs a PIN (--pin-file)", id);
        memcpy(sealed.policy, t->policy_hash, 32);
        memcpy(sealed.srk_name, t->srk_name, t->srk_name_size);
        r = tpm_unseal(tpm, &sealed, t->pcrs.bank, t->pcrs.mask, t->pin ? pin : NULL, pin_size, &payload, &size);
        if (r < 0)
                return explain_unseal_error(tpm, t, id, r, why, n);
        if (key_size <= 0 || (size_t) key_size > VK_MAX || size != SECRET_SIZE + (size_t) key_size ||
            crypt_volume_key_verify(cd, (const char *) payload + SECRET_SIZE, (size_t) key_size) < 0)
                return format_reason(why, n, -EKEYREJECTED,
                            "token %d: the volume key sealed at enroll does not open this volume (volume swapped or header forged)",
                            id);
        memcpy(vk, payload + SECRET_SIZE, (size_t) key_size);
        *vk_size = (size_t) key_size;
        return 0;
}

static bool token_is(struct crypt_device *cd, int id, const char *type) {
        const char *t = NULL;
        crypt_token_info info = crypt_token_status(cd, id, &t);

        return (info == CRYPT_TOKEN_EXTERNAL || info == CRYPT_TOKEN_EXTERNAL_UNKNOWN) && t && strcmp(t, type) == 0;
}

/* The token demanded attestation and it failed (attest_why): the TPM had the last word on the unseal
 * (r), and the attestation's error is what the caller gets. */
static int attest_refused(int attest_r, const char *attest_why, int r, char *why, size_t n) {
        char tpm_why[LUKS_WHY_LEN];

        if (r >= 0)
                return format_reason(why, n, attest_r, "%s; yet the TPM unsealed: the token is not bound to the attested gate PCR value",
                                     attest_why);
        (void) snprintf(tpm_why, sizeof(tpm_why), "%s", why);
        return format_reason(why, n, attest_r, "%s; the TPM refused: %s", attest_why, tpm_why);
}

/* The unlocked volume, for the caller; the key never leaves this secure buffer. */
static int report_unlocked(const LuksUnlockHooks *hooks, const LuksHeader *hdr, const uint8_t *vk, size_t vk_size,
                           char *why, size_t n) {
        int r;

        if (!hooks || !hooks->unlocked)
                return 0;
        r = hooks->unlocked(hooks->userdata, hdr->info.uuid, vk, vk_size);
        if (r < 0)
                return format_reason(why, n, r, "the volume is open, but recording it failed: %s", strerror(-r));
        return 0;
}

int luks_unlock_tpm(const char *device, const char *name, TpmContext *tpm, const char *pin, size_t pin_size,
                    const LuksUnlockHooks *hooks, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(VK_MAX);
        int r = -ENOENT;

        if (!vk)
                return format_reason(why, n, -ENOMEM, "out of memory");
        /* The key comes from the TPM and is checked against the digest: no keyslot is read, and the
         * data device is only needed to activate. */
        r = open_checked_on(device, NULL, LUKS_SNAPSHOT_HEADERS, &hdr, &cd, why, n);
        if (r < 0)
                return r;
        r = format_reason(why, n, -ENOENT, "%s: no %s token", device, TOKEN_TPM2_TYPE);
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                char reason[TOKEN_WHY_MAX] = "", attest_why[LUKS_WHY_LEN] = "";
                const char *json = NULL;
                size_t vk_size = VK_MAX;
                Tpm2Token t;
                int ra;

                if (!(hdr.info.tokens & (1u << id)) || !token_is(cd, id, TOKEN_TPM2_TYPE))
                        continue;
                if (crypt_token_json_get(cd, id, &json) < 0) {
                        r = format_reason(why, n, -EUCLEAN, "token %d: cannot be read", id);
                        continue;
                }
                r = token_tpm2_parse(json, &t, reason, sizeof(reason));
                if (r < 0) {
                        r = format_reason(why, n, r == -ENOENT ? r : -EUCLEAN, "token %d: %s", id, reason);
                        continue;
                }
                ra = t.has_attest && hooks && hooks->attest ? hooks->attest(hooks->userdata, &t, id, attest_why, sizeof(attest_why)) : 0;
                r = unseal_token(cd, tpm, id, &t, pin, pin_size, vk, &vk_size, why, n);
                if (ra < 0) {
                        r = attest_refused(ra, attest_why, r, why, n);
                        continue;
                }
                if (r >= 0) {
                        r = activate(cd, device, name, &hdr, vk, vk_size, why, n);
                        return r < 0 ? r : report_unlocked(hooks, &hdr, vk, vk_size, why, n);
                }
        }
        return r;
}

/* The volume key from a recovery key (normalized) through the cvmcrypt-recovery tokens. */
static int recovery_volume_key(struct crypt_device *cd, const char *device, const LuksHeader *hdr, const char *pass,
                               uint8_t *vk, size_t *vk_size, char *why, size_t n) {
        int r = format_reason(why, n, -ENOENT, "%s: no recovery key is enrolled", device);

        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                char reason[TOKEN_WHY_MAX] = "";
                const char *json = NULL;
                size_t size = *vk_size;
                RecoveryToken t;

                if (!(hdr->info.tokens & (1u << id)) || !token_is(cd, id, TOKEN_RECOVERY_TYPE))
                        continue;
                if (crypt_token_json_get(cd, id, &json) < 0 || token_recovery_parse(json, &t, reason, sizeof(reason)) < 0) {
                        r = format_reason(why, n, -EUCLEAN, "token %d: %s", id, reason);
                        continue;
                }
                if (crypt_volume_key_get(cd, (int) t.keyslot, (char *) vk, &size, pass, RECOVERY_KEY_CHARS) < 0) {
                        r = format_reason(why, n, -ENOKEY, "%s: the recovery key does not open keyslot %u", device, t.keyslot);
                        continue;
                }
                *vk_size = size;
                return 0;
        }
        return r;
}

int luks_unlock_recovery(const char *device, const char *name, const char *typed_key, size_t typed_size, char *why,
                         size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(VK_MAX);
        _cleanup_secmem_ char *pass = NULL;
        size_t vk_size = VK_MAX;
        int r;

        if (!vk)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if (recovery_key_normalize(typed_key, typed_size, &pass) < 0)
                return format_reason(why, n, -ENOKEY, "that is not a recovery key (64 characters of cbdefghijklnrtuv)");
        r = open_checked(device, LUKS_SNAPSHOT_KEYSLOTS, &hdr, &cd, why, n);
        if (r < 0)
                return r;
        r = recovery_volume_key(cd, device, &hdr, pass, vk, &vk_size, why, n);
        if (r < 0)
                return r;
        return activate(cd, NULL, name, &hdr, vk, vk_size, why, n);
}

/* ---- Admin lifecycle: status, reseal and recover, remove ---- */

static bool keyslot_active(struct crypt_device *cd, int slot) {
        crypt_keyslot_info s = crypt_keyslot_status(cd, slot);

        return s == CRYPT_SLOT_ACTIVE || s == CRYPT_SLOT_ACTIVE_LAST;
}

static uint32_t token_keyslots(struct crypt_device *cd, int token) {
        uint32_t mask = 0;

        for (int slot = 0; slot < LUKS_SLOTS_MAX; slot++)
                if (crypt_token_is_assigned(cd, token, slot) == 0)
                        mask |= UINT32_C(1) << slot;
        return mask;
}

/* "PCR 7" or "PCRs 4, 7" */
static const char *pcr_list(uint32_t mask, char *buf, size_t n) {
        size_t len = (size_t) snprintf(buf, n, "PCR%s", (mask & (mask - 1)) ? "s" : "");

        for (unsigned i = 0; i < TPM_PCR_MAX && len < n; i++)
                if (mask & (1u << i))
                        len += (size_t) snprintf(buf + len, n - len, "%s%u", len > 4 ? ", " : " ", i);
        return buf;
}

static void judge_tpm2(struct crypt_device *cd, TpmContext *tpm, LuksTokenStatus *ts) {
        const Tpm2Token *t = &ts->tpm2_token;
        size_t size = tpm_bank_digest_size(t->pcrs.bank), srk_size = 0;
        uint8_t policy[32], srk[TPM_NAME_MAX];
        char list[96];

        ts->verdict = LUKS_VERDICT_NO;
        if (!keyslot_active(cd, (int) t->keyslot)) {
                (void) format_reason(ts->why, sizeof(ts->why), 0, "its keyslot %u is gone", t->keyslot);
                return;
        }
        if (tpm_policy_digest(&t->pcrs, t->pin, policy) < 0 || memcmp(policy, t->policy_hash, sizeof(policy)) != 0) {
                (void) format_reason(ts->why, sizeof(ts->why), 0, "its PCR values do not match its policy hash (tampered token)");
                return;
        }
        ts->verdict = LUKS_VERDICT_UNKNOWN;
        if (!tpm) {
                (void) format_reason(ts->why, sizeof(ts->why), 0, "the TPM is not available");
                return;
        }
        if (tpm_srk_name(tpm, srk, &srk_size) < 0) {
                (void) format_reason(ts->why, sizeof(ts->why), 0, "the TPM's SRK cannot be read");
                return;
        }
        ts->srk_read = true;
        ts->srk_matches = srk_size == t->srk_name_size && memcmp(srk, t->srk_name, srk_size) == 0;
        ts->pcrs_read = tpm_pcr_read(tpm, t->pcrs.bank, t->pcrs.mask, &ts->now) >= 0;
        for (unsigned i = 0; ts->pcrs_read && i < TPM_PCR_MAX; i++)
                if ((t->pcrs.mask & (1u << i)) && memcmp(ts->now.value[i], t->pcrs.value[i], size) != 0)
                        ts->differs |= 1u << i;
        ts->verdict = LUKS_VERDICT_NO;
        if (!ts->srk_matches)
                (void) format_reason(ts->why, sizeof(ts->why), 0,
                                     "the TPM's SRK differs from the one at enroll (TPM cleared, or another VM)");
        else if (!ts->pcrs_read) {
                ts->verdict = LUKS_VERDICT_UNKNOWN;
                (void) format_reason(ts->why, sizeof(ts->why), 0, "the PCRs cannot be read");
        } else if (ts->differs)
                (void) format_reason(ts->why, sizeof(ts->why), 0, "%s %s from the sealed policy",
                                     pcr_list(ts->differs, list, sizeof(list)),
                                     (ts->differs & (ts->differs - 1)) ? "differ" : "differs");
        else {
                ts->verdict = LUKS_VERDICT_YES;
                (void) format_reason(ts->why, sizeof(ts->why), 0, "%s", t->pin ? "with its PIN" : "");
        }
}

static void status_token(struct crypt_device *cd, TpmContext *tpm, LuksTokenStatus *ts) {
        const char *type = NULL, *json = NULL;
        RecoveryToken rt;
        int r;

        (void) crypt_token_status(cd, ts->id, &type);
        (void) snprintf(ts->type, sizeof(ts->type), "%s", type ? type : "");
        ts->tpm2 = type && strcmp(type, TOKEN_TPM2_TYPE) == 0;
        ts->recovery = type && strcmp(type, TOKEN_RECOVERY_TYPE) == 0;
        if (!ts->tpm2 && !ts->recovery)
                return;
        ts->verdict = LUKS_VERDICT_NO;
        if (crypt_token_json_get(cd, ts->id, &json) < 0) {
                (void) format_reason(ts->why, sizeof(ts->why), 0, "the token cannot be read");
                return;
        }
        r = ts->tpm2 ? token_tpm2_parse(json, &ts->tpm2_token, ts->why, sizeof(ts->why))
                     : token_recovery_parse(json, &rt, ts->why, sizeof(ts->why));
        if (r < 0)
                return;
        ts->parsed = true;
        if (ts->tpm2)
                judge_tpm2(cd, tpm, ts);
}

int luks_status(const char *device, TpmContext *tpm, LuksStatus *ret, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r, key_size;

        r = open_checked(device, LUKS_SNAPSHOT_HEADERS, &hdr, &cd, why, n);
        if (r < 0)
                return r;
        key_size = crypt_get_volume_key_size(cd);
        ret->sector_size = hdr.info.sector_size;
        ret->volume_key_size = key_size > 0 ? (uint32_t) key_size : 0;
        ret->keyslots = hdr.info.keyslots;
        ret->n_tokens = 0;
        memcpy(ret->uuid, hdr.info.uuid, sizeof(ret->uuid));
        memcpy(ret->label, hdr.info.label, sizeof(ret->label));
        memcpy(ret->cipher, hdr.info.cipher, sizeof(ret->cipher));
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                LuksTokenStatus *ts;

                if (!(hdr.info.tokens & (1u << id)))
                        continue;
                ts = &ret->tokens[ret->n_tokens++];
                memset(ts, 0, sizeof(*ts));
                ts->id = id;
                ts->keyslots = token_keyslots(cd, id);
                ts->verdict = LUKS_VERDICT_UNKNOWN;
                status_token(cd, tpm, ts);
        }
        return 0;
}

/* The cvmcrypt-tpm2 token to replace: the one asked for, else the only one; -1 when there is none. */
static int pick_old_token(struct crypt_device *cd, const char *device, const LuksHeader *hdr, int want, int *ret,
                          char *why, size_t n) {
        uint32_t mine = 0;
        char list[96];

        for (int id = 0; id < LUKS_SLOTS_MAX; id++)
                if ((hdr->info.tokens & (1u << id)) && token_is(cd, id, TOKEN_TPM2_TYPE))
                        mine |= 1u << id;
        if (want >= 0) {
                if (want >= LUKS_SLOTS_MAX || !(mine & (1u << want)))
                        return format_reason(why, n, -ENOENT, "%s: token %d is not a %s token", device, want, TOKEN_TPM2_TYPE);
                *ret = want;
                return 0;
        }
        if (mine & (mine - 1)) {
                (void) pcr_list(mine, list, sizeof(list)); /* "PCRs 0, 2": reuse the list, drop the word */
                return format_reason(why, n, -ENOTUNIQ, "%s: several %s tokens (%s): choose one with --token", device,
                                     TOKEN_TPM2_TYPE, strchr(list, ' ') + 1);
        }
        *ret = mine ? __builtin_ctz(mine) : -1;
        return 0;
}

static int read_tpm2_token(struct crypt_device *cd, int id, Tpm2Token *ret, char *why, size_t n) {
        char reason[TOKEN_WHY_MAX] = "";
        const char *json = NULL;
        int r;

        if (crypt_token_json_get(cd, id, &json) < 0)
                return format_reason(why, n, -EUCLEAN, "token %d: cannot be read", id);
        r = token_tpm2_parse(json, ret, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, r == -ENOENT ? r : -EUCLEAN, "token %d: %s", id, reason);
        return 0;
}

/* A passphrase opens any keyslot; a recovery key, typed with or without dashes, its own. */
static int volume_key_from_secret(struct crypt_device *cd, const char *device, const LuksHeader *hdr,
                                  const ResealParams *p, uint8_t *vk, size_t *vk_size, char *why, size_t n) {
        _cleanup_secmem_ char *pass = NULL;
        size_t size = *vk_size;
        bool is_recovery_key = recovery_key_normalize(p->secret, p->secret_size, &pass) >= 0;

        if (p->recovery_only) {
                if (!is_recovery_key)
                        return format_reason(why, n, -ENOKEY, "that is not a recovery key (64 characters of cbdefghijklnrtuv)");
                return recovery_volume_key(cd, device, hdr, pass, vk, vk_size, why, n);
        }
        if (crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *) vk, &size, p->secret, p->secret_size) >= 0 ||
            (is_recovery_key && (size = *vk_size,
                                 crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *) vk, &size, pass, RECOVERY_KEY_CHARS) >= 0))) {
                *vk_size = size;
                return 0;
        }
        return format_reason(why, n, -ENOKEY, "%s: the passphrase or recovery key opens no keyslot", device);
}

/* The binding of the new slot: what the admin gave, else the old token's bank and PCRs. */
static int reseal_binding(const ResealParams *p, const Tpm2Token *old, int old_id, EnrollParams *ret, char *why,
                          size_t n) {
        *ret = p->binding;
        ret->recovery_key = false;
        if (!p->binding_given) {
                ret->pcrs = (TpmPcrValues){ .bank = old ? old->pcrs.bank : p->binding.pcrs.bank,
                                            .mask = old ? old->pcrs.mask : p->binding.pcrs.mask };
                ret->predicted_mask = 0;
        }
        if (old && old->has_attest && !ret->has_attest)
                return format_reason(why, n, -EINVAL,
                                     "token %d demands attestation: reseal with --attest so that the new slot keeps the gate", old_id);
        if (old && old->pin && !ret->pin)
                return format_reason(why, n, -ENOKEY, "token %d is protected by a PIN: give it (--pin-file) so the new slot keeps one",
                                     old_id);
        return 0;
}

/* Reads the new token back from the disk and unseals it: the volume key must come back. */
static int prove_token(const char *device, TpmContext *tpm, int id, const EnrollParams *b, const uint8_t *vk,
                       size_t vk_size, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *back = secmem_alloc(VK_MAX);
        size_t back_size = VK_MAX;
        Tpm2Token t;
        int r;

        if (!back)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = open_checked(device, LUKS_SNAPSHOT_HEADERS, &hdr, &cd, why, n);
        if (r >= 0)
                r = read_tpm2_token(cd, id, &t, why, n);
        if (r >= 0)
                r = unseal_token(cd, tpm, id, &t, b->pin, b->pin_size, back, &back_size, why, n);
        if (r >= 0 && (back_size != vk_size || memcmp(back, vk, vk_size) != 0))
                r = format_reason(why, n, -EKEYREJECTED, "token %d: unsealed a different volume key", id);
        return r;
}

/* Drops a token, then the keyslots that no other token uses: a crash in between leaves a keyslot
 * without a token, never a token without its keyslot. */
static int drop_token(struct crypt_device *cd, int id, uint32_t slots, char *why, size_t n) {
        int r = crypt_token_json_set(cd, id, NULL);

        if (r < 0)
                return format_reason(why, n, r, "removing token %d failed: %s", id, strerror(-r));
        for (int slot = 0; slot < LUKS_SLOTS_MAX; slot++) {
                if (!(slots & (1u << slot)))
                        continue;
                r = crypt_keyslot_destroy(cd, slot);
                if (r < 0)
                        return format_reason(why, n, r, "token %d is gone, but destroying its keyslot %d failed: %s", id,
                                             slot, strerror(-r));
        }
        return 0;
}

/* Keyslots of token id that no other token uses. */
static uint32_t own_keyslots(struct crypt_device *cd, const LuksHeader *hdr, int id) {
        uint32_t others = 0;

        for (int t = 0; t < LUKS_SLOTS_MAX; t++)
                if (t != id && (hdr->info.tokens & (1u << t)))
                        others |= token_keyslots(cd, t);
        return token_keyslots(cd, id) & ~others;
}

int luks_reseal(const char *device, TpmContext *tpm, const ResealParams *p, ResealResult *ret, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *ro = NULL, *cd = NULL;
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(VK_MAX);
        EnrollResult added = { -1, -1, -1, -1, NULL };
        ResealResult res = { .tpm_keyslot = -1, .tpm_token = -1 };
        EnrollParams binding;
        size_t vk_size = VK_MAX;
        uint32_t old_slots = 0;
        Tpm2Token old;
        bool have_old = false;
        int old_id = -1, r;

        if (!vk)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = open_checked(device, LUKS_SNAPSHOT_KEYSLOTS, &hdr, &ro, why, n);
        if (r < 0)
                return r;
        r = pick_old_token(ro, device, &hdr, p->token, &old_id, why, n);
        if (r < 0)
                return r;
        /* A damaged old token is what recover is for: it only blocks the unseal path. */
        r = old_id >= 0 ? read_tpm2_token(ro, old_id, &old, why, n) : -ENOENT;
        have_old = r >= 0;
        if (p->secret)
                r = volume_key_from_secret(ro, device, &hdr, p, vk, &vk_size, why, n);
        else if (old_id < 0)
                r = format_reason(why, n, -ENOENT, "%s: no %s token to unseal: give the passphrase or recovery key", device,
                                  TOKEN_TPM2_TYPE);
        else if (have_old)
                r = unseal_token(ro, tpm, old_id, &old, p->binding.pin, p->binding.pin_size, vk, &vk_size, why, n);
        if (r < 0)
                return r;
        r = reseal_binding(p, have_old ? &old : NULL, old_id, &binding, why, n);
        if (r < 0)
                return r;
        r = fill_current_pcrs(tpm, &binding, &res.pcrs, why, n);
        if (r < 0)
                return r;
        if (old_id >= 0)
                old_slots = own_keyslots(ro, &hdr, old_id);
        r = open_for_write(device, &hdr, vk, vk_size, &cd, why, n);
        if (r < 0)
                return r;
        r = add_tpm_slot(cd, tpm, &binding, &res.pcrs, vk, vk_size, 0, &added, why, n);
        if (r < 0)
                return r;
        res.tpm_keyslot = added.tpm_keyslot;
        res.tpm_token = added.tpm_token;
        res.pin = binding.pin != NULL;
        /* Predicted values cannot be proven before the reboot that produces them, and the old slot
         * is what opens the volume if that reboot does not happen as predicted: it stays. */
        if (binding.predicted_mask) {
                if (old_id >= 0)
                        res.kept = 1u << old_id;
                *ret = res;
                return 0;
        }
        r = prove_token(device, tpm, added.tpm_token, &binding, vk, vk_size, why, n);
        if (r < 0) {
                char reason[LUKS_WHY_LEN];

                (void) snprintf(reason, sizeof(reason), "%s", why);
                (void) drop_token(cd, added.tpm_token, 1u << added.tpm_keyslot, why, n);
                return format_reason(why, n, r, "the new slot does not unseal, so it was removed and the old one kept: %s",
                                     reason);
        }
        res.proven = true;
        if (old_id >= 0) {
                r = drop_token(cd, old_id, old_slots, why, n);
                if (r < 0)
                        return r;
                res.removed = 1u << old_id;
        }
        *ret = res;
        return 0;
}

static bool token_is_tpm_bound(struct crypt_device *cd, int id) {
        return token_is(cd, id, TOKEN_TPM2_TYPE) || token_is(cd, id, "systemd-tpm2");
}

int luks_remove_token(const char *device, int token, uint32_t *ret_keyslots, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *ro = NULL, *cd = NULL;
        uint32_t slots, tpm_bound = 0, left;
        char list[96];
        int r;

        r = open_checked(device, LUKS_SNAPSHOT_HEADERS, &hdr, &ro, why, n);
        if (r < 0)
                return r;
        if (token < 0 || token >= LUKS_SLOTS_MAX || !(hdr.info.tokens & (1u << token)))
                return format_reason(why, n, -ENOENT, "%s: there is no token %d", device, token);
        slots = own_keyslots(ro, &hdr, token);
        for (int id = 0; id < LUKS_SLOTS_MAX; id++)
                if (id != token && (hdr.info.tokens & (1u << id)) && token_is_tpm_bound(ro, id))
                        tpm_bound |= token_keyslots(ro, id);
        left = hdr.info.keyslots & ~slots;
        if (left == 0)
                return format_reason(why, n, -ENOTEMPTY, "%s: token %d holds the last keyslot; without it nothing opens the volume",
                                     device, token);
        if ((left & ~tpm_bound) == 0)
                return format_reason(why, n, -ENOTEMPTY,
                                     "%s: without token %d only TPM-bound keyslots are left (%s), and a PCR change would lock the volume: enroll a recovery key first",
                                     device, token, strchr(pcr_list(left, list, sizeof(list)), ' ') + 1);
        r = open_for_write(device, &hdr, NULL, 0, &cd, why, n);
        if (r < 0)
                return r;
        r = drop_token(cd, token, slots, why, n);
        if (r < 0)
                return r;
        *ret_keyslots = slots;
        return 0;
}

/* ---- First-boot provisioning (provision.c) ---- */

int luks_add_sealed_slots(struct crypt_device *cd, TpmContext *tpm, const EnrollParams *p, const uint8_t *vk,
                          size_t vk_size, uint32_t key_flags, EnrollResult *ret, char *why, size_t n) {
        TpmPcrValues pcrs;
        int r;

        r = fill_current_pcrs(tpm, p, &pcrs, why, n);
        if (r < 0)
                return r;
        r = luks_use_fast_kdf(cd);
        if (r < 0)
                return format_reason(why, n, r, "cannot set the keyslot KDF: %s", strerror(-r));
        r = add_tpm_slot(cd, tpm, p, &pcrs, vk, vk_size, key_flags, ret, why, n);
        if (r >= 0 && p->recovery_key)
                r = add_recovery_slot(cd, vk, vk_size, key_flags, ret, why, n);
        return r;
}

int luks_unseal_provisioning(const char *device, TpmContext *tpm, uint8_t *vk, size_t *vk_size, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = open_checked_on(device, NULL, LUKS_SNAPSHOT_HEADERS | LUKS_SNAPSHOT_PROVISION, &hdr, &cd, why, n);
        if (r < 0)
                return r;
        r = format_reason(why, n, -ENOENT, "%s: no %s token", device, TOKEN_TPM2_TYPE);
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                Tpm2Token t;

                if (!(hdr.info.tokens & (1u << id)) || !token_is(cd, id, TOKEN_TPM2_TYPE))
                        continue;
                r = read_tpm2_token(cd, id, &t, why, n);
                if (r >= 0)
                        r = unseal_token(cd, tpm, id, &t, NULL, 0, vk, vk_size, why, n);
                if (r >= 0)
                        return 0;
        }
        return r;
}
