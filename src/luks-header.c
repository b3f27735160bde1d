/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "luks-header.h"
#include "macro.h"
#include "token.h"

/* Binary header layout (struct luks2_hdr_disk in cryptsetup's lib/luks2/luks2.h). Integers are
 * big-endian. The JSON area follows at LUKS_HEADER_BIN_SIZE and fills the copy up to hdr_size. */
#define OFF_VERSION 6
#define OFF_HDR_SIZE 8
#define OFF_SEQID 16
#define OFF_LABEL 24
#define OFF_CSUM_ALG 72
#define OFF_SALT 104
#define OFF_UUID 168
#define OFF_SUBSYSTEM 208
#define OFF_HDR_OFFSET 256
#define OFF_PADDING 264
#define OFF_CSUM 448
#define OFF_PADDING4096 512
#define MAGIC_LEN 6
#define LABEL_LEN 48
#define CSUM_ALG_LEN 32
#define UUID_LEN 40
#define CSUM_LEN 64
#define SHA256_LEN 32

#define MAGIC_1ST "LUKS\xba\xbe"
#define MAGIC_2ND "SKUL\xba\xbe"

/* Deepest legitimate nesting is a token's own content (root, tokens, id, field, value). */
#define JSON_DEPTH_MAX 8
#define DIGESTS_MAX 8
#define KDF_SALT_SIZE 32
#define DIGEST_SALT_SIZE 32
#define AF_STRIPES 4000
#define PBKDF2_ITERATIONS_MIN 1000
#define PBKDF2_ITERATIONS_MAX 10000000
#define ARGON2_TIME_MAX 64
#define ARGON2_MEMORY_MIN 32
#define ARGON2_MEMORY_MAX 4194304
#define ARGON2_CPUS_MAX 16
#define TOKEN_TYPE_MAX 64
#define ALIGN_4K(x) (((x) & 4095) == 0)

#define COPY_CHUNK (1024 * 1024)

static const char *const allowed_ciphers[] = { "aes-xts-plain64", "serpent-xts-plain64", "twofish-xts-plain64" };

typedef struct Area {
        uint64_t offset, size;
} Area;

typedef struct Ctx {
        char *why;
        size_t why_size;
        uint64_t hdr_size;
        uint64_t keyslots_size;
        uint64_t area_size;
        uint32_t keyslots;          /* ids present */
        uint32_t key_size;          /* of every keyslot (they must agree) */
        Area areas[LUKS_SLOTS_MAX]; /* of the keyslots in `keyslots` */
        bool provision;             /* LUKS_SNAPSHOT_PROVISION */
        bool reencrypt;             /* provision: a re-key is pending (the requirement says so) */
        uint32_t reencrypt_slots;   /* provision: ids of "reencrypt" keyslots */
        uint32_t segments;          /* ids present */
        bool provision_token;       /* a cvmcrypt-provision token exists */
} Ctx;

/* Host-controlled text shown in a message: short, control bytes escaped. */
typedef struct Shown {
        char s[40];
} Shown;

static Shown show(const char *text) {
        Shown out;

        (void) log_escape(out.s, sizeof(out.s), text);
        return out;
}

static _printf_(3, 4) int fail(const Ctx *c, int r, const char *fmt, ...) {
        va_list ap;

        if (c->why_size > 0) {
                va_start(ap, fmt);
                (void) vsnprintf(c->why, c->why_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

static uint64_t be64(const uint8_t *p) {
        uint64_t v = 0;

        for (size_t i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* The sizes LUKS2 permits for one header copy: powers of two from 16 KiB to 4 MiB (they double as
 * the offsets where libcryptsetup looks for a secondary header). */
static bool hdr_size_valid(uint64_t s) {
        return s >= LUKS_HEADER_SIZE_MIN && s <= LUKS_HEADER_SIZE_MAX && (s & (s - 1)) == 0;
}

/* A fixed-size, NUL-terminated, zero-padded text field. */
static bool text_field_valid(const uint8_t *p, size_t n) {
        size_t len = strnlen((const char *) p, n);

        if (len == n)
                return false;
        for (size_t i = 0; i < len; i++)
                if (p[i] < 0x20 || p[i] >= 0x7f)
                        return false;
        return all_zero(p + len, n - len);
}

static bool uuid_valid(const uint8_t *p) {
        static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

        for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
                bool hex = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F');

                if (pattern[i] == '-' ? p[i] != '-' : !hex)
                        return false;
        }
        return all_zero(p + sizeof(pattern) - 1, UUID_LEN - (sizeof(pattern) - 1));
}

/* SHA-256 over the binary header with the checksum field zeroed, then the whole JSON area
 * (padding included): hdr_checksum_calculate() in cryptsetup's luks2_disk_metadata.c. */
static int checksum(const uint8_t *copy, uint64_t hdr_size, uint8_t out[SHA256_LEN]) {
        uint8_t bin[LUKS_HEADER_BIN_SIZE];
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned len = 0;
        int ok;

        if (!md)
                return -ENOMEM;
        memcpy(bin, copy, sizeof(bin));
        memset(bin + OFF_CSUM, 0, CSUM_LEN);
        ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(md, bin, sizeof(bin)) == 1 &&
             EVP_DigestUpdate(md, copy + LUKS_HEADER_BIN_SIZE, hdr_size - LUKS_HEADER_BIN_SIZE) == 1 &&
             EVP_DigestFinal_ex(md, out, &len) == 1 && len == SHA256_LEN;
        EVP_MD_CTX_free(md);
        return ok ? 0 : -EIO;
}

/* One binary header copy. The caller has checked magic, version and hdr_size of the primary and
 * that the buffer holds both copies. */
static int check_binary(const Ctx *c, const uint8_t *copy, bool secondary) {
        const char *name = secondary ? "secondary header" : "primary header";
        uint8_t sum[SHA256_LEN];
        uint64_t offset = secondary ? c->hdr_size : 0;
        int r;

        if (memcmp(copy, secondary ? MAGIC_2ND : MAGIC_1ST, MAGIC_LEN) != 0)
                return fail(c, -EBADMSG, "%s: bad magic", name);
        if (copy[OFF_VERSION] != 0 || copy[OFF_VERSION + 1] != 2)
                return fail(c, -EBADMSG, "%s: version %u, expected 2", name,
                            (unsigned) copy[OFF_VERSION] << 8 | copy[OFF_VERSION + 1]);
        if (be64(copy + OFF_HDR_SIZE) != c->hdr_size)
                return fail(c, -EBADMSG, "%s: header size %" PRIu64 " differs from the primary's %" PRIu64, name,
                            be64(copy + OFF_HDR_SIZE), c->hdr_size);
        if (be64(copy + OFF_HDR_OFFSET) != offset)
                return fail(c, -EBADMSG, "%s: offset field is %" PRIu64 ", expected %" PRIu64, name,
                            be64(copy + OFF_HDR_OFFSET), offset);
        /* libcryptsetup would accept any hash it knows here; one fixed algorithm leaves nothing to pick. */
        if (!text_field_valid(copy + OFF_CSUM_ALG, CSUM_ALG_LEN) ||
            strcmp((const char *) copy + OFF_CSUM_ALG, "sha256") != 0)
                return fail(c, -EOPNOTSUPP, "%s: checksum algorithm is not sha256", name);
        if (!text_field_valid(copy + OFF_LABEL, LABEL_LEN))
                return fail(c, -EBADMSG, "%s: label is not NUL-terminated printable text", name);
        if (!text_field_valid(copy + OFF_SUBSYSTEM, LABEL_LEN))
                return fail(c, -EBADMSG, "%s: subsystem is not NUL-terminated printable text", name);
        if (!uuid_valid(copy + OFF_UUID))
                return fail(c, -EBADMSG, "%s: UUID is malformed", name);
        /* Bytes no field gives a meaning to must be zero, including the part of the checksum field a
         * SHA-256 doesn't use (the checksum doesn't cover its own field). */
        if (!all_zero(copy + OFF_PADDING, OFF_CSUM - OFF_PADDING) ||
            !all_zero(copy + OFF_CSUM + SHA256_LEN, CSUM_LEN - SHA256_LEN) ||
            !all_zero(copy + OFF_PADDING4096, LUKS_HEADER_BIN_SIZE - OFF_PADDING4096))
                return fail(c, -EBADMSG, "%s: reserved bytes are not zero", name);
        r = checksum(copy, c->hdr_size, sum);
        if (r < 0)
                return fail(c, r, "%s: cannot compute SHA-256", name);
        if (memcmp(sum, copy + OFF_CSUM, SHA256_LEN) != 0)
                return fail(c, -EBADMSG, "%s: checksum mismatch", name);
        return 0;
}

/* libcryptsetup reads the primary copy and the secondary one at offset hdr_size. With both valid it
 * takes the one with the higher seqid; with one invalid it takes the other and rewrites ("repairs")
 * the bad one; with the primary unreadable it scans other offsets for a secondary. Demanding both
 * copies valid, with equal seqid and byte-identical binary fields and JSON area, leaves libcryptsetup
 * only one header to pick, the one checked here, and never a reason to repair anything. */
static int compare_copies(const Ctx *c, const uint8_t *a, const uint8_t *b) {
        static const struct {
                size_t offset, size;
                const char *name;
        } fields[] = {
                { OFF_LABEL, LABEL_LEN, "label" },
                { OFF_CSUM_ALG, CSUM_ALG_LEN, "checksum algorithm" },
                { OFF_UUID, UUID_LEN, "UUID" },
                { OFF_SUBSYSTEM, LABEL_LEN, "subsystem" },
        };

        if (be64(a + OFF_SEQID) != be64(b + OFF_SEQID))
                return fail(c, -EBADMSG, "header copies differ in seqid (%" PRIu64 " and %" PRIu64 ")",
                            be64(a + OFF_SEQID), be64(b + OFF_SEQID));
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (memcmp(a + fields[i].offset, b + fields[i].offset, fields[i].size) != 0)
                        return fail(c, -EBADMSG, "header copies differ in their %s", fields[i].name);
        if (memcmp(a + LUKS_HEADER_BIN_SIZE, b + LUKS_HEADER_BIN_SIZE, c->hdr_size - LUKS_HEADER_BIN_SIZE) != 0)
                return fail(c, -EBADMSG, "header copies have different JSON metadata");
        return 0;
}

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

/* dst becomes src in the role of the primary or the secondary copy: magic, offset, checksum. */
static int rebuild_copy(uint8_t *dst, const uint8_t *src, uint64_t hdr_size, bool secondary) {
        uint8_t sum[SHA256_LEN];
        int r;

        memmove(dst, src, hdr_size);
        memcpy(dst, secondary ? MAGIC_2ND : MAGIC_1ST, MAGIC_LEN);
        put_be64(dst + OFF_HDR_OFFSET, secondary ? hdr_size : 0);
        r = checksum(dst, hdr_size, sum);
        if (r < 0)
                return r;
        memset(dst + OFF_CSUM, 0, CSUM_LEN);
        memcpy(dst + OFF_CSUM, sum, SHA256_LEN);
        return 0;
}

int luks_header_reconcile(uint8_t *buf, size_t size, char *why, size_t why_size) {
        Ctx c = { .why = why, .why_size = why_size };
        uint8_t *second;
        bool ok1, ok2;
        uint64_t seq1, seq2;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        if (size < LUKS_HEADER_BIN_SIZE || memcmp(buf, MAGIC_1ST, MAGIC_LEN) != 0)
                return 0;
        c.hdr_size = be64(buf + OFF_HDR_SIZE);
        if (!hdr_size_valid(c.hdr_size) || size < 2 * c.hdr_size)
                return 0;
        second = buf + c.hdr_size;
        ok1 = check_binary(&c, buf, false) == 0;
        ok2 = check_binary(&c, second, true) == 0;
        seq1 = be64(buf + OFF_SEQID);
        seq2 = be64(second + OFF_SEQID);
        if (ok1 == ok2 && (!ok1 || seq1 == seq2))
                return 0; /* nothing a cut-short write explains: validation decides */
        if (ok1 && (!ok2 || seq1 > seq2)) {
                r = rebuild_copy(second, buf, c.hdr_size, true);
                if (r < 0)
                        return fail(&c, r, "cannot rebuild the secondary header");
                return fail(&c, 1, "secondary header %s (seqid %" PRIu64 "): using the primary (seqid %" PRIu64 ")",
                            ok2 ? "is older" : "is damaged", seq2, seq1);
        }
        r = rebuild_copy(buf, second, c.hdr_size, false);
        if (r < 0)
                return fail(&c, r, "cannot rebuild the primary header");
        return fail(&c, 1, "primary header %s (seqid %" PRIu64 "): using the secondary (seqid %" PRIu64 ")",
                    ok1 ? "is older" : "is damaged", seq1, seq2);
}

/* ---- JSON helpers. Every failure names the object ("keyslot 1") and the field. ---- */

static int get_member(const Ctx *c, json_object *obj, const char *what, const char *key, json_type type,
                      json_object **ret) {
        json_object *v;

        if (!json_object_object_get_ex(obj, key, &v))
                return fail(c, -EBADMSG, "%s has no field '%s'", what, key);
        if (!json_object_is_type(v, type))
                return fail(c, -EBADMSG, "%s field '%s' is not %s", what, key, json_type_phrase(type));
        *ret = v;
        return 0;
}

static int get_string(const Ctx *c, json_object *obj, const char *what, const char *key, const char **ret) {
        json_object *v;
        int r = get_member(c, obj, what, key, json_type_string, &v);

        if (r < 0)
                return r;
        /* A "\u0000" inside would cut the C string short of what the JSON says. */
        if (strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return fail(c, -EBADMSG, "%s field '%s' contains a NUL character", what, key);
        *ret = json_object_get_string(v);
        return 0;
}

/* A string member that must have exactly one value. */
static int expect_string(const Ctx *c, json_object *obj, const char *what, const char *key, const char *want) {
        const char *s;
        int r = get_string(c, obj, what, key, &s);

        if (r < 0)
                return r;
        if (strcmp(s, want) != 0)
                return fail(c, -EOPNOTSUPP, "%s %s '%s' is not %s", what, key, show(s).s, want);
        return 0;
}

/* Plain decimal: no sign, no leading zeros, no overflow. */
static bool parse_decimal(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return true;
}

/* LUKS2 writes 64-bit values as decimal strings. */
static int get_u64_string(const Ctx *c, json_object *obj, const char *what, const char *key, uint64_t *ret) {
        const char *s;
        int r = get_string(c, obj, what, key, &s);

        if (r < 0)
                return r;
        if (!parse_decimal(s, ret))
                return fail(c, -EBADMSG, "%s field '%s' is not a decimal number", what, key);
        return 0;
}

static int get_int(const Ctx *c, json_object *obj, const char *what, const char *key, int64_t min, int64_t max,
                   int64_t *ret) {
        json_object *v;
        int64_t x;
        int r = get_member(c, obj, what, key, json_type_int, &v);

        if (r < 0)
                return r;
        /* json-c clamps values beyond int64 to its limits, which are outside every range used here. */
        x = json_object_get_int64(v);
        if (x < min || x > max)
                return fail(c, -EOPNOTSUPP, "%s %s %" PRId64 " is outside %" PRId64 "..%" PRId64, what, key, x, min,
                            max);
        *ret = x;
        return 0;
}

/* Refuses fields we don't know: a field we ignore could be one libcryptsetup acts on. */
static int check_fields(const Ctx *c, json_object *obj, const char *what, const char *const *allowed, size_t n) {
        json_object_object_foreach(obj, key, val) {
                bool known = false;

                (void) val;
                for (size_t i = 0; i < n && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (!known)
                        return fail(c, -EOPNOTSUPP, "%s has unknown field '%s'", what, show(key).s);
        }
        return 0;
}

/* Object ids ("keyslots": {"3": ...}): canonical decimal below max, as in the C API's ints. */
static int parse_id(const Ctx *c, const char *key, const char *what, unsigned max, unsigned *ret) {
        uint64_t v;

        if (!parse_decimal(key, &v) || v >= max)
                return fail(c, -EBADMSG, "%s id '%s' is not a number from 0 to %u", what, show(key).s, max - 1);
        *ret = (unsigned) v;
        return 0;
}

static int check_cipher(const Ctx *c, const char *what, const char *cipher) {
        for (size_t i = 0; i < ELEMENTSOF(allowed_ciphers); i++)
                if (strcmp(cipher, allowed_ciphers[i]) == 0)
                        return 0;
        /* The attack this module exists for: cipher_null makes any key "work" and stores plaintext. */
        if (strstr(cipher, "null"))
                return fail(c, -EOPNOTSUPP, "%s uses cipher_null", what);
        return fail(c, -EOPNOTSUPP, "%s uses cipher '%s' (allowed: aes-xts-plain64, serpent-xts-plain64, twofish-xts-plain64)",
                    what, show(cipher).s);
}

static int check_hash(const Ctx *c, const char *what, const char *hash) {
        if (strcmp(hash, "sha256") != 0 && strcmp(hash, "sha512") != 0)
                return fail(c, -EOPNOTSUPP, "%s hash '%s' is not sha256 or sha512", what, show(hash).s);
        return 0;
}

static int check_base64(const Ctx *c, const char *what, const char *s, size_t expect) {
        uint8_t buf[64];
        size_t n;

        if (base64_decode_strict(s, strlen(s), buf, sizeof(buf), &n) < 0 || n != expect)
                return fail(c, -EBADMSG, "%s is not %zu bytes of base64", what, expect);
        return 0;
}

/* Array of keyslot ids as strings, each existing and listed once. Returns the mask. */
static int get_keyslot_refs(const Ctx *c, json_object *obj, const char *what, uint32_t *ret) {
        json_object *arr;
        uint32_t mask = 0;
        int r = get_member(c, obj, what, "keyslots", json_type_array, &arr);

        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i);
                uint64_t id;

                if (!json_object_is_type(e, json_type_string) || !parse_decimal(json_object_get_string(e), &id) ||
                    id >= LUKS_SLOTS_MAX)
                        return fail(c, -EBADMSG, "%s keyslots entry %zu is not a keyslot id", what, i);
                if (!(c->keyslots & (UINT32_C(1) << id)))
                        return fail(c, -EBADMSG, "%s refers to keyslot %" PRIu64 ", which does not exist", what, id);
                if (mask & (UINT32_C(1) << id))
                        return fail(c, -EBADMSG, "%s lists keyslot %" PRIu64 " twice", what, id);
                mask |= UINT32_C(1) << id;
        }
        *ret = mask;
        return 0;
}

/* ---- sections ---- */

static int check_config(Ctx *c, json_object *config) {
        static const char *const fields[] = { "json_size", "keyslots_size", "flags", "requirements" };
        /* Persistent activation flags libcryptsetup applies on its own. Performance flags only:
         * "allow-discards" would tell the host which blocks are free, "no-journal" is for integrity. */
        static const char *const flags_allowed[] = { "same-cpu-crypt", "submit-from-crypt-cpus", "no-read-workqueue",
                                                     "no-write-workqueue" };
        json_object *v;
        uint64_t json_size;
        int r;

        r = check_fields(c, config, "config", fields, ELEMENTSOF(fields));
        if (r < 0)
                return r;
        r = get_u64_string(c, config, "config", "json_size", &json_size);
        if (r < 0)
                return r;
        if (json_size != c->hdr_size - LUKS_HEADER_BIN_SIZE)
                return fail(c, -EBADMSG, "config json_size %" PRIu64 " does not match the header size %" PRIu64,
                            json_size, c->hdr_size);
        r = get_u64_string(c, config, "config", "keyslots_size", &c->keyslots_size);
        if (r < 0)
                return r;
        if (c->keyslots_size > LUKS_KEYSLOTS_SIZE_MAX)
                return fail(c, -EOPNOTSUPP, "config keyslots_size %" PRIu64 " exceeds 128 MiB", c->keyslots_size);
        if (!ALIGN_4K(c->keyslots_size))
                return fail(c, -EBADMSG, "config keyslots_size %" PRIu64 " is not a multiple of 4096", c->keyslots_size);
        c->area_size = 2 * c->hdr_size + c->keyslots_size;

        if (json_object_object_get_ex(config, "flags", &v)) {
                if (!json_object_is_type(v, json_type_array))
                        return fail(c, -EBADMSG, "config field 'flags' is not an array");
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *e = json_object_array_get_idx(v, i);
                        bool known = false;

                        if (!json_object_is_type(e, json_type_string))
                                return fail(c, -EBADMSG, "config flags entry %zu is not a string", i);
                        for (size_t k = 0; k < ELEMENTSOF(flags_allowed) && !known; k++)
                                known = strcmp(json_object_get_string(e), flags_allowed[k]) == 0;
                        if (!known)
                                return fail(c, -EOPNOTSUPP, "config flag '%s' is not allowed",
                                            show(json_object_get_string(e)).s);
                }
        }

        if (json_object_object_get_ex(config, "requirements", &v)) {
                static const char *const req_fields[] = { "mandatory" };
                json_object *mandatory;

                if (!json_object_is_type(v, json_type_object))
                        return fail(c, -EBADMSG, "config field 'requirements' is not an object");
                r = check_fields(c, v, "config requirements", req_fields, ELEMENTSOF(req_fields));
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(v, "mandatory", &mandatory)) {
                        if (!json_object_is_type(mandatory, json_type_array))
                                return fail(c, -EBADMSG, "config requirements field 'mandatory' is not an array");
                        /* Every mandatory requirement (reencryption in progress, OPAL, ...) changes
                         * how the volume must be read; none of them is ours, but for the re-key of
                         * our own provisioning. */
                        if (json_object_array_length(mandatory) > 0) {
                                json_object *e = json_object_array_get_idx(mandatory, 0);
                                const char *req;

                                if (!json_object_is_type(e, json_type_string))
                                        return fail(c, -EBADMSG, "config requirement 0 is not a string");
                                req = json_object_get_string(e);
                                if (!c->provision || json_object_array_length(mandatory) != 1 ||
                                    (strcmp(req, "online-reencrypt-v2") != 0 && strcmp(req, "online-reencrypt-v3") != 0))
                                        return fail(c, -EOPNOTSUPP, "requirement '%s' is not supported", show(req).s);
                                c->reencrypt = true;
                        }
                }
        }
        return 0;
}

static int check_kdf(const Ctx *c, json_object *kdf, const char *what) {
        static const char *const pbkdf2_fields[] = { "type", "hash", "iterations", "salt" };
        static const char *const argon2_fields[] = { "type", "time", "memory", "cpus", "salt" };
        const char *type, *s;
        int64_t x;
        int r;

        r = get_string(c, kdf, what, "type", &type);
        if (r < 0)
                return r;
        if (strcmp(type, "pbkdf2") == 0) {
                r = check_fields(c, kdf, what, pbkdf2_fields, ELEMENTSOF(pbkdf2_fields));
                if (r >= 0)
                        r = get_string(c, kdf, what, "hash", &s);
                if (r >= 0)
                        r = check_hash(c, what, s);
                if (r >= 0)
                        r = get_int(c, kdf, what, "iterations", PBKDF2_ITERATIONS_MIN, PBKDF2_ITERATIONS_MAX, &x);
        } else if (strcmp(type, "argon2i") == 0 || strcmp(type, "argon2id") == 0) {
                /* Bounded so a rewritten header can't make the initramfs allocate or spin forever. */
                r = check_fields(c, kdf, what, argon2_fields, ELEMENTSOF(argon2_fields));
                if (r >= 0)
                        r = get_int(c, kdf, what, "time", 1, ARGON2_TIME_MAX, &x);
                if (r >= 0)
                        r = get_int(c, kdf, what, "memory", ARGON2_MEMORY_MIN, ARGON2_MEMORY_MAX, &x);
                if (r >= 0)
                        r = get_int(c, kdf, what, "cpus", 1, ARGON2_CPUS_MAX, &x);
        } else
                return fail(c, -EOPNOTSUPP, "%s type '%s' is not pbkdf2, argon2i or argon2id", what, show(type).s);
        if (r < 0)
                return r;
        r = get_string(c, kdf, what, "salt", &s);
        if (r < 0)
                return r;
        return check_base64(c, "keyslot kdf salt", s, KDF_SALT_SIZE);
}

/* A keyslot area's offset and size: inside the keyslots area, 4096-aligned. */
static int check_area_extent(const Ctx *c, json_object *ar, const char *what, unsigned id, Area *area) {
        int r = get_u64_string(c, ar, what, "offset", &area->offset);

        if (r >= 0)
                r = get_u64_string(c, ar, what, "size", &area->size);
        if (r < 0)
                return r;
        if (area->offset < 2 * c->hdr_size || area->size == 0 || area->offset > c->area_size ||
            area->size > c->area_size - area->offset)
                return fail(c, -EBADMSG, "keyslot %u area outside the keyslots area", id);
        if (!ALIGN_4K(area->offset) || !ALIGN_4K(area->size))
                return fail(c, -EBADMSG, "keyslot %u area is not 4096-aligned", id);
        return 0;
}

/* The state of a pending re-key (provisioning only): what libcryptsetup writes for `reencrypt` with
 * checksum resilience. The mode is reencrypt, never encrypt or decrypt (a plaintext segment). */
static int check_reencrypt_keyslot(Ctx *c, unsigned id, json_object *ks, Area *area) {
        static const char *const fields[] = { "type", "key_size", "area", "mode", "direction", "priority" };
        static const char *const area_fields[] = { "type", "offset", "size", "hash", "sector_size" };
        char what[48];
        json_object *ar, *v;
        const char *s;
        int64_t x;
        int r;

        (void) snprintf(what, sizeof(what), "keyslot %u", id);
        if (c->reencrypt_slots)
                return fail(c, -EOPNOTSUPP, "%s is a second reencrypt keyslot", what);
        r = check_fields(c, ks, what, fields, ELEMENTSOF(fields));
        if (r >= 0)
                r = get_int(c, ks, what, "key_size", 1, 1, &x);
        if (r >= 0)
                r = expect_string(c, ks, what, "mode", "reencrypt");
        if (r >= 0)
                r = get_string(c, ks, what, "direction", &s);
        if (r >= 0 && strcmp(s, "forward") != 0 && strcmp(s, "backward") != 0)
                r = fail(c, -EOPNOTSUPP, "%s direction '%s' is not forward or backward", what, show(s).s);
        if (r >= 0 && json_object_object_get_ex(ks, "priority", &v))
                r = get_int(c, ks, what, "priority", 0, 0, &x);
        if (r >= 0)
                r = get_member(c, ks, what, "area", json_type_object, &ar);
        if (r < 0)
                return r;
        (void) snprintf(what, sizeof(what), "keyslot %u area", id);
        r = check_fields(c, ar, what, area_fields, ELEMENTSOF(area_fields));
        if (r >= 0)
                r = expect_string(c, ar, what, "type", "checksum");
        if (r >= 0)
                r = get_string(c, ar, what, "hash", &s);
        if (r >= 0)
                r = check_hash(c, what, s);
        if (r >= 0)
                r = get_int(c, ar, what, "sector_size", 512, 4096, &x);
        if (r >= 0 && (x & (x - 1)) != 0)
                r = fail(c, -EOPNOTSUPP, "%s sector_size %" PRId64 " is not a power of two", what, x);
        if (r >= 0)
                r = check_area_extent(c, ar, what, id, area);
        if (r < 0)
                return r;
        c->reencrypt_slots |= UINT32_C(1) << id;
        return 0;
}

static int check_keyslot(Ctx *c, unsigned id, json_object *ks, Area *area) {
        static const char *const fields[] = { "type", "key_size", "af", "area", "kdf", "priority" };
        static const char *const af_fields[] = { "type", "stripes", "hash" };
        static const char *const area_fields[] = { "type", "offset", "size", "encryption", "key_size" };
        char what[48];
        json_object *af, *ar, *kdf, *v;
        const char *s;
        int64_t key_size, x;
        uint64_t need;
        int r;

        (void) snprintf(what, sizeof(what), "keyslot %u", id);
        if (!json_object_is_type(ks, json_type_object))
                return fail(c, -EBADMSG, "%s is not an object", what);
        r = get_string(c, ks, what, "type", &s);
        if (r < 0)
                return r;
        /* "reencrypt" keyslots hold reencryption state; nothing else exists in LUKS2 today. */
        if (strcmp(s, "reencrypt") == 0 && c->reencrypt)
                return check_reencrypt_keyslot(c, id, ks, area);
        if (strcmp(s, "luks2") != 0)
                return fail(c, -EOPNOTSUPP, "%s has type '%s' (only 'luks2' is supported)", what, show(s).s);
        r = check_fields(c, ks, what, fields, ELEMENTSOF(fields));
        if (r < 0)
                return r;
        r = get_int(c, ks, what, "key_size", 0, INT32_MAX, &key_size);
        if (r < 0)
                return r;
        /* XTS takes two keys: 32 bytes is AES-128-XTS, 64 bytes AES-256-XTS. */
        if (key_size != 32 && key_size != 64)
                return fail(c, -EOPNOTSUPP, "%s key_size %" PRId64 " is not 32 or 64", what, key_size);
        if (c->key_size != 0 && c->key_size != (uint32_t) key_size)
                return fail(c, -EOPNOTSUPP, "%s key_size %" PRId64 " differs from the other keyslots' %u", what,
                            key_size, c->key_size);
        c->key_size = (uint32_t) key_size;
        if (json_object_object_get_ex(ks, "priority", &v)) {
                r = get_int(c, ks, what, "priority", 0, 2, &x);
                if (r < 0)
                        return r;
        }

        r = get_member(c, ks, what, "af", json_type_object, &af);
        if (r < 0)
                return r;
        (void) snprintf(what, sizeof(what), "keyslot %u af", id);
        r = check_fields(c, af, what, af_fields, ELEMENTSOF(af_fields));
        if (r >= 0)
                r = expect_string(c, af, what, "type", "luks1");
        if (r >= 0)
                r = get_int(c, af, what, "stripes", AF_STRIPES, AF_STRIPES, &x);
        if (r >= 0)
                r = get_string(c, af, what, "hash", &s);
        if (r >= 0)
                r = check_hash(c, what, s);
        if (r < 0)
                return r;

        (void) snprintf(what, sizeof(what), "keyslot %u", id);
        r = get_member(c, ks, what, "area", json_type_object, &ar);
        if (r < 0)
                return r;
        (void) snprintf(what, sizeof(what), "keyslot %u area", id);
        r = check_fields(c, ar, what, area_fields, ELEMENTSOF(area_fields));
        if (r >= 0)
                r = expect_string(c, ar, what, "type", "raw");
        if (r >= 0)
                r = get_string(c, ar, what, "encryption", &s);
        if (r >= 0)
                r = check_cipher(c, what, s);
        if (r >= 0)
                r = get_int(c, ar, what, "key_size", 0, INT32_MAX, &x);
        if (r >= 0 && x != 32 && x != 64)
                r = fail(c, -EOPNOTSUPP, "%s key_size %" PRId64 " is not 32 or 64", what, x);
        if (r >= 0)
                r = check_area_extent(c, ar, what, id, area);
        if (r < 0)
                return r;
        /* The anti-forensic split key fills key_size * stripes bytes, rounded up to 512-byte sectors. */
        need = ((uint64_t) key_size * AF_STRIPES + 511) / 512 * 512;
        if (area->size < need)
                return fail(c, -EBADMSG, "keyslot %u area is %" PRIu64 " bytes, the split key needs %" PRIu64, id,
                            area->size, need);

        (void) snprintf(what, sizeof(what), "keyslot %u", id);
        r = get_member(c, ks, what, "kdf", json_type_object, &kdf);
        if (r < 0)
                return r;
        (void) snprintf(what, sizeof(what), "keyslot %u kdf", id);
        return check_kdf(c, kdf, what);
}

static int check_keyslots(Ctx *c, json_object *keyslots) {
        Area *areas = c->areas;
        int r;

        json_object_object_foreach(keyslots, key, val) {
                unsigned id;

                r = parse_id(c, key, "keyslot", LUKS_SLOTS_MAX, &id);
                if (r < 0)
                        return r;
                r = check_keyslot(c, id, val, &areas[id]);
                if (r < 0)
                        return r;
                c->keyslots |= UINT32_C(1) << id;
        }
        for (unsigned i = 0; i < LUKS_SLOTS_MAX; i++)
                for (unsigned j = i + 1; j < LUKS_SLOTS_MAX; j++)
                        if ((c->keyslots & (UINT32_C(1) << i)) && (c->keyslots & (UINT32_C(1) << j)) &&
                            areas[i].offset < areas[j].offset + areas[j].size &&
                            areas[j].offset < areas[i].offset + areas[i].size)
                                return fail(c, -EBADMSG, "keyslots %u and %u have overlapping areas", i, j);
        return 0;
}

/* One crypt segment. info receives segment 0's cipher, sector size and offset. */
static int check_segment(Ctx *c, unsigned id, json_object *seg, LuksHeaderInfo *info) {
        static const char *const fields[] = { "type", "offset", "size", "iv_tweak", "encryption", "sector_size", "flags" };
        char what[32];
        json_object *v;
        const char *s;
        uint64_t size, offset, tweak;
        int64_t sector_size;
        int r;

        (void) snprintf(what, sizeof(what), "segment %u", id);
        if (!json_object_is_type(seg, json_type_object))
                return fail(c, -EBADMSG, "%s is not an object", what);
        r = get_string(c, seg, what, "type", &s);
        if (r < 0)
                return r;
        if (strcmp(s, "crypt") != 0)
                return fail(c, -EOPNOTSUPP, "%s has type '%s' (only 'crypt' is supported)", what, show(s).s);
        if (json_object_object_get_ex(seg, "integrity", &v))
                return fail(c, -EOPNOTSUPP, "%s uses dm-integrity (not supported)", what);
        /* Flags only mark the hot zone and the backup segments of a pending re-key. */
        r = check_fields(c, seg, what, fields, ELEMENTSOF(fields) - !c->reencrypt);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(seg, "flags", &v)) {
                json_object *e = json_object_is_type(v, json_type_array) && json_object_array_length(v) == 1
                                         ? json_object_array_get_idx(v, 0) : NULL;

                if (!e || !json_object_is_type(e, json_type_string) ||
                    (strcmp(json_object_get_string(e), "backup-previous") != 0 &&
                     strcmp(json_object_get_string(e), "backup-final") != 0 &&
                     strcmp(json_object_get_string(e), "in-reencryption") != 0))
                        return fail(c, -EOPNOTSUPP, "%s flags are not one of backup-previous, backup-final, in-reencryption", what);
        }
        r = get_string(c, seg, what, "encryption", &s);
        if (r < 0)
                return r;
        r = check_cipher(c, what, s);
        if (r < 0)
                return r;
        if (id == 0) {
                if (strlen(s) >= sizeof(info->cipher))
                        return fail(c, -EBADMSG, "segment 0 cipher name too long");
                strcpy(info->cipher, s);
        }
        r = get_int(c, seg, what, "sector_size", 512, 4096, &sector_size);
        if (r < 0)
                return r;
        if (sector_size != 512 && sector_size != 1024 && sector_size != 2048 && sector_size != 4096)
                return fail(c, -EOPNOTSUPP, "%s sector_size %" PRId64 " is not 512, 1024, 2048 or 4096", what,
                            sector_size);
        r = get_string(c, seg, what, "iv_tweak", &s);
        if (r < 0)
                return r;
        /* A re-key splits the volume: the later part's IVs continue where the first part's end. */
        if (c->reencrypt ? !parse_decimal(s, &tweak) : strcmp(s, "0") != 0)
                return fail(c, -EOPNOTSUPP, "%s iv_tweak '%s' is not 0", what, show(s).s);
        r = get_u64_string(c, seg, what, "offset", &offset);
        if (r < 0)
                return r;
        /* Data inside the header area would let writes to the volume overwrite the keyslots, and an
         * offset of 0 would mean "detached header", which this volume isn't. */
        if (offset < c->area_size)
                return fail(c, -EBADMSG, "%s offset %" PRIu64 " lies inside the header area (%" PRIu64 " bytes)", what,
                            offset, c->area_size);
        if (!ALIGN_4K(offset))
                return fail(c, -EBADMSG, "%s offset %" PRIu64 " is not 4096-aligned", what, offset);
        r = get_string(c, seg, what, "size", &s);
        if (r < 0)
                return r;
        if (strcmp(s, "dynamic") != 0 &&
            (!parse_decimal(s, &size) || size == 0 || size % (uint64_t) sector_size != 0))
                return fail(c, -EBADMSG, "%s size '%s' is neither 'dynamic' nor a multiple of the sector size", what,
                            show(s).s);
        if (id == 0) {
                info->sector_size = (uint32_t) sector_size;
                info->data_offset = offset;
        }
        return 0;
}

static int check_segments(Ctx *c, json_object *segments, LuksHeaderInfo *info) {
        json_object *seg;
        int r, n = json_object_object_length(segments);

        if (n == 0)
                return fail(c, -EBADMSG, "no segment");
        /* Reencryption and its backup segments show up as extra segments: refused, but for the
         * re-key of our own provisioning (done, hot zone and rest, and two backups at most). */
        if (n > (c->reencrypt ? 5 : 1))
                return fail(c, -EOPNOTSUPP, "%d segments (only one is supported; reencryption is refused)", n);
        if (!json_object_object_get_ex(segments, "0", &seg))
                return fail(c, -EBADMSG, "the only segment is not segment 0");
        json_object_object_foreach(segments, key, val) {
                unsigned id;

                r = parse_id(c, key, "segment", 5, &id);
                if (r < 0)
                        return r;
                r = check_segment(c, id, val, info);
                if (r < 0)
                        return r;
                c->segments |= UINT32_C(1) << id;
        }
        return 0;
}

/* A digest's "segments": existing segment ids, each once. */
static int get_segment_refs(const Ctx *c, json_object *arr, const char *what, uint32_t *ret) {
        uint32_t mask = 0;

        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i);
                uint64_t id;

                if (!json_object_is_type(e, json_type_string) || !parse_decimal(json_object_get_string(e), &id) ||
                    id >= 32 || !(c->segments & (UINT32_C(1) << id)) || (mask & (UINT32_C(1) << id)))
                        return fail(c, -EBADMSG, "%s segments entry %zu is not a segment of this header, once", what, i);
                mask |= UINT32_C(1) << id;
        }
        *ret = mask;
        return 0;
}

static int check_digests(const Ctx *c, json_object *digests) {
        static const char *const fields[] = { "type", "keyslots", "segments", "hash", "iterations", "salt", "digest" };
        int n = json_object_object_length(digests);
        int r;

        uint32_t all_bound = 0, all_segments = 0;

        /* One volume key, one digest: a second digest only exists for unbound keys or reencryption,
         * which provisioning has (old key, new key, reencrypt keyslot). */
        if (n == 0)
                return fail(c, -EBADMSG, "no digest");
        if (n > (c->provision ? 3 : 1))
                return fail(c, -EOPNOTSUPP, "%d digests (only one is supported)", n);

        json_object_object_foreach(digests, key, val) {
                char what[32];
                json_object *segs, *e;
                const char *s, *hash;
                uint32_t bound;
                int64_t x;
                unsigned id;

                r = parse_id(c, key, "digest", DIGESTS_MAX, &id);
                if (r < 0)
                        return r;
                (void) snprintf(what, sizeof(what), "digest %u", id);
                if (!json_object_is_type(val, json_type_object))
                        return fail(c, -EBADMSG, "%s is not an object", what);
                r = check_fields(c, val, what, fields, ELEMENTSOF(fields));
                if (r >= 0)
                        r = expect_string(c, val, what, "type", "pbkdf2");
                if (r >= 0)
                        r = get_string(c, val, what, "hash", &hash);
                if (r >= 0)
                        r = check_hash(c, what, hash);
                if (r >= 0)
                        r = get_int(c, val, what, "iterations", PBKDF2_ITERATIONS_MIN, PBKDF2_ITERATIONS_MAX, &x);
                if (r >= 0)
                        r = get_string(c, val, what, "salt", &s);
                if (r >= 0)
                        r = check_base64(c, "digest salt", s, DIGEST_SALT_SIZE);
                if (r >= 0)
                        r = get_string(c, val, what, "digest", &s);
                if (r >= 0)
                        r = check_base64(c, "digest value", s, strcmp(hash, "sha256") == 0 ? 32 : 64);
                if (r >= 0)
                        r = get_member(c, val, what, "segments", json_type_array, &segs);
                if (r < 0)
                        return r;
                r = get_keyslot_refs(c, val, what, &bound);
                if (r < 0)
                        return r;
                if (c->provision) {
                        /* Provisioning: the new key's digest covers no segment until the re-key
                         * starts, and both cover the hot zone while it runs; each keyslot belongs
                         * to one digest. */
                        uint32_t covered = 0;

                        r = get_segment_refs(c, segs, what, &covered);
                        if (r < 0)
                                return r;
                        if (bound & all_bound)
                                return fail(c, -EBADMSG, "%s shares a keyslot with another digest", what);
                        all_segments |= covered;
                        all_bound |= bound;
                        continue;
                }
                e = json_object_array_length(segs) == 1 ? json_object_array_get_idx(segs, 0) : NULL;
                if (!e || !json_object_is_type(e, json_type_string) || strcmp(json_object_get_string(e), "0") != 0)
                        return fail(c, -EBADMSG, "%s does not cover exactly segment 0", what);
                /* An unbound keyslot would hold some other key, for no purpose of ours. */
                for (unsigned i = 0; i < LUKS_SLOTS_MAX; i++)
                        if ((c->keyslots & ~bound) & (UINT32_C(1) << i))
                                return fail(c, -EOPNOTSUPP, "keyslot %u is not bound to the volume key digest", i);
        }
        if (c->provision && (all_segments != c->segments || all_bound != c->keyslots))
                return fail(c, -EBADMSG, "a segment or keyslot has no digest");
        return 0;
}

static int check_tokens(Ctx *c, json_object *tokens, uint32_t *ret) {
        uint32_t mask = 0;
        int r;

        json_object_object_foreach(tokens, key, val) {
                char what[32];
                const char *type;
                uint32_t refs;
                unsigned id;

                r = parse_id(c, key, "token", LUKS_SLOTS_MAX, &id);
                if (r < 0)
                        return r;
                (void) snprintf(what, sizeof(what), "token %u", id);
                if (!json_object_is_type(val, json_type_object))
                        return fail(c, -EBADMSG, "%s is not an object", what);
                r = get_string(c, val, what, "type", &type);
                if (r < 0)
                        return r;
                /* The type picks a plugin library by name: keep it a plain word. */
                if (!*type || strlen(type) > TOKEN_TYPE_MAX || strspn(type, "abcdefghijklmnopqrstuvwxyz"
                                                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                                                                      strlen(type))
                        return fail(c, -EBADMSG, "%s type '%s' is not a plain name", what, show(type).s);
                r = get_keyslot_refs(c, val, what, &refs);
                if (r < 0)
                        return r;
                /* The rest of a token belongs to its type's parser (token.c for ours). */
                mask |= UINT32_C(1) << id;
                if (strcmp(type, TOKEN_PROVISION_TYPE) == 0)
                        c->provision_token = true;
        }
        *ret = mask;
        return 0;
}

static int check_json(Ctx *c, const uint8_t *area, size_t area_size, LuksHeaderInfo *info) {
        static const char *const sections[] = { "keyslots", "tokens", "segments", "digests", "config" };
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_object *keyslots, *tokens, *segments, *digests, *config;
        size_t len = strnlen((const char *) area, area_size);
        char parse_why[LUKS_WHY_MAX] = "";
        int r;

        /* As libcryptsetup demands: the JSON text first, then NUL bytes to the end of the area. */
        if (area[0] != '{')
                return fail(c, -EBADMSG, "JSON area does not start with '{'");
        if (len == area_size)
                return fail(c, -EBADMSG, "JSON area is not NUL-terminated");
        if (!all_zero(area + len, area_size - len))
                return fail(c, -EBADMSG, "JSON area has data after the JSON text");

        /* The strict parser only ever refuses input json-c would take, never reads it differently,
         * so the object checked here is the one libcryptsetup (same json-c) builds from these bytes.
         * It refuses duplicate keys too, which json-c would resolve silently. */
        r = json_parse_strict((const char *) area, len, JSON_DEPTH_MAX, &root, parse_why, sizeof(parse_why));
        if (r == -ENOMEM)
                return fail(c, r, "out of memory");
        if (r < 0)
                return fail(c, -EBADMSG, "JSON metadata does not parse: %s", parse_why);
        if (!json_object_is_type(root, json_type_object))
                return fail(c, -EBADMSG, "JSON metadata is not an object");
        json_object_object_foreach(root, key, val) {
                bool known = false;

                (void) val;
                for (size_t i = 0; i < ELEMENTSOF(sections) && !known; i++)
                        known = strcmp(key, sections[i]) == 0;
                if (!known)
                        return fail(c, -EOPNOTSUPP, "JSON metadata has unknown top-level field '%s'", show(key).s);
        }
        r = get_member(c, root, "JSON metadata", "config", json_type_object, &config);
        if (r >= 0)
                r = get_member(c, root, "JSON metadata", "keyslots", json_type_object, &keyslots);
        if (r >= 0)
                r = get_member(c, root, "JSON metadata", "segments", json_type_object, &segments);
        if (r >= 0)
                r = get_member(c, root, "JSON metadata", "digests", json_type_object, &digests);
        if (r >= 0)
                r = get_member(c, root, "JSON metadata", "tokens", json_type_object, &tokens);
        if (r < 0)
                return r;

        /* Config first: the keyslot and segment checks need the area sizes. */
        r = check_config(c, config);
        if (r < 0)
                return r;
        r = check_keyslots(c, keyslots);
        if (r < 0)
                return r;
        r = check_segments(c, segments, info);
        if (r < 0)
                return r;
        r = check_digests(c, digests);
        if (r < 0)
                return r;
        r = check_tokens(c, tokens, &info->tokens);
        if (r < 0)
                return r;
        /* The provisioning states are ours only while our provisioning token says so. */
        if (c->provision && !c->provision_token && (c->reencrypt || json_object_object_length(digests) > 1))
                return fail(c, -EOPNOTSUPP, "a second volume key or a pending reencryption, without a cvmcrypt-provision token");
        if (c->reencrypt != (c->reencrypt_slots != 0))
                return fail(c, -EBADMSG, "the reencryption requirement and the reencrypt keyslot do not go together");
        return 0;
}

int luks_header_validate(const uint8_t *buf, size_t size, LuksHeaderInfo *ret, char *why, size_t why_size) {
        return luks_header_validate_flags(buf, size, 0, ret, why, why_size);
}

int luks_header_validate_flags(const uint8_t *buf, size_t size, LuksSnapshotFlags flags, LuksHeaderInfo *ret,
                               char *why, size_t why_size) {
        Ctx c = { .why = why, .why_size = why_size, .provision = flags & LUKS_SNAPSHOT_PROVISION };
        LuksHeaderInfo info = {};
        unsigned version;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        if (size < MAGIC_LEN + 2 || memcmp(buf, MAGIC_1ST, MAGIC_LEN) != 0)
                return fail(&c, -EMEDIUMTYPE, "no LUKS header (bad magic)");
        version = (unsigned) buf[OFF_VERSION] << 8 | buf[OFF_VERSION + 1];
        if (version != 2)
                return fail(&c, -EMEDIUMTYPE, "LUKS version %u header is not supported (only version 2)", version);
        if (size < LUKS_HEADER_BIN_SIZE)
                return fail(&c, -EBADMSG, "truncated: %zu bytes, a LUKS2 binary header needs %u", size,
                            LUKS_HEADER_BIN_SIZE);
        c.hdr_size = be64(buf + OFF_HDR_SIZE);
        if (!hdr_size_valid(c.hdr_size))
                return fail(&c, -EBADMSG, "header size %" PRIu64 " is not a LUKS2 size (a power of two from 16 KiB to 4 MiB)",
                            c.hdr_size);
        if (size < 2 * c.hdr_size)
                return fail(&c, -EBADMSG, "truncated: %zu bytes, the two header copies need %" PRIu64, size,
                            2 * c.hdr_size);

        r = check_binary(&c, buf, false);
        if (r < 0)
                return r;
        r = check_binary(&c, buf + c.hdr_size, true);
        if (r < 0)
                return r;
        r = compare_copies(&c, buf, buf + c.hdr_size);
        if (r < 0)
                return r;
        r = check_json(&c, buf + LUKS_HEADER_BIN_SIZE, c.hdr_size - LUKS_HEADER_BIN_SIZE, &info);
        if (r < 0)
                return r;

        memcpy(info.uuid, buf + OFF_UUID, sizeof(info.uuid) - 1);
        memcpy(info.label, buf + OFF_LABEL, sizeof(info.label) - 1);
        memcpy(info.subsystem, buf + OFF_SUBSYSTEM, sizeof(info.subsystem) - 1);
        info.seqid = be64(buf + OFF_SEQID);
        info.hdr_size = c.hdr_size;
        info.keyslots_size = c.keyslots_size;
        info.area_size = c.area_size;
        info.volume_key_size = c.key_size;
        info.keyslots = c.keyslots;
        for (unsigned i = 0; i < LUKS_SLOTS_MAX; i++)
                if (c.keyslots & (UINT32_C(1) << i)) {
                        info.keyslot_offset[i] = c.areas[i].offset;
                        info.keyslot_size[i] = c.areas[i].size;
                }
        if (ret)
                *ret = info;
        return 0;
}

/* ---- snapshot ---- */

/* Reads up to n bytes at offset; returns the count (short only at end of file) or -errno. */
static ssize_t pread_full(int fd, uint8_t *p, size_t n, uint64_t offset) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, p + done, n - done, (off_t) (offset + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

static int write_full(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int device_size(int fd, const struct stat *st, uint64_t *ret) {
        if (S_ISREG(st->st_mode)) {
                *ret = (uint64_t) st->st_size;
                return 0;
        }
        return ioctl(fd, BLKGETSIZE64, ret) < 0 ? negative_errno() : 0;
}

/* Copies [offset, offset + size) of the device to the same offset of the memfd, through buf
 * (COPY_CHUNK bytes). -EBADMSG when the device ends first. */
static int copy_range(int fd, int mfd, uint8_t *buf, uint64_t offset, uint64_t size) {
        for (uint64_t pos = offset; pos < offset + size;) {
                size_t n = (size_t) (offset + size - pos < COPY_CHUNK ? offset + size - pos : COPY_CHUNK);
                ssize_t k = pread_full(fd, buf, n, pos);

                if (k < 0)
                        return (int) k;
                if ((size_t) k < n)
                        return -EBADMSG;
                if (pwrite(mfd, buf, n, (off_t) pos) != (ssize_t) n)
                        return errno > 0 ? -errno : -EIO;
                pos += n;
        }
        return 0;
}

int luks_header_snapshot(const char *device, LuksSnapshotFlags flags, LuksHeader *ret, char *why, size_t why_size) {
        _cleanup_close_ int fd = -1, mfd = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t bin[LUKS_HEADER_BIN_SIZE];
        LuksHeaderInfo info;
        struct stat st;
        uint64_t hdr_size, dev_size;
        ssize_t k;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot open %s: %s", device, strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot stat %s: %s", device, strerror(-r));
        }
        if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
                return format_reason(why, why_size, -ENOTBLK, "%s is neither a block device nor a regular file", device);

        /* The primary binary header says how large a copy is; read both copies, then check them. */
        k = pread_full(fd, bin, sizeof(bin), 0);
        if (k < 0)
                return format_reason(why, why_size, (int) k, "cannot read %s: %s", device, strerror((int) -k));
        hdr_size = (size_t) k == sizeof(bin) ? be64(bin + OFF_HDR_SIZE) : 0;
        if (!hdr_size_valid(hdr_size)) {
                /* Nothing we can read further; the validator says why (it can't succeed on this). */
                r = luks_header_validate(bin, (size_t) k, NULL, why, why_size);
                return r < 0 ? r : format_reason(why, why_size, -EBADMSG, "unreadable header size");
        }
        buf = malloc(2 * hdr_size > COPY_CHUNK ? 2 * hdr_size : COPY_CHUNK);
        if (!buf)
                return format_reason(why, why_size, -ENOMEM, "out of memory");
        memcpy(buf, bin, sizeof(bin));
        k = pread_full(fd, buf + sizeof(bin), 2 * hdr_size - sizeof(bin), sizeof(bin));
        if (k < 0)
                return format_reason(why, why_size, (int) k, "cannot read %s: %s", device, strerror((int) -k));
        r = luks_header_reconcile(buf, sizeof(bin) + (size_t) k, why, why_size);
        if (r < 0)
                return r;
        if (r > 0)
                log_notice("%s: an interrupted header write left the two LUKS2 header copies different: %s", device, why);
        r = luks_header_validate_flags(buf, sizeof(bin) + (size_t) k, flags, &info, why, why_size);
        if (r < 0)
                return r;
        if (info.area_size > LUKS_HEADER_AREA_MAX) /* the validator's bounds already imply this */
                return format_reason(why, why_size, -EFBIG, "header area of %" PRIu64 " bytes is too large", info.area_size);

        mfd = memfd_create("cvmcrypt-luks2-header", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (mfd < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot create memfd: %s", strerror(-r));
        }
        /* Exactly the bytes that were validated, not a second read of the device. */
        r = write_full(mfd, buf, 2 * hdr_size);
        if (r < 0)
                return format_reason(why, why_size, r, "cannot write memfd: %s", strerror(-r));
        /* The keyslot areas hold encrypted key material that the validator doesn't interpret; copy
         * each one once so libcryptsetup reads them from the snapshot too. The rest of the keyslots
         * area is never read for a key, so it stays a hole: a 16 MiB area costs only what the
         * keyslots occupy, which matters at every boot. */
        r = device_size(fd, &st, &dev_size);
        if (r < 0)
                return format_reason(why, why_size, r, "cannot size %s: %s", device, strerror(-r));
        if (dev_size < info.area_size)
                return format_reason(why, why_size, -EBADMSG,
                                 "truncated: %s ends at %" PRIu64 " bytes, the header area needs %" PRIu64, device,
                                 dev_size, info.area_size);
        if (ftruncate(mfd, (off_t) info.area_size) < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot size memfd: %s", strerror(-r));
        }
        for (unsigned id = 0; id < LUKS_SLOTS_MAX; id++) {
                if (!(flags & LUKS_SNAPSHOT_KEYSLOTS) || !(info.keyslots & (UINT32_C(1) << id)))
                        continue;
                r = copy_range(fd, mfd, buf, info.keyslot_offset[id], info.keyslot_size[id]);
                if (r < 0)
                        return format_reason(why, why_size, r,
                                         "cannot copy keyslot %u of %s: %s", id, device,
                                         r == -EBADMSG ? "the device ends inside it" : strerror(-r));
        }
        /* From here on nobody, libcryptsetup's header repair included, can change the checked copy. */
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot seal memfd: %s", strerror(-r));
        }

        log_debug("LUKS2 header of %s checked: %" PRIu64 "-byte header area, %" PRIu64 "-byte copies, seqid %" PRIu64,
                  device, info.area_size, info.hdr_size, info.seqid);
        *ret = (LuksHeader){ .fd = TAKE_FD(mfd), .info = info };
        (void) snprintf(ret->path, sizeof(ret->path), "/proc/self/fd/%d", ret->fd);
        return 0;
}

void luks_header_done(LuksHeader *h) {
        if (!h)
                return;
        if (h->fd >= 0)
                (void) close(h->fd);
        *h = LUKS_HEADER_NULL;
}

/* ---- the end of a provisioning re-key ---- */

static bool has_flag(json_object *seg, const char *flag) {
        json_object *flags, *e;

        if (!json_object_object_get_ex(seg, "flags", &flags) || !json_object_is_type(flags, json_type_array) ||
            json_object_array_length(flags) != 1)
                return false;
        e = json_object_array_get_idx(flags, 0);
        return json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), flag) == 0;
}

/* The digest whose list (segments or keyslots) holds id, or NULL. */
static const char *digest_of(json_object *digests, const char *list, const char *id) {
        json_object_object_foreach(digests, key, val) {
                json_object *arr;

                if (!json_object_object_get_ex(val, list, &arr))
                        continue;
                for (size_t i = 0; i < json_object_array_length(arr); i++)
                        if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), id) == 0)
                                return key;
        }
        return NULL;
}

/* Rewrites the checked JSON of a re-key whose one data segment is under the new key into what
 * libcryptsetup's last step leaves: the new key's digest and keyslots, segment 0, no backups, no
 * requirement. Returns 1 if it did, 0 if the re-key is not at its end. */
static int finish_rekey_json(json_object *root) {
        _cleanup_(json_object_putp) json_object *keyslots = json_object_new_object(), *segments = json_object_new_object(),
                                                *digests = json_object_new_object(), *one = json_object_new_array();
        json_object *config, *segs, *ks, *dg, *tokens, *seg0 = NULL, *newest = NULL;
        const char *final = NULL, *new_digest;
        unsigned data_segments = 0;

        if (!keyslots || !segments || !digests || !one)
                return -ENOMEM;
        if (!json_object_object_get_ex(root, "config", &config) || !json_object_object_get_ex(config, "requirements", NULL) ||
            !json_object_object_get_ex(root, "segments", &segs) || !json_object_object_get_ex(root, "keyslots", &ks) ||
            !json_object_object_get_ex(root, "digests", &dg) || !json_object_object_get_ex(root, "tokens", &tokens))
                return 0;
        json_object_object_foreach(segs, sid, seg) {
                if (has_flag(seg, "backup-final"))
                        final = sid;
                else if (!has_flag(seg, "backup-previous")) {
                        data_segments++;
                        if (strcmp(sid, "0") == 0)
                                seg0 = seg;
                }
        }
        new_digest = final ? digest_of(dg, "segments", final) : NULL;
        if (!new_digest || data_segments != 1 || !seg0 || has_flag(seg0, "in-reencryption") ||
            strcmp(json_object_get_string(json_object_object_get(seg0, "size")), "dynamic") != 0 ||
            !digest_of(dg, "segments", "0") || strcmp(digest_of(dg, "segments", "0"), new_digest) != 0)
                return 0;

        json_object_object_foreach(ks, kid, slot) {
                const char *d = digest_of(dg, "keyslots", kid);

                if (d && strcmp(d, new_digest) == 0 && json_object_object_add(keyslots, kid, json_object_get(slot)) < 0)
                        return -ENOMEM;
        }
        if (json_object_object_add(segments, "0", json_object_get(seg0)) < 0 ||
            json_object_array_add(one, json_object_new_string("0")) < 0)
                return -ENOMEM;
        newest = json_object_object_get(dg, new_digest);
        if (json_object_object_add(newest, "segments", TAKE_PTR(one)) < 0 ||
            json_object_object_add(digests, new_digest, json_object_get(newest)) < 0)
                return -ENOMEM;
        /* Tokens keep only the keyslots that stay. */
        json_object_object_foreach(tokens, tid, tok) {
                json_object *refs = json_object_new_array(), *old = json_object_object_get(tok, "keyslots");

                (void) tid;
                if (!refs)
                        return -ENOMEM;
                for (size_t i = 0; old && i < json_object_array_length(old); i++) {
                        const char *k = json_object_get_string(json_object_array_get_idx(old, i));

                        if (json_object_object_get_ex(keyslots, k, NULL))
                                (void) json_object_array_add(refs, json_object_new_string(k));
                }
                if (json_object_object_add(tok, "keyslots", refs) < 0)
                        return -ENOMEM;
        }
        json_object_object_del(config, "requirements");
        if (json_object_object_add(root, "keyslots", TAKE_PTR(keyslots)) < 0 ||
            json_object_object_add(root, "segments", TAKE_PTR(segments)) < 0 ||
            json_object_object_add(root, "digests", TAKE_PTR(digests)) < 0)
                return -ENOMEM;
        return 1;
}

static int write_copy(int fd, const uint8_t *p, uint64_t size, uint64_t offset) {
        if (pwrite(fd, p, size, (off_t) offset) != (ssize_t) size || fdatasync(fd) < 0)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

int luks_header_finish_rekey(const char *device, char *why, size_t why_size) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t bin[LUKS_HEADER_BIN_SIZE];
        char parse_why[LUKS_WHY_MAX] = "";
        LuksHeaderInfo info;
        uint64_t hdr_size;
        const char *text;
        size_t len;
        ssize_t k;
        int r;

        fd = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                return format_reason(why, why_size, r, "cannot open %s: %s", device, strerror(-r));
        }
        k = pread_full(fd, bin, sizeof(bin), 0);
        hdr_size = k == (ssize_t) sizeof(bin) ? be64(bin + OFF_HDR_SIZE) : 0;
        if (!hdr_size_valid(hdr_size))
                return format_reason(why, why_size, -EBADMSG, "%s: no LUKS2 header", device);
        buf = malloc(2 * hdr_size);
        if (!buf)
                return format_reason(why, why_size, -ENOMEM, "out of memory");
        k = pread_full(fd, buf, 2 * hdr_size, 0);
        if (k != (ssize_t) (2 * hdr_size))
                return format_reason(why, why_size, -EBADMSG, "%s: the header is truncated", device);
        r = luks_header_reconcile(buf, 2 * hdr_size, why, why_size);
        if (r >= 0)
                r = luks_header_validate_flags(buf, 2 * hdr_size, LUKS_SNAPSHOT_PROVISION, &info, why, why_size);
        if (r < 0)
                return r;
        r = json_parse_strict((const char *) buf + LUKS_HEADER_BIN_SIZE,
                              strnlen((const char *) buf + LUKS_HEADER_BIN_SIZE, hdr_size - LUKS_HEADER_BIN_SIZE),
                              JSON_DEPTH_MAX, &root, parse_why, sizeof(parse_why));
        if (r < 0)
                return format_reason(why, why_size, r, "%s: %s", device, parse_why);
        r = finish_rekey_json(root);
        if (r <= 0)
                return r < 0 ? format_reason(why, why_size, r, "out of memory") : 0;
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        len = text ? strlen(text) : SIZE_MAX;
        if (len >= hdr_size - LUKS_HEADER_BIN_SIZE)
                return format_reason(why, why_size, -E2BIG, "%s: the finished header does not fit", device);
        /* A new generation of the primary copy, then the secondary from it: a crash between the two
         * writes leaves copies that luks_header_reconcile() and libcryptsetup settle alike. */
        memset(buf + LUKS_HEADER_BIN_SIZE, 0, hdr_size - LUKS_HEADER_BIN_SIZE);
        memcpy(buf + LUKS_HEADER_BIN_SIZE, text, len);
        put_be64(buf + OFF_SEQID, be64(buf + OFF_SEQID) + 1);
        r = rebuild_copy(buf, buf, hdr_size, false);
        if (r >= 0)
                r = rebuild_copy(buf + hdr_size, buf, hdr_size, true);
        if (r >= 0)
                r = luks_header_validate(buf, 2 * hdr_size, &info, why, why_size);
        if (r < 0)
                return format_reason(why, why_size, r, "%s: the finished header does not check: %s", device, why);
        r = write_copy(fd, buf, hdr_size, 0);
        if (r >= 0)
                r = write_copy(fd, buf + hdr_size, hdr_size, hdr_size);
        if (r < 0)
                return format_reason(why, why_size, r, "%s: writing the header failed: %s", device, strerror(-r));
        return 1;
}
