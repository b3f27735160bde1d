/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <libgen.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h> /* before cms.h, which declares the CMS PEM functions only after it */
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "attest-gate.h"
#include "fileio.h"
#include "keyring.h"
#include "luks-header.h"
#include "luks.h"
#include "log.h"
#include "macro.h"
#include "provision.h"
#include "secmem.h"
#include "token.h"

#define VK_MAX 64
#define REKEY_PASS_SIZE 32
#define REKEY_PASS_LABEL "cvmcrypt-provision:rekey"
#define NEW_KEY_FLAGS (CRYPT_VOLUME_KEY_NO_SEGMENT | CRYPT_VOLUME_KEY_DIGEST_REUSE)
/* Data re-keyed between two header updates: what a crash costs to recover, against the cost of
 * a header update (a few fsyncs) per hot zone; 128 of them for 2 GiB. */
#define REKEY_HOTZONE (16u * 1024 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free);

/* ---- escrow ---- */

/* A whole small file into malloc'ed memory (NUL-terminated). */
static int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        return fd < 0 ? negative_errno() : read_bounded(fd, max, ret, ret_size);
}

static int cms_fingerprint(CMS_ContentInfo *cms, uint8_t out[32]) {
        unsigned char *der = NULL;
        int len = i2d_CMS_ContentInfo(cms, &der);
        unsigned size = 0;
        int ok;

        if (len <= 0)
                return -ENOMEM;
        ok = EVP_Digest(der, (size_t) len, out, &size, EVP_sha256(), NULL) == 1 && size == 32;
        OPENSSL_free(der);
        return ok ? 0 : -EIO;
}

int escrow_seal(const char *cert_path, const char *secret, size_t size, char **ret_pem, size_t *ret_pem_size,
                uint8_t ret_fingerprint[32], char *why, size_t n) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(BIO_freep) BIO *in = NULL, *out = NULL, *certbio = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_free_ uint8_t *text = NULL;
        CMS_RecipientInfo *ri;
        EVP_PKEY *pub;
        size_t text_size;
        char *pem = NULL;
        long len;
        int r;

        r = read_file(cert_path, PROVISION_ESCROW_MAX, &text, &text_size);
        if (r < 0)
                return format_reason(why, n, r, "cannot read the escrow certificate %s: %s", cert_path, strerror(-r));
        certbio = BIO_new_mem_buf(text, (int) text_size);
        cert = certbio ? PEM_read_bio_X509(certbio, NULL, NULL, NULL) : NULL;
        if (!cert)
                return format_reason(why, n, -EINVAL, "%s is not a PEM X.509 certificate", cert_path);
        pub = X509_get0_pubkey(cert);
        if (!pub || (!EVP_PKEY_is_a(pub, "RSA") && !EVP_PKEY_is_a(pub, "EC")) ||
            (EVP_PKEY_is_a(pub, "RSA") && EVP_PKEY_get_bits(pub) < 2048))
                return format_reason(why, n, -EINVAL, "%s: the escrow key must be RSA (2048 bits or more) or EC", cert_path);

        in = BIO_new_mem_buf(secret, (int) size); /* reads our buffer in place: no copy to wipe */
        cms = in ? CMS_encrypt(NULL, in, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL) : NULL;
        ri = cms ? CMS_add1_recipient_cert(cms, cert, CMS_BINARY | CMS_KEY_PARAM) : NULL;
        if (!ri)
                return format_reason(why, n, -ENOMEM, "cannot build the escrow envelope for %s", cert_path);
        /* RSA: OAEP with SHA-256, not PKCS #1 v1.5. EC: ECDH with a SHA-256 KDF, not the SHA-1 default. */
        if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS) {
                EVP_PKEY_CTX *ctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

                if (!ctx || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0)
                        return format_reason(why, n, -EIO, "cannot select RSA-OAEP for the escrow");
        } else {
                EVP_PKEY_CTX *ctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

                if (!ctx || EVP_PKEY_CTX_set_ecdh_kdf_md(ctx, EVP_sha256()) <= 0)
                        return format_reason(why, n, -EIO, "cannot select a SHA-256 KDF for the escrow");
        }
        if (CMS_final(cms, in, NULL, CMS_BINARY) != 1)
                return format_reason(why, n, -EIO, "encrypting the recovery key to %s failed", cert_path);
        r = cms_fingerprint(cms, ret_fingerprint);
        if (r < 0)
                return format_reason(why, n, r, "cannot compute the escrow fingerprint");
        out = BIO_new(BIO_s_mem());
        if (!out || PEM_write_bio_CMS(out, cms) != 1)
                return format_reason(why, n, -ENOMEM, "cannot encode the escrow");
        len = BIO_get_mem_data(out, &pem);
        *ret_pem = malloc((size_t) len);
        if (!*ret_pem)
                return format_reason(why, n, -ENOMEM, "out of memory");
        memcpy(*ret_pem, pem, (size_t) len);
        *ret_pem_size = (size_t) len;
        return 0;
}

int escrow_decode(const uint8_t *buf, size_t size, void *pkey, char **ret, size_t *ret_size, char *why, size_t n) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_freep) BIO *in = NULL, *out = NULL;
        _cleanup_secmem_ char *secret = NULL;
        char *data = NULL;
        long len;

        if (size > PROVISION_ESCROW_MAX)
                return format_reason(why, n, -EFBIG, "the escrow is larger than %u bytes", PROVISION_ESCROW_MAX);
        in = BIO_new_mem_buf(buf, (int) size);
        if (!in)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if (size >= 10 && memcmp(buf, "-----BEGIN", 10) == 0)
                cms = PEM_read_bio_CMS(in, NULL, NULL, NULL);
        else
                cms = d2i_CMS_bio(in, NULL);
        if (!cms || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped)
                return format_reason(why, n, -EBADMSG, "not a CMS EnvelopedData (PEM or DER)");
        if (!pkey)
                return 0;
        /* The decrypted content lands in secure memory BIO buffers, wiped when freed. */
        out = BIO_new(BIO_s_secmem());
        if (!out)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if (CMS_decrypt(cms, pkey, NULL, NULL, out, CMS_BINARY) != 1)
                return format_reason(why, n, -ENOKEY, "the escrow does not decrypt with this private key");
        len = BIO_get_mem_data(out, &data);
        if (len <= 0 || len > 1024)
                return format_reason(why, n, -EBADMSG, "the escrow holds %ld bytes, not a recovery key", len);
        secret = secmem_alloc((size_t) len + 1);
        if (!secret)
                return format_reason(why, n, -ENOMEM, "out of memory");
        memcpy(secret, data, (size_t) len);
        *ret = TAKE_PTR(secret);
        *ret_size = (size_t) len;
        return 0;
}

int escrow_open(const char *escrow_path, const char *key_path, char **ret, size_t *ret_size, char *why, size_t n) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(BIO_freep) BIO *kb = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;
        int r;

        kb = BIO_new_file(key_path, "r");
        pkey = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
        if (!pkey)
                return format_reason(why, n, -EINVAL, "%s is not a readable PEM private key (an encrypted key needs its passphrase on a terminal)",
                                     key_path);
        r = read_file(escrow_path, PROVISION_ESCROW_MAX, &buf, &size);
        if (r < 0)
                return format_reason(why, n, r, "cannot read the escrow %s: %s", escrow_path,
                                     r == -EFBIG ? "too large" : strerror(-r));
        return escrow_decode(buf, size, pkey, ret, ret_size, why, n);
}

/* Replaces path with data as a whole: a crash leaves the old file or the new one. */
static int write_atomic(const char *path, const char *data, size_t size) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        int r = 0;

        if (asprintf(&tmp, "%s.tmp", path) < 0 || !(dir = strdup(path)))
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        if (write(fd, data, size) != (ssize_t) size || fsync(fd) < 0 || rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return negative_errno();
        return 0;
}

/* ---- provisioning ---- */

/* The passphrase of the re-key slots: libcryptsetup opens the old and the new key with one. It
 * derives from the new key, so it opens nothing its holder could not open already. */
static int rekey_pass(const uint8_t *vk, size_t vk_size, uint8_t out[REKEY_PASS_SIZE]) {
        unsigned size = 0;

        if (!HMAC(EVP_sha256(), vk, (int) vk_size, (const uint8_t *) REKEY_PASS_LABEL, strlen(REKEY_PASS_LABEL), out,
                  &size) || size != REKEY_PASS_SIZE)
                return -EIO;
        return 0;
}

static bool keyslot_active(struct crypt_device *cd, int slot) {
        crypt_keyslot_info s = crypt_keyslot_status(cd, slot);

        return s == CRYPT_SLOT_ACTIVE || s == CRYPT_SLOT_ACTIVE_LAST || s == CRYPT_SLOT_UNBOUND;
}

static int find_provision_token(struct crypt_device *cd, const LuksHeader *hdr) {
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                const char *type = NULL;

                if ((hdr->info.tokens & (1u << id)) && crypt_token_status(cd, id, &type) >= CRYPT_TOKEN_EXTERNAL &&
                    type && strcmp(type, TOKEN_PROVISION_TYPE) == 0)
                        return id;
        }
        return -ENOENT;
}

/* Back to the build-time state: what an interrupted prepare added goes (tokens first, so that no
 * token outlives its keyslot). Slots of the image besides the build-time one go too: they hold
 * the build-time key, which the re-key makes useless anyway. */
static int reduce_to_build_slot(struct crypt_device *cd, int token, int slot, char *why, size_t n) {
        int r;

        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                if (id == token || crypt_token_status(cd, id, NULL) == CRYPT_TOKEN_INACTIVE)
                        continue;
                r = crypt_token_json_set(cd, id, NULL);
                if (r < 0)
                        return format_reason(why, n, r, "removing token %d failed: %s", id, strerror(-r));
        }
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                if (id == slot || !keyslot_active(cd, id))
                        continue;
                r = crypt_keyslot_destroy(cd, id);
                if (r < 0)
                        return format_reason(why, n, r, "removing keyslot %d failed: %s", id, strerror(-r));
        }
        return 0;
}

static int write_escrow(const ProvisionParams *p, const char *recovery_key, ProvisionResult *res, char *why, size_t n) {
        _cleanup_free_ char *pem = NULL;
        size_t pem_size;
        int r;

        r = escrow_seal(p->escrow_cert, recovery_key, strlen(recovery_key), &pem, &pem_size, res->escrow_fingerprint,
                        why, n);
        if (r < 0)
                return r;
        r = write_atomic(p->escrow_out, pem, pem_size);
        if (r < 0)
                return format_reason(why, n, r, "cannot write the escrow %s: %s", p->escrow_out, strerror(-r));
        res->escrowed = true;
        return 0;
}

/* Stage 1: the new key's slots, the escrow, then the re-key's start, each recorded in the header. */
static int prepare(struct crypt_device *cd, TpmContext *tpm, const ProvisionParams *p, int token,
                   const ProvisionToken *t, uint8_t *new_vk, size_t *new_vk_size, ProvisionResult *res, char *why,
                   size_t n) {
        _cleanup_secmem_ uint8_t *old_vk = secmem_alloc(VK_MAX), *pass = secmem_alloc(REKEY_PASS_SIZE);
        _cleanup_(enroll_result_done) EnrollResult added = { -1, -1, -1, -1, NULL };
        struct crypt_params_luks2 luks2 = { .sector_size = (uint32_t) crypt_get_sector_size(cd) };
        struct crypt_params_reencrypt params = {
                .mode = CRYPT_REENCRYPT_REENCRYPT,
                .direction = CRYPT_REENCRYPT_FORWARD,
                .resilience = "checksum",
                .hash = "sha256",
                .luks2 = &luks2,
                .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY,
        };
        EnrollParams ep = { .pcrs = { .bank = t->bank, .mask = t->pcr_mask | (1u << p->gate_pcr) },
                            .recovery_key = p->escrow_cert != NULL, .has_attest = p->has_attest };
        size_t old_size = VK_MAX;
        int r, old_slot, new_slot, key_size = crypt_get_volume_key_size(cd);
        char cipher[32], mode[32];

        if (!old_vk || !pass)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if (key_size <= 0 || key_size > VK_MAX || !crypt_get_cipher(cd) || !crypt_get_cipher_mode(cd))
                return format_reason(why, n, -EUCLEAN, "the volume's cipher or key size is unknown");
        (void) snprintf(cipher, sizeof(cipher), "%s", crypt_get_cipher(cd));
        (void) snprintf(mode, sizeof(mode), "%s", crypt_get_cipher_mode(cd));
        memcpy(ep.attest, p->attest, sizeof(ep.attest));
        r = reduce_to_build_slot(cd, token, (int) t->keyslot, why, n);
        if (r < 0)
                return r;
        r = crypt_volume_key_get(cd, (int) t->keyslot, (char *) old_vk, &old_size, (const char *) t->key, sizeof(t->key));
        if (r < 0)
                return format_reason(why, n, -ENOKEY, "the provisioning token's key does not open keyslot %u", t->keyslot);
        if (getrandom(new_vk, (size_t) key_size, 0) != key_size)
                return format_reason(why, n, -EIO, "cannot generate the new volume key");
        *new_vk_size = (size_t) key_size;
        r = rekey_pass(new_vk, *new_vk_size, pass);
        if (r >= 0)
                r = luks_use_fast_kdf(cd);
        if (r < 0)
                return format_reason(why, n, r, "cannot derive the re-key passphrase");
        old_slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *) old_vk, old_size,
                                                   (const char *) pass, REKEY_PASS_SIZE);
        new_slot = old_slot < 0 ? old_slot
                                : crypt_keyslot_add_by_key(cd, CRYPT_ANY_SLOT, (const char *) new_vk, *new_vk_size,
                                                           (const char *) pass, REKEY_PASS_SIZE, NEW_KEY_FLAGS);
        if (new_slot < 0)
                return format_reason(why, n, new_slot, "adding the re-key keyslots failed: %s", strerror(-new_slot));
        r = luks_add_sealed_slots(cd, tpm, &ep, new_vk, *new_vk_size, NEW_KEY_FLAGS, &added, why, n);
        if (r < 0)
                return r;
        res->tpm_keyslot = added.tpm_keyslot;
        res->recovery_keyslot = added.recovery_keyslot;
        if (added.recovery_key) {
                r = write_escrow(p, added.recovery_key, res, why, n);
                if (r < 0)
                        return r;
        }
        r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *) pass, REKEY_PASS_SIZE, old_slot, new_slot, cipher,
                                               mode, &params);
        if (r < 0)
                return format_reason(why, n, r, "initializing the re-key failed: %s", strerror(-r));
        return 0;
}

/* Stage 3: the re-key slot has served; the token goes last, as the mark that provisioning ended. */
static int finish(struct crypt_device *cd, int token, char *why, size_t n) {
        int r;

        for (int slot = 0; slot < LUKS_SLOTS_MAX; slot++) {
                bool used = false;

                if (!keyslot_active(cd, slot))
                        continue;
                for (int id = 0; id < LUKS_SLOTS_MAX && !used; id++)
                        used = crypt_token_is_assigned(cd, id, slot) == 0;
                if (used)
                        continue;
                r = crypt_keyslot_destroy(cd, slot);
                if (r < 0)
                        return format_reason(why, n, r, "removing the re-key keyslot %d failed: %s", slot, strerror(-r));
        }
        r = crypt_token_json_set(cd, token, NULL);
        if (r < 0)
                return format_reason(why, n, r, "removing the provisioning token failed: %s", strerror(-r));
        return 0;
}

/* A crash inside a hot zone: restored offline, as reencrypt_finish() would, since the volume opens
 * with the re-key pending from the checked copy of the header, which libcryptsetup cannot write
 * its recovery into. Restoring the last hot zone can end the re-key. */
static int rekey_recover(struct crypt_device *cd, const uint8_t *pass) {
        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_CRASH)
                return 0;
        return crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *) pass, REKEY_PASS_SIZE, CRYPT_ANY_SLOT,
                                                  CRYPT_ANY_SLOT, NULL, NULL,
                                                  &(struct crypt_params_reencrypt){ .flags = CRYPT_REENCRYPT_RECOVERY });
}

/* After libcryptsetup wrote the header (a re-key's end): a fresh context on what is on the disk. */
static int reload_header(const char *device, struct crypt_device **cd, char *why, size_t n) {
        int r;

        crypt_free(TAKE_PTR(*cd));
        r = crypt_init(cd, device);
        if (r >= 0)
                r = crypt_load(*cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot reload the header: %s", device, strerror(-r));
        return 0;
}

static int open_device(const char *device, const LuksHeader *hdr, struct crypt_device **ret, char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = crypt_init(&cd, device);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot open for writing: %s", device, strerror(-r));
        if (!crypt_get_uuid(cd) || strcmp(crypt_get_uuid(cd), hdr->info.uuid) != 0)
                return format_reason(why, n, -EBUSY, "%s: the header changed while we worked on it", device);
        *ret = TAKE_PTR(cd);
        return 0;
}

/* The header checked (our provisioning states allowed), a context on the device, and the
 * provisioning token parsed: *ret_token is its id, or negative when the volume has none. */
static int load_provisioning(const char *device, LuksHeader *hdr, struct crypt_device **cd, int *ret_token,
                             ProvisionToken *t, char *why, size_t n) {
        char reason[LUKS_WHY_MAX] = "";
        const char *json = NULL;
        int r, token;

        r = luks_header_snapshot(device, LUKS_SNAPSHOT_HEADERS | LUKS_SNAPSHOT_PROVISION, hdr, reason, sizeof(reason));
        if (r == -ENOENT || r == -ENXIO || r == -EACCES)
                return format_reason(why, n, r == -EACCES ? r : -ENODEV, "%s: cannot read: %s", device, strerror(-r));
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: LUKS2 header rejected: %s", device, reason);
        r = open_device(device, hdr, cd, why, n);
        if (r < 0)
                return r;
        token = find_provision_token(*cd, hdr);
        *ret_token = token;
        if (token < 0)
                return 0;
        if (crypt_token_json_get(*cd, token, &json) < 0)
                return format_reason(why, n, -EUCLEAN, "%s: token %d cannot be read", device, token);
        r = token_provision_parse(json, t, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: token %d: %s", device, token, reason);
        return 0;
}

int provision_run(const char *device, TpmContext *tpm, const ProvisionParams *p, ProvisionResult *ret, char *why,
                  size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *new_vk = secmem_alloc(VK_MAX), *pass = secmem_alloc(REKEY_PASS_SIZE);
        ProvisionResult res = { .tpm_keyslot = -1, .recovery_keyslot = -1 };
        size_t new_vk_size = VK_MAX;
        ProvisionToken t = {};
        bool rekey_done = false;
        int r, token;

        if (!new_vk || !pass)
                return format_reason(why, n, -ENOMEM, "out of memory");
        luks_log_setup();
        r = load_provisioning(device, &hdr, &cd, &token, &t, why, n);
        if (r < 0)
                return r;
        (void) snprintf(res.uuid, sizeof(res.uuid), "%s", hdr.info.uuid);
        if (token < 0) {
                res.started_at = PROVISION_STAGE_NONE;
                *ret = res;
                return 0;
        }

        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
                res.started_at = PROVISION_STAGE_REKEY;
        else if (!t.keyslot_gone && keyslot_active(cd, (int) t.keyslot))
                res.started_at = PROVISION_STAGE_PREPARE;
        else
                res.started_at = PROVISION_STAGE_FINISH;

        if (res.started_at == PROVISION_STAGE_PREPARE) {
                r = prepare(cd, tpm, p, token, &t, new_vk, &new_vk_size, &res, why, n);
                secmem_wipe(t.key, sizeof(t.key));
                if (r < 0)
                        return r;
        } else if (res.started_at == PROVISION_STAGE_REKEY) {
                /* All data under the new key, but libcryptsetup's last step cut short: it cannot
                 * resume that (see luks-header.h), so it is finished here. */
                crypt_free(TAKE_PTR(cd));
                r = luks_header_finish_rekey(device, why, n);
                if (r < 0)
                        return r;
                rekey_done = r > 0;
                /* The TPM slot made in stage 1 holds the new key; it verifies against the volume
                 * once the re-key has started. */
                if (!rekey_done)
                        r = luks_unseal_provisioning(device, tpm, new_vk, &new_vk_size, why, n);
                if (r < 0)
                        return r;
                r = open_device(device, &hdr, &cd, why, n);
                if (r < 0)
                        return r;
        }
        if (res.started_at != PROVISION_STAGE_FINISH && !rekey_done) {
                r = rekey_pass(new_vk, new_vk_size, pass);
                if (r < 0)
                        return format_reason(why, n, r, "cannot derive the re-key passphrase");
                if (p->background)
                        r = rekey_recover(cd, pass);
                else
                        r = reencrypt_finish(cd, NULL, (const char *) pass, REKEY_PASS_SIZE, CRYPT_ANY_SLOT,
                                             CRYPT_ANY_SLOT, REKEY_HOTZONE, p->progress, p->userdata);
                if (r < 0)
                        return format_reason(why, n, r, "%s: the re-key failed (it resumes on the next run): %s", device,
                                             strerror(-r));
                if (p->background && crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE) {
                        res.rekey_pending = true;
                        *ret = res;
                        return 0;
                }
                /* libcryptsetup has dropped the old key's slots; reload what it wrote. */
                r = reload_header(device, &cd, why, n);
                if (r < 0)
                        return r;
        }
        r = finish(cd, token, why, n);
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

/* ---- background: the re-key on the open volume ---- */

static void handover_description(const char *uuid, char *buf, size_t n) {
        (void) snprintf(buf, n, "%s%s", PROVISION_KEY_PREFIX, uuid);
}

static int marker_path(const char *name, char *buf, size_t n) {
        if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            (size_t) snprintf(buf, n, "%s/%s", PROVISION_REENCRYPT_DIR, name) >= n)
                return -EINVAL;
        return 0;
}

/* In /run, read after switch-root: no reader can see it half written. */
static int write_marker(const char *path, const char *line) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        size_t len = strlen(line);

        if (fd < 0)
                return negative_errno();
        return write(fd, line, len) == (ssize_t) len ? 0 : negative_errno();
}

int provision_marker_device(const char *name, char **ret, char *why, size_t n) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -1;
        char marker[PATH_MAX];
        size_t size;
        int r;

        if (marker_path(name, marker, sizeof(marker)) < 0)
                return format_reason(why, n, -EINVAL, "'%s' cannot name a marker file", name);
        fd = open(marker, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        r = fd < 0 ? negative_errno() : read_bounded(fd, PATH_MAX, &buf, &size);
        if (r < 0)
                return format_reason(why, n, r, "cannot read %s: %s", marker, r == -EFBIG ? "too large" : strerror(-r));
        /* One absolute path and its newline, as handover() writes it. */
        if (size < 3 || buf[0] != '/' || buf[size - 1] != '\n' || memchr(buf, '\n', size - 1) || memchr(buf, '\0', size))
                return format_reason(why, n, -EBADMSG, "%s does not hold a device path", marker);
        buf[size - 1] = '\0';
        *ret = (char *) TAKE_PTR(buf);
        return 0;
}

/* Takes back what handover() left: the key (when found) and the marker. */
static void handover_undo(const char *uuid, const char *name) {
        _cleanup_secmem_ uint8_t *pass = secmem_alloc(REKEY_PASS_SIZE);
        char desc[KEYRING_DESCRIPTION_MAX], marker[PATH_MAX];
        int32_t id;

        handover_description(uuid, desc, sizeof(desc));
        if (pass && keyring_get(desc, pass, REKEY_PASS_SIZE, &id) >= 0)
                (void) keyring_drop(id);
        if (marker_path(name, marker, sizeof(marker)) >= 0)
                (void) unlink(marker);
}

/* The re-key passphrase for the real root, in root's user keyring, and a marker that names the
 * volume for cvmcrypt-reencrypt.service: the mapping name, holding the device path. */
static int handover(const char *device, const char *uuid, const char *name, const uint8_t *pass, char *why, size_t n) {
        _cleanup_free_ char *line = NULL;
        char desc[KEYRING_DESCRIPTION_MAX], marker[PATH_MAX];
        int32_t id;
        int r;

        if (marker_path(name, marker, sizeof(marker)) < 0)
                return format_reason(why, n, -EINVAL, "'%s' cannot name a marker file", name);
        if (asprintf(&line, "%s\n", device) < 0)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if ((mkdir(PROVISION_RUN_DIR, 0755) < 0 && errno != EEXIST) ||
            (mkdir(PROVISION_REENCRYPT_DIR, 0700) < 0 && errno != EEXIST)) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot create %s: %s", PROVISION_REENCRYPT_DIR, strerror(-r));
        }
        handover_description(uuid, desc, sizeof(desc));
        r = keyring_put(desc, pass, REKEY_PASS_SIZE, &id);
        if (r < 0)
                return format_reason(why, n, r, "cannot hand the re-key over in root's user keyring: %s", strerror(-r));
        r = write_marker(marker, line);
        if (r < 0) {
                (void) keyring_drop(id);
                return format_reason(why, n, r, "cannot write %s: %s", marker, strerror(-r));
        }
        return 0;
}

/* Activates the volume with its re-key pending, from a copy of the header checked for our own
 * provisioning states: libcryptsetup maps the re-keyed part with the new key and the rest with the
 * old, and opens both with the re-key passphrase. */
static int activate_pending(const char *device, const char *uuid, const char *name, const uint8_t *pass, char *why,
                            size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        char reason[LUKS_WHY_MAX] = "";
        int r;

        r = luks_header_snapshot(device, LUKS_SNAPSHOT_KEYSLOTS | LUKS_SNAPSHOT_PROVISION, &hdr, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: LUKS2 header rejected: %s", device, reason);
        if (strcmp(hdr.info.uuid, uuid) != 0)
                return format_reason(why, n, -EBUSY, "%s: the header changed while we worked on it", device);
        r = crypt_init_data_device(&cd, hdr.path, device);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r >= 0 && crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_CLEAN)
                r = -EUCLEAN;
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: the checked header has no clean pending re-key", device);
        r = crypt_activate_by_passphrase(cd, name, CRYPT_ANY_SLOT, (const char *) pass, REKEY_PASS_SIZE, 0);
        if (r < 0)
                return format_reason(why, n, r, "activating %s with the re-key pending failed: %s", name, strerror(-r));
        return 0;
}

/* The new key from the TPM slot (which proves the slot), then the volume open and the re-key
 * handed over; name NULL: the slot only checked. */
static int open_pending(TpmContext *tpm, const char *device, const char *name, const LuksUnlockHooks *hooks,
                        const ProvisionResult *res, char *why, size_t n) {
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(VK_MAX), *pass = secmem_alloc(REKEY_PASS_SIZE);
        char reason[LUKS_WHY_LEN], def[64];
        size_t vk_size = VK_MAX;
        int r;

        if (!vk || !pass)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = luks_unseal_provisioning(device, tpm, vk, &vk_size, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, r, "%s: its new TPM slot does not open it: %s", device, reason);
        if (!name)
                return 0;
        if (!*name) {
                (void) snprintf(def, sizeof(def), "luks-%s", res->uuid);
                name = def;
        }
        r = rekey_pass(vk, vk_size, pass);
        if (r < 0)
                return format_reason(why, n, r, "cannot derive the re-key passphrase");
        r = handover(device, res->uuid, name, pass, why, n);
        if (r < 0)
                return r;
        r = activate_pending(device, res->uuid, name, pass, why, n);
        if (r < 0) {
                handover_undo(res->uuid, name);
                return r;
        }
        if (hooks && hooks->unlocked) {
                r = hooks->unlocked(hooks->userdata, res->uuid, vk, vk_size);
                if (r < 0)
                        return format_reason(why, n, r, "the volume is open, but recording it failed: %s", strerror(-r));
        }
        return 0;
}

int provision_resume_online(const char *device, const char *name, ReencryptProgress progress, void *userdata,
                            ProvisionOnlineResult *ret, char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *pass = secmem_alloc(REKEY_PASS_SIZE);
        ProvisionOnlineResult res = {};
        char desc[KEYRING_DESCRIPTION_MAX];
        ProvisionToken t = {};
        int32_t id;
        int r, token;

        if (!pass)
                return format_reason(why, n, -ENOMEM, "out of memory");
        luks_log_setup();
        r = load_provisioning(device, &hdr, &cd, &token, &t, why, n);
        if (r < 0)
                return r;
        secmem_wipe(t.key, sizeof(t.key));
        (void) snprintf(res.uuid, sizeof(res.uuid), "%s", hdr.info.uuid);
        if (token < 0) {
                /* Provisioned already (by a later boot in the foreground, say): nothing left to hand over. */
                handover_undo(res.uuid, name);
                *ret = res;
                return 0;
        }
        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE) {
                /* libcryptsetup's last step cut short, as in provision_run(). */
                crypt_free(TAKE_PTR(cd));
                r = luks_header_finish_rekey(device, why, n);
                if (r < 0)
                        return r;
                if (r == 0) {
                        handover_description(res.uuid, desc, sizeof(desc));
                        r = keyring_get(desc, pass, REKEY_PASS_SIZE, &id);
                        if (r < 0)
                                return format_reason(why, n, r, "%s: no re-key passphrase %s in root's user keyring: %s", device,
                                                     desc, r == -ENOKEY ? "the boot that opened it handed none over" : strerror(-r));
                        r = open_device(device, &hdr, &cd, why, n);
                        if (r < 0)
                                return r;
                        r = reencrypt_finish(cd, name, (const char *) pass, REKEY_PASS_SIZE, CRYPT_ANY_SLOT, CRYPT_ANY_SLOT,
                                             REKEY_HOTZONE, progress, userdata);
                        if (r < 0)
                                return format_reason(why, n, r, "%s: the online re-key of %s failed: %s", device, name,
                                                     strerror(-r));
                        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE) {
                                res.stopped = true;
                                *ret = res;
                                return 0;
                        }
                }
                r = reload_header(device, &cd, why, n);
                if (r < 0)
                        return r;
        } else if (!t.keyslot_gone && keyslot_active(cd, (int) t.keyslot))
                return format_reason(why, n, -EBUSY, "%s: its re-key has not started (the boot provisions it)", device);
        r = finish(cd, token, why, n);
        if (r < 0)
                return r;
        handover_undo(res.uuid, name);
        res.done = true;
        *ret = res;
        return 0;
}

int provision_volume(const Config *cfg, TpmContext *tpm, const char *device, const char *name,
                     const LuksUnlockHooks *hooks, ProvisionResult *ret, char *why, size_t n) {
        ProvisionParams p = { .gate_pcr = cfg->gate_pcr, .escrow_cert = cfg->provision_escrow_cert,
                              .escrow_out = cfg->provision_escrow_out,
                              .background = cfg->provision_reencrypt == PROVISION_REENCRYPT_BACKGROUND };
        ProvisionResult res;
        char reason[LUKS_WHY_LEN];
        int r;

        if (cfg->attest) {
                r = attest_config_policy_digest(cfg, p.attest, why, n);
                if (r < 0)
                        return r;
                p.has_attest = true;
        }
        r = provision_run(device, tpm, &p, &res, why, n);
        if (r < 0)
                return r;
        *ret = res;
        if (res.started_at == PROVISION_STAGE_NONE)
                return 0;
        if (res.rekey_pending) {
                r = open_pending(tpm, device, name, hooks, &res, why, n);
                return r < 0 ? r : 1;
        }
        /* The new slot must open the volume before the boot relies on it. */
        r = luks_unlock_tpm(device, name, tpm, NULL, 0, hooks, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, r, "%s is provisioned, but its new TPM slot does not open it: %s", device,
                                     reason);
        return 1;
}
