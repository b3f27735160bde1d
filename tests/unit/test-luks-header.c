/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Builds LUKS2 images with libcryptsetup at test time, then rewrites their JSON the way
 * libcryptsetup does (both copies, fresh checksums) so each hostile header differs from a genuine
 * one only in the field under test. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libcryptsetup.h>

#include "luks-header.h"
#include "luks2-fixture.h"
#include "macro.h"
#include "tap.h"
#include "token.h"

#define PASS "correct horse"
#define PASS2 "battery staple"
#define IMAGE_SIZE (8u * 1024 * 1024)

static char tmpdir[] = "/tmp/test-luks-header.XXXXXX";
static char image[64], image_big[64], image_luks1[64], scratch[64];

static int write_file(const char *path, const uint8_t *p, size_t n, bool truncate_to) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate_to ? O_TRUNC : 0), 0600);
        ssize_t k;

        if (fd < 0)
                return -errno;
        k = pwrite(fd, p, n, 0);
        (void) close(fd);
        return k == (ssize_t) n ? 0 : -EIO;
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        struct stat st;
        uint8_t *p;
        ssize_t k;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        p = malloc((size_t) st.st_size);
        k = p ? pread(fd, p, (size_t) st.st_size, 0) : -1;
        (void) close(fd);
        if (k != st.st_size) {
                free(p);
                return -EIO;
        }
        *ret = p;
        *ret_size = (size_t) st.st_size;
        return 0;
}

static int copy_file(const char *from, const char *to) {
        uint8_t *p;
        size_t n;
        int r = read_file(from, &p, &n);

        if (r < 0)
                return r;
        r = write_file(to, p, n, true);
        free(p);
        return r;
}

static const char *sample_token_json(void) {
        static char *json;
        Tpm2Token t = { .keyslot = 0, .blob_size = 8, .blob = { 0, 2, 0xaa, 0xbb, 0, 2, 0xcc, 0xdd } };

        if (json)
                return json;
        t.pcrs.bank = 0x000B;
        t.pcrs.mask = 1u << 7;
        t.srk_name_size = 34;
        t.srk_name[1] = 0x0B;
        if (token_tpm2_format(&t, &json) < 0)
                return NULL;
        return json;
}

/* LUKS2, aes-xts-plain64, 4096-byte sectors; keyslot 0 pbkdf2 (PASS), keyslot 1 argon2id (PASS2),
 * token 0 a cvmcrypt-tpm2 token. */
static int make_image(const char *path, uint64_t metadata_size, uint64_t keyslots_size) {
        struct crypt_pbkdf_type pbkdf2 = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                           .flags = CRYPT_PBKDF_NO_BENCHMARK };
        struct crypt_pbkdf_type argon = { .type = CRYPT_KDF_ARGON2ID, .iterations = 4, .max_memory_kb = 32,
                                          .parallel_threads = 1, .flags = CRYPT_PBKDF_NO_BENCHMARK };
        struct crypt_params_luks2 params = { .sector_size = 4096 };
        struct crypt_device *cd = NULL;
        int fd, r;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = ftruncate(fd, IMAGE_SIZE) < 0 ? -errno : 0;
        (void) close(fd);
        if (r < 0)
                return r;
        r = crypt_init(&cd, path);
        if (r >= 0)
                r = crypt_set_metadata_size(cd, metadata_size, keyslots_size);
        if (r >= 0)
                r = crypt_set_pbkdf_type(cd, &pbkdf2);
        if (r >= 0)
                r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, 64, &params);
        if (r >= 0)
                r = crypt_keyslot_add_by_volume_key(cd, 0, NULL, 0, PASS, strlen(PASS));
        if (r >= 0)
                r = crypt_set_pbkdf_type(cd, &argon);
        if (r >= 0)
                r = crypt_keyslot_add_by_passphrase(cd, 1, PASS, strlen(PASS), PASS2, strlen(PASS2));
        if (r >= 0)
                r = sample_token_json() ? crypt_token_json_set(cd, CRYPT_ANY_TOKEN, sample_token_json()) : -ENOMEM;
        crypt_free(cd);
        return r < 0 ? r : 0;
}

static int make_luks1(const char *path) {
        struct crypt_pbkdf_type pbkdf2 = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                           .flags = CRYPT_PBKDF_NO_BENCHMARK };
        struct crypt_device *cd = NULL;
        int fd, r;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = ftruncate(fd, IMAGE_SIZE) < 0 ? -errno : 0;
        (void) close(fd);
        if (r >= 0)
                r = crypt_init(&cd, path);
        if (r >= 0)
                r = crypt_set_pbkdf_type(cd, &pbkdf2);
        if (r >= 0)
                r = crypt_format(cd, CRYPT_LUKS1, "aes", "xts-plain64", NULL, NULL, 64, NULL);
        crypt_free(cd);
        return r < 0 ? r : 0;
}

/* Sets (value = JSON text) or deletes (value = NULL) the field at a dot-separated path, in the JSON
 * of both copies or only the secondary one. */
static int mutate_copy(uint8_t *buf, const char *path, const char *value, int which) {
        char keys[256], *save = NULL, *key, *next;
        json_object *root, *node, *child;
        const char *text;
        int r;

        root = json_tokener_parse((const char *) buf + LUKS2_FIXTURE_BIN);
        if (!root)
                return -EBADMSG;
        node = root;
        (void) snprintf(keys, sizeof(keys), "%s", path);
        key = strtok_r(keys, ".", &save);
        while ((next = strtok_r(NULL, ".", &save))) {
                if (!json_object_object_get_ex(node, key, &child)) {
                        json_object_put(root);
                        return -ENOENT;
                }
                node = child;
                key = next;
        }
        if (value) {
                json_object *v = json_tokener_parse(value);

                if (!v && strcmp(value, "null") != 0) {
                        json_object_put(root);
                        return -EINVAL;
                }
                json_object_object_add(node, key, v);
        } else
                json_object_object_del(node, key);
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        r = which < 0 ? luks2_fixture_set_json(buf, text) : luks2_fixture_set_json_copy(buf, which, text);
        json_object_put(root);
        return r;
}

static int mutate(uint8_t *buf, const char *path, const char *value) {
        return mutate_copy(buf, path, value, -1);
}

static int lib_loads(const uint8_t *hdr, size_t hdr_len) {
        struct crypt_device *cd = NULL;
        int r = copy_file(image, scratch);

        if (r >= 0)
                r = write_file(scratch, hdr, hdr_len, false);
        if (r >= 0)
                r = crypt_init(&cd, scratch);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        crypt_free(cd);
        return r;
}

typedef struct MutCase {
        const char *path, *value;   /* value NULL: delete the field */
        int error;
        const char *expect;         /* substring of why */
        bool lib_accepts;           /* libcryptsetup itself loads this header: only we stand in the way */
} MutCase;

static const MutCase mut_cases[] = {
        /* The published attacks: a null cipher in the data segment or in a keyslot. */
        { "segments.0.encryption", "\"cipher_null-ecb\"", -EOPNOTSUPP, "segment 0 uses cipher_null", true },
        { "keyslots.0.area.encryption", "\"cipher_null-ecb\"", -EOPNOTSUPP, "keyslot 0 area uses cipher_null", true },
        { "keyslots.1.area.encryption", "\"cipher_null\"", -EOPNOTSUPP, "keyslot 1 area uses cipher_null", true },
        { "segments.0.encryption", "\"aes-ecb\"", -EOPNOTSUPP, "segment 0 uses cipher 'aes-ecb'", true },
        { "segments.0.encryption", "\"aes-cbc-essiv:sha256\"", -EOPNOTSUPP, "uses cipher 'aes-cbc-essiv:sha256'", true },
        { "keyslots.0.area.encryption", "\"aes-cbc-plain\"", -EOPNOTSUPP, "keyslot 0 area uses cipher 'aes-cbc-plain'", true },
        { "segments.0.encryption", "7", -EBADMSG, "segment 0 field 'encryption' is not a string", false },
        /* Reencryption and requirements. */
        { "config.requirements", "{\"mandatory\":[\"online-reencrypt\"]}", -EOPNOTSUPP,
          "requirement 'online-reencrypt' is not supported", false },
        { "config.requirements", "{\"mandatory\":[\"online-reencrypt-v2\"]}", -EOPNOTSUPP,
          "requirement 'online-reencrypt-v2' is not supported", false },
        { "config.requirements", "{\"mandatory\":[]}", 0, NULL, true },
        { "config.requirements", "{\"optional\":[\"x\"]}", -EOPNOTSUPP, "config requirements has unknown field 'optional'", true },
        { "segments.1", "{\"type\":\"linear\",\"offset\":\"4194304\",\"size\":\"dynamic\"}", -EOPNOTSUPP,
          "2 segments (only one is supported", false },
        { "segments.0.type", "\"linear\"", -EOPNOTSUPP, "segment 0 has type 'linear' (only 'crypt' is supported)", false },
        { "segments.0.flags", "[\"in-reencryption\"]", -EOPNOTSUPP, "segment 0 has unknown field 'flags'", true },
        { "keyslots.1.type", "\"reencrypt\"", -EOPNOTSUPP, "keyslot 1 has type 'reencrypt'", false },
        /* Keyslot areas. */
        { "keyslots.0.area.offset", "\"999999999\"", -EBADMSG, "keyslot 0 area outside the keyslots area", false },
        { "keyslots.0.area.offset", "\"0\"", -EBADMSG, "keyslot 0 area outside the keyslots area", false },
        { "keyslots.1.area.size", "\"18446744073709551615\"", -EBADMSG, "keyslot 1 area outside the keyslots area", false },
        { "keyslots.1.area.size", "\"4096\"", -EBADMSG, "keyslot 1 area is 4096 bytes, the split key needs 256000", false },
        { "keyslots.1.area.offset", "\"32769\"", -EBADMSG, "keyslot 1 area is not 4096-aligned", false },
        { "keyslots.1.area.offset", "\"32768\"", -EBADMSG, "keyslots 0 and 1 have overlapping areas", false },
        { "keyslots.1.area.offset", "\"0032768\"", -EBADMSG, "keyslot 1 area field 'offset' is not a decimal number", false },
        { "keyslots.1.area.offset", "\"-4096\"", -EBADMSG, "keyslot 1 area field 'offset' is not a decimal number", false },
        { "keyslots.1.area.type", "\"dm-crypt\"", -EOPNOTSUPP, "keyslot 1 area type 'dm-crypt' is not raw", false },
        { "keyslots.1.area.key_size", "48", -EOPNOTSUPP, "keyslot 1 area key_size 48 is not 32 or 64", true },
        { "keyslots.1.area.shift", "1", -EOPNOTSUPP, "keyslot 1 area has unknown field 'shift'", true },
        /* KDF cost: bounded, so a rewritten header can't exhaust memory or time at boot. */
        { "keyslots.1.kdf.memory", "1048576000", -EOPNOTSUPP, "keyslot 1 kdf memory 1048576000 is outside 32..4194304", true },
        { "keyslots.1.kdf.memory", "16", -EOPNOTSUPP, "keyslot 1 kdf memory 16 is outside 32..4194304", false },
        { "keyslots.1.kdf.time", "100000", -EOPNOTSUPP, "keyslot 1 kdf time 100000 is outside 1..64", true },
        { "keyslots.1.kdf.cpus", "64", -EOPNOTSUPP, "keyslot 1 kdf cpus 64 is outside 1..16", true },
        { "keyslots.1.kdf.type", "\"scrypt\"", -EOPNOTSUPP, "keyslot 1 kdf type 'scrypt' is not pbkdf2, argon2i or argon2id", false },
        { "keyslots.0.kdf.iterations", "100000000", -EOPNOTSUPP, "keyslot 0 kdf iterations 100000000 is outside 1000..10000000", true },
        { "keyslots.0.kdf.iterations", "999", -EOPNOTSUPP, "keyslot 0 kdf iterations 999 is outside", true },
        { "keyslots.0.kdf.iterations", "99999999999999999999999", -EOPNOTSUPP, "keyslot 0 kdf iterations", false },
        { "keyslots.0.kdf.iterations", "1000.5", -EBADMSG, "keyslot 0 kdf field 'iterations' is not an integer", false },
        { "keyslots.0.kdf.hash", "\"sha1\"", -EOPNOTSUPP, "keyslot 0 kdf hash 'sha1' is not sha256 or sha512", true },
        { "keyslots.0.kdf.salt", "\"AAAA\"", -EBADMSG, "keyslot kdf salt is not 32 bytes of base64", false },
        { "keyslots.0.kdf.salt", "\"not base64 at all, really not!!!!!!!!!!!!!!!!\"", -EBADMSG, "salt is not 32 bytes of base64", false },
        { "keyslots.0.kdf.extra", "1", -EOPNOTSUPP, "keyslot 0 kdf has unknown field 'extra'", true },
        { "keyslots.0.kdf", NULL, -EBADMSG, "keyslot 0 has no field 'kdf'", false },
        /* AF, key sizes, ids. */
        { "keyslots.0.af.stripes", "1", -EOPNOTSUPP, "keyslot 0 af stripes 1 is outside 4000..4000", false },
        { "keyslots.0.af.hash", "\"md5\"", -EOPNOTSUPP, "keyslot 0 af hash 'md5' is not sha256 or sha512", false },
        { "keyslots.0.af.type", "\"luks3\"", -EOPNOTSUPP, "keyslot 0 af type 'luks3' is not luks1", false },
        { "keyslots.0.key_size", "32", -EOPNOTSUPP, "keyslot 1 key_size 64 differs from the other keyslots' 32", false },
        { "keyslots.0.key_size", "16", -EOPNOTSUPP, "keyslot 0 key_size 16 is not 32 or 64", false },
        { "keyslots.0.priority", "2", 0, NULL, true },
        { "keyslots.0.priority", "9", -EOPNOTSUPP, "keyslot 0 priority 9 is outside 0..2", false },
        { "keyslots.0.surprise", "true", -EOPNOTSUPP, "keyslot 0 has unknown field 'surprise'", true },
        { "keyslots.32", "{}", -EBADMSG, "keyslot id '32' is not a number from 0 to 31", false },
        { "keyslots.01", "{}", -EBADMSG, "keyslot id '01' is not a number from 0 to 31", false },
        /* Segment. */
        { "segments.0.sector_size", "8192", -EOPNOTSUPP, "segment 0 sector_size 8192 is outside 512..4096", false },
        { "segments.0.sector_size", "1536", -EOPNOTSUPP, "segment 0 sector_size 1536 is not 512, 1024, 2048 or 4096", false },
        { "segments.0.iv_tweak", "\"5\"", -EOPNOTSUPP, "segment 0 iv_tweak '5' is not 0", true },
        { "segments.0.integrity",
          "{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}",
          -EOPNOTSUPP, "segment 0 uses dm-integrity", false },
        { "segments.0.offset", "\"0\"", -EBADMSG, "segment 0 offset 0 lies inside the header area", false },
        { "segments.0.offset", "\"65536\"", -EBADMSG, "segment 0 offset 65536 lies inside the header area", false },
        { "segments.0.offset", "\"4194816\"", -EBADMSG, "segment 0 offset 4194816 is not 4096-aligned", false },
        { "segments.0.size", "\"4096\"", 0, NULL, true },
        { "segments.0.size", "\"1000\"", -EBADMSG, "segment 0 size '1000' is neither 'dynamic' nor a multiple", false },
        { "segments.0.size", "\"0\"", -EBADMSG, "segment 0 size '0'", false },
        { "segments.0", NULL, -EBADMSG, "no segment", false },
        { "segments.0.encryption", "\"aes-xts-plain64\\u0000x\"", -EBADMSG, "segment 0 field 'encryption' contains a NUL", false },
        /* Digests. */
        { "digests.0.type", "\"argon2\"", -EOPNOTSUPP, "digest 0 type 'argon2' is not pbkdf2", false },
        { "digests.0.keyslots", "[\"0\"]", -EOPNOTSUPP, "keyslot 1 is not bound to the volume key digest", false },
        { "digests.0.keyslots", "[\"0\",\"1\",\"5\"]", -EBADMSG, "digest 0 refers to keyslot 5, which does not exist", false },
        { "digests.0.keyslots", "[\"0\",\"1\",\"1\"]", -EBADMSG, "digest 0 lists keyslot 1 twice", false },
        { "digests.0.segments", "[]", -EBADMSG, "digest 0 does not cover exactly segment 0", false },
        { "digests.0.iterations", "50000000", -EOPNOTSUPP, "digest 0 iterations 50000000 is outside", true },
        { "digests.0.hash", "\"sha512\"", -EBADMSG, "digest value is not 64 bytes of base64", false },
        { "digests.1", "{\"type\":\"pbkdf2\",\"keyslots\":[],\"segments\":[],\"hash\":\"sha256\",\"iterations\":1000,"
                       "\"salt\":\"\",\"digest\":\"\"}", -EOPNOTSUPP, "2 digests (only one is supported)", false },
        { "digests.0", NULL, -EBADMSG, "no digest", false },
        /* Config. */
        { "config.json_size", "\"8192\"", -EBADMSG, "config json_size 8192 does not match the header size 16384", false },
        { "config.keyslots_size", "\"268435456\"", -EOPNOTSUPP, "config keyslots_size 268435456 exceeds 128 MiB", false },
        { "config.keyslots_size", "\"1000000\"", -EBADMSG, "is not a multiple of 4096", false },
        { "config.keyslots_size", "\"65536\"", -EBADMSG, "keyslot 0 area outside the keyslots area", false },
        { "config.flags", "[\"allow-discards\"]", -EOPNOTSUPP, "config flag 'allow-discards' is not allowed", true },
        { "config.flags", "[\"no-read-workqueue\",\"no-write-workqueue\"]", 0, NULL, true },
        { "config.flags", "\"allow-discards\"", -EBADMSG, "config field 'flags' is not an array", false },
        { "config.mystery", "1", -EOPNOTSUPP, "config has unknown field 'mystery'", true },
        /* Tokens. */
        { "tokens.1", "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"1\"],\"tpm2-pcrs\":[7]}", 0, NULL, true },
        { "tokens.1", "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"9\"]}", -EBADMSG, "token 1 refers to keyslot 9, which does not exist", false },
        { "tokens.1", "{\"type\":\"../../evil\",\"keyslots\":[]}", -EBADMSG, "token 1 type '../../evil' is not a plain name", true },
        { "tokens.1", "{\"keyslots\":[]}", -EBADMSG, "token 1 has no field 'type'", false },
        { "tokens.40", "{\"type\":\"x\",\"keyslots\":[]}", -EBADMSG, "token id '40' is not a number from 0 to 31", false },
        /* Top level. */
        { "foo", "1", -EOPNOTSUPP, "JSON metadata has unknown top-level field 'foo'", true },
        { "tokens", NULL, -EBADMSG, "JSON metadata has no field 'tokens'", false },
        { "keyslots", "[]", -EBADMSG, "JSON metadata field 'keyslots' is not an object", false },
};

static void test_mutations(const uint8_t *orig, size_t size) {
        uint8_t *buf = malloc(size);
        size_t hdr_area = 2 * luks2_fixture_hdr_size(orig);

        for (size_t i = 0; i < ELEMENTSOF(mut_cases); i++) {
                const MutCase *t = &mut_cases[i];
                char why[LUKS_WHY_MAX] = "";
                int r;

                memcpy(buf, orig, size);
                r = mutate(buf, t->path, t->value);
                if (r < 0) {
                        CHECK(false, "mutation %zu (%s) applied: %d", i, t->path, r);
                        continue;
                }
                r = luks_header_validate(buf, size, NULL, why, sizeof(why));
                if (!t->expect)
                        CHECK(r == 0, "%s = %s accepted (%s)", t->path, t->value, why);
                else
                        CHECK(r == t->error && strstr(why, t->expect), "%s = %s refused: '%s' (r=%d, want '%s')",
                              t->path, t->value ? t->value : "(deleted)", why, r, t->expect);
                if (t->lib_accepts)
                        CHECK(lib_loads(buf, hdr_area) == 0, "libcryptsetup itself loads the header with %s = %s",
                              t->path, t->value);
        }
        free(buf);
}

static void test_genuine(const uint8_t *buf, size_t size) {
        struct crypt_device *cd = NULL;
        LuksHeaderInfo info = {};
        char why[LUKS_WHY_MAX] = "";
        int r;

        r = luks_header_validate(buf, size, &info, why, sizeof(why));
        CHECK(r == 0, "genuine header accepted (%s)", why);
        CHECK(crypt_init(&cd, image) == 0 && crypt_load(cd, CRYPT_LUKS2, NULL) == 0, "libcryptsetup loads the image");
        CHECK_STREQ(info.uuid, crypt_get_uuid(cd), "uuid %s", info.uuid);
        CHECK(info.data_offset == crypt_get_data_offset(cd) * 512, "data offset %llu",
              (unsigned long long) info.data_offset);
        crypt_free(cd);
        CHECK(info.hdr_size == 16384, "hdr_size %llu", (unsigned long long) info.hdr_size);
        CHECK(info.keyslots_size == 1024 * 1024, "keyslots_size %llu", (unsigned long long) info.keyslots_size);
        CHECK(info.area_size == 2 * 16384 + 1024 * 1024, "area_size %llu", (unsigned long long) info.area_size);
        CHECK(info.data_offset >= info.area_size, "data after the header area");
        CHECK_STREQ(info.cipher, "aes-xts-plain64", "cipher %s", info.cipher);
        CHECK(info.sector_size == 4096, "sector size %u", info.sector_size);
        CHECK(info.volume_key_size == 64, "volume key size %u", info.volume_key_size);
        CHECK(info.keyslots == 0x3, "keyslots 0 and 1 (mask %#x)", info.keyslots);
        CHECK(info.tokens == 0x1, "token 0 (mask %#x)", info.tokens);
        CHECK(info.label[0] == '\0' && info.subsystem[0] == '\0', "empty label and subsystem");

        /* Re-serializing the JSON through the fixture must keep it valid: the helper changes nothing
         * the validator could notice, so every refusal below comes from the mutated field. */
        {
                uint8_t *copy = malloc(size);

                memcpy(copy, buf, size);
                CHECK(mutate(copy, "segments.0.encryption", "\"aes-xts-plain64\"") == 0 &&
                              luks_header_validate(copy, size, NULL, why, sizeof(why)) == 0,
                      "identity rewrite by the fixture still validates (%s)", why);
                CHECK(lib_loads(copy, 2 * 16384) == 0, "and libcryptsetup loads it");
                free(copy);
        }
}

typedef void (*RawEdit)(uint8_t *buf, uint64_t hdr_size);

static void edit_magic(uint8_t *b, uint64_t h) {
        (void) h;
        b[0] = 'X';
}
static void edit_version(uint8_t *b, uint64_t h) {
        (void) h;
        b[7] = 1;
}
static void edit_hdr_size(uint8_t *b, uint64_t h) {
        (void) h;
        b[14] = 0x50; /* 0x5000: not a power of two */
}
static void edit_hdr_size_huge(uint8_t *b, uint64_t h) {
        (void) h;
        b[8] = 1;
}
static void edit_primary_csum(uint8_t *b, uint64_t h) {
        (void) h;
        b[LUKS2_FIXTURE_CSUM] ^= 1;
}
static void edit_secondary_csum(uint8_t *b, uint64_t h) {
        b[h + LUKS2_FIXTURE_CSUM + 5] ^= 0x80;
}
static void edit_primary_padding(uint8_t *b, uint64_t h) {
        b[h - 1] = ' '; /* end of the JSON area: the checksum notices */
}
static void edit_secondary_magic(uint8_t *b, uint64_t h) {
        b[h] = 'L';
}
static void edit_secondary_seqid(uint8_t *b, uint64_t h) {
        b[h + 23]++;
        (void) luks2_fixture_rechecksum(b);
}
static void edit_secondary_label(uint8_t *b, uint64_t h) {
        memcpy(b + h + 24, "evil", 4);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_secondary_hdr_size(uint8_t *b, uint64_t h) {
        b[h + 14] = 0x80;
        (void) luks2_fixture_rechecksum(b);
}
static void edit_secondary_json(uint8_t *b, uint64_t h) {
        (void) h;
        (void) mutate_copy(b, "segments.0.encryption", "\"cipher_null-ecb\"", 1);
}
static void edit_offset_field(uint8_t *b, uint64_t h) {
        (void) h;
        b[263] = 1;
        (void) luks2_fixture_rechecksum(b);
}
static void edit_csum_alg(uint8_t *b, uint64_t h) {
        memcpy(b + 72, "sha1\0\0", 6);
        memcpy(b + h + 72, "sha1\0\0", 6);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_label_unterminated(uint8_t *b, uint64_t h) {
        memset(b + 24, 'A', 48);
        memset(b + h + 24, 'A', 48);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_label_control(uint8_t *b, uint64_t h) {
        memcpy(b + 24, "a\x1b[2Jb", 6);
        memcpy(b + h + 24, "a\x1b[2Jb", 6);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_label_ok(uint8_t *b, uint64_t h) {
        memcpy(b + 24, "root-fs", 7);
        memcpy(b + h + 24, "root-fs", 7);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_uuid(uint8_t *b, uint64_t h) {
        b[168 + 8] = 'x';
        b[h + 168 + 8] = 'x';
        (void) luks2_fixture_rechecksum(b);
}
static void edit_reserved(uint8_t *b, uint64_t h) {
        b[300] = 1;
        b[h + 300] = 1;
        (void) luks2_fixture_rechecksum(b);
}
static void edit_csum_tail(uint8_t *b, uint64_t h) {
        /* The unused half of the checksum field is outside what the checksum covers. */
        b[LUKS2_FIXTURE_CSUM + 40] = 1;
        (void) h;
}
static void edit_json_trailing(uint8_t *b, uint64_t h) {
        size_t len = strlen((char *) b + LUKS2_FIXTURE_BIN);

        b[LUKS2_FIXTURE_BIN + len + 1] = 'x';
        b[h + LUKS2_FIXTURE_BIN + len + 1] = 'x';
        (void) luks2_fixture_rechecksum(b);
}
static void edit_json_space_first(uint8_t *b, uint64_t h) {
        char *json = strdup((char *) b + LUKS2_FIXTURE_BIN), *spaced = malloc(strlen(json) + 2);

        (void) h;
        spaced[0] = ' ';
        strcpy(spaced + 1, json);
        (void) luks2_fixture_set_json(b, spaced);
        free(json);
        free(spaced);
}
static void edit_json_syntax(uint8_t *b, uint64_t h) {
        (void) h;
        (void) luks2_fixture_set_json(b, "{\"keyslots\":{},}");
}
static void edit_json_unterminated(uint8_t *b, uint64_t h) {
        memset(b + LUKS2_FIXTURE_BIN, '{', h - LUKS2_FIXTURE_BIN);
        memset(b + h + LUKS2_FIXTURE_BIN, '{', h - LUKS2_FIXTURE_BIN);
        (void) luks2_fixture_rechecksum(b);
}
static void edit_json_deep(uint8_t *b, uint64_t h) {
        char deep[256] = "{\"tokens\":";
        size_t n = strlen(deep);

        (void) h;
        for (int i = 0; i < 40; i++)
                deep[n++] = '[';
        for (int i = 0; i < 40; i++)
                deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = '\0';
        (void) luks2_fixture_set_json(b, deep);
}
static void edit_json_duplicate(uint8_t *b, uint64_t h) {
        static const char from[] = "\"encryption\":\"aes-xts-plain64\",\"sector_size\"";
        static const char to[] = "\"encryption\":\"cipher_null-ecb\",\"encryption\":\"aes-xts-plain64\",\"sector_size\"";
        const char *json = (const char *) b + LUKS2_FIXTURE_BIN, *at = strstr(json, from);
        char *out;

        (void) h;
        if (!at)
                return;
        out = malloc(strlen(json) + sizeof(to));
        (void) snprintf(out, strlen(json) + sizeof(to), "%.*s%s%s", (int) (at - json), json, to, at + strlen(from));
        (void) luks2_fixture_set_json(b, out);
        free(out);
}
static void edit_json_bad_utf8(uint8_t *b, uint64_t h) {
        (void) h;
        (void) luks2_fixture_set_json(b, "{\"keyslots\":{\"\xff\xfe\":1}}");
}

typedef struct RawCase {
        const char *name;
        RawEdit edit;
        int error;
        const char *expect;
} RawCase;

static const RawCase raw_cases[] = {
        { "wrong magic", edit_magic, -EMEDIUMTYPE, "no LUKS header (bad magic)" },
        { "LUKS version 1", edit_version, -EMEDIUMTYPE, "LUKS version 1 header is not supported" },
        { "header size not a power of two", edit_hdr_size, -EBADMSG, "header size 20480 is not a LUKS2 size" },
        { "header size above 4 MiB", edit_hdr_size_huge, -EBADMSG, "is not a LUKS2 size" },
        { "primary checksum", edit_primary_csum, -EBADMSG, "primary header: checksum mismatch" },
        { "secondary checksum", edit_secondary_csum, -EBADMSG, "secondary header: checksum mismatch" },
        { "JSON padding", edit_primary_padding, -EBADMSG, "primary header: checksum mismatch" },
        { "secondary magic", edit_secondary_magic, -EBADMSG, "secondary header: bad magic" },
        { "copies differ in seqid", edit_secondary_seqid, -EBADMSG, "header copies differ in seqid" },
        { "copies differ in label", edit_secondary_label, -EBADMSG, "header copies differ in their label" },
        { "secondary header size", edit_secondary_hdr_size, -EBADMSG, "secondary header: header size 32768 differs" },
        { "copies with different JSON (secondary is cipher_null)", edit_secondary_json, -EBADMSG,
          "header copies have different JSON metadata" },
        { "offset field", edit_offset_field, -EBADMSG, "primary header: offset field is 1, expected 0" },
        { "checksum algorithm", edit_csum_alg, -EOPNOTSUPP, "checksum algorithm is not sha256" },
        { "unterminated label", edit_label_unterminated, -EBADMSG, "primary header: label is not NUL-terminated" },
        { "escape sequence in label", edit_label_control, -EBADMSG, "label is not NUL-terminated printable" },
        { "printable label", edit_label_ok, 0, NULL },
        { "malformed UUID", edit_uuid, -EBADMSG, "primary header: UUID is malformed" },
        { "reserved bytes", edit_reserved, -EBADMSG, "primary header: reserved bytes are not zero" },
        { "unused checksum bytes", edit_csum_tail, -EBADMSG, "primary header: reserved bytes are not zero" },
        { "data after the JSON", edit_json_trailing, -EBADMSG, "JSON area has data after the JSON text" },
        { "JSON not starting with {", edit_json_space_first, -EBADMSG, "JSON area does not start with '{'" },
        { "JSON syntax", edit_json_syntax, -EBADMSG, "JSON metadata does not parse" },
        { "JSON area without NUL", edit_json_unterminated, -EBADMSG, "JSON area is not NUL-terminated" },
        { "JSON nested 40 deep", edit_json_deep, -EBADMSG, "JSON metadata does not parse" },
        { "JSON with invalid UTF-8", edit_json_bad_utf8, -EBADMSG, "JSON metadata does not parse" },
        { "a key twice in one object", edit_json_duplicate, -EBADMSG, "key 'encryption' appears twice in one object" },
};

static void test_raw(const uint8_t *orig, size_t size) {
        uint64_t hdr_size = luks2_fixture_hdr_size(orig);
        uint8_t *buf = malloc(size);

        for (size_t i = 0; i < ELEMENTSOF(raw_cases); i++) {
                const RawCase *t = &raw_cases[i];
                char why[LUKS_WHY_MAX] = "";
                int r;

                memcpy(buf, orig, size);
                t->edit(buf, hdr_size);
                r = luks_header_validate(buf, size, NULL, why, sizeof(why));
                if (!t->expect)
                        CHECK(r == 0, "%s accepted (%s)", t->name, why);
                else
                        CHECK(r == t->error && strstr(why, t->expect), "%s refused: '%s' (r=%d, want '%s')", t->name, why,
                              r, t->expect);
        }
        free(buf);
}

/* The states a cut-short libcryptsetup write leaves (primary first, then secondary) and a few that
 * it cannot leave: reconcile picks what libcryptsetup picks, and validation still has the last word. */
typedef struct ReconcileCase {
        const char *name;
        RawEdit edit;
        int reconciled;       /* reconcile's return */
        const char *expect;   /* reconcile's reason, or validate's refusal when reconciled <= 0 */
        bool valid;           /* validate accepts the result */
} ReconcileCase;

static void edit_primary_newer(uint8_t *b, uint64_t h) {
        b[23]++;
        (void) luks2_fixture_checksum_copy(b, h);
}
static void edit_primary_newer_torn(uint8_t *b, uint64_t h) {
        (void) h;
        b[23]++; /* the new binary header is written, its checksum not yet */
}
static void edit_secondary_newer_cipher_null(uint8_t *b, uint64_t h) {
        (void) mutate_copy(b, "segments.0.encryption", "\"cipher_null-ecb\"", 1);
        b[h + 23]++;
        (void) luks2_fixture_checksum_copy(b + h, h);
}
static void edit_both_checksums(uint8_t *b, uint64_t h) {
        b[LUKS2_FIXTURE_CSUM] ^= 1;
        b[h + LUKS2_FIXTURE_CSUM] ^= 1;
}

static const ReconcileCase reconcile_cases[] = {
        { "identical copies", NULL, 0, NULL, true },
        { "secondary torn", edit_secondary_csum, 1, "secondary header is damaged (seqid 5): using the primary (seqid 5)", true },
        { "primary torn", edit_primary_csum, 1, "primary header is damaged (seqid 5): using the secondary (seqid 5)", true },
        { "primary's binary header ahead of its JSON", edit_primary_newer_torn, 1, "primary header is damaged (seqid 6): using the secondary (seqid 5)", true },
        { "primary newer, secondary not yet written", edit_primary_newer, 1, "secondary header is older (seqid 5): using the primary (seqid 6)", true },
        { "secondary newer", edit_secondary_seqid, 1, "primary header is older (seqid 5): using the secondary (seqid 6)", true },
        { "newer secondary is cipher_null", edit_secondary_newer_cipher_null, 1, "using the secondary", false },
        { "equal seqids, different JSON", edit_secondary_json, 0, "header copies have different JSON metadata", false },
        { "both copies damaged", edit_both_checksums, 0, "primary header: checksum mismatch", false },
        { "no LUKS magic", edit_magic, 0, "no LUKS header", false },
};

static void test_reconcile(const uint8_t *orig, size_t size) {
        uint64_t hdr_size = luks2_fixture_hdr_size(orig);
        uint8_t *buf = malloc(size);

        for (size_t i = 0; i < ELEMENTSOF(reconcile_cases); i++) {
                const ReconcileCase *t = &reconcile_cases[i];
                char why[LUKS_WHY_MAX] = "", vwhy[LUKS_WHY_MAX] = "";
                int r, v;

                memcpy(buf, orig, size);
                if (t->edit)
                        t->edit(buf, hdr_size);
                r = luks_header_reconcile(buf, size, why, sizeof(why));
                v = luks_header_validate(buf, size, NULL, vwhy, sizeof(vwhy));
                CHECK(r == t->reconciled && (!t->expect || strstr(r > 0 ? why : vwhy, t->expect)),
                      "reconcile %s: r=%d '%s' (want %d '%s')", t->name, r, r > 0 ? why : vwhy, t->reconciled,
                      t->expect ? t->expect : "");
                CHECK((v == 0) == t->valid, "after reconciling %s, validation %s (%s)", t->name,
                      t->valid ? "accepts" : "refuses", vwhy);
                if (r > 0 && t->valid)
                        CHECK(memcmp(buf, "LUKS\xba\xbe", 6) == 0 && memcmp(buf + hdr_size, "SKUL\xba\xbe", 6) == 0 &&
                                      memcmp(buf + LUKS2_FIXTURE_BIN, buf + hdr_size + LUKS2_FIXTURE_BIN,
                                             hdr_size - LUKS2_FIXTURE_BIN) == 0,
                              "%s: both copies now hold the chosen header", t->name);
        }
        free(buf);
}

static void test_truncated(const uint8_t *buf, size_t size) {
        static const size_t sizes[] = { 0, 7, 100, 4095, 4096, 16384, 32767 };
        char why[LUKS_WHY_MAX] = "";
        int r;

        (void) size;
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                r = luks_header_validate(buf, sizes[i], NULL, why, sizeof(why));
                CHECK(r < 0 && (sizes[i] < 8 ? r == -EMEDIUMTYPE : strstr(why, "truncated") != NULL),
                      "%zu bytes refused: %s", sizes[i], why);
        }
        r = luks_header_validate(buf, 32768, NULL, why, sizeof(why));
        CHECK(r == 0, "both copies without the keyslot area are enough for validation (%s)", why);
        r = luks_header_validate(buf, 32768, NULL, NULL, 0);
        CHECK(r == 0, "why may be NULL with size 0");
        r = luks_header_validate(buf, 100, NULL, NULL, 0);
        CHECK(r == -EBADMSG, "error without why buffer");
        r = luks_header_validate(buf, 32768, NULL, why, 8);
        CHECK(r == 0, "tiny why buffer");
        {
                uint8_t *bad = malloc(32768);

                memcpy(bad, buf, 32768);
                bad[100] = 1; /* in the checksum algorithm field: a long message, cut to 8 bytes */
                r = luks_header_validate(bad, 32768, NULL, why, 8);
                CHECK(r < 0 && strlen(why) == 7, "message truncated to the buffer: '%s'", why);
                free(bad);
        }
}

static void test_other_images(void) {
        uint8_t *buf = NULL;
        size_t size = 0;
        LuksHeaderInfo info = {};
        char why[LUKS_WHY_MAX] = "";
        int r;

        CHECK(read_file(image_big, &buf, &size) == 0, "read the 64 KiB-metadata image");
        r = luks_header_validate(buf, size, &info, why, sizeof(why));
        CHECK(r == 0 && info.hdr_size == 65536 && info.keyslots_size == 2 * 1024 * 1024,
              "64 KiB metadata, 2 MiB keyslots accepted (%s)", why);
        CHECK(luks2_fixture_hdr_size(buf) == 65536, "fixture reads the header size");
        free(buf);

        CHECK(read_file(image_luks1, &buf, &size) == 0, "read the LUKS1 image");
        r = luks_header_validate(buf, size, NULL, why, sizeof(why));
        CHECK(r == -EMEDIUMTYPE && strstr(why, "LUKS version 1"), "LUKS1 refused: %s", why);
        free(buf);
}

static int open_and_check(const LuksHeader *h, const char *data, int slot, const char *pass) {
        struct crypt_device *cd = NULL;
        int r = crypt_init_data_device(&cd, h->path, data);

        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r >= 0)
                r = crypt_activate_by_passphrase(cd, NULL, slot, pass, strlen(pass), 0);
        crypt_free(cd);
        return r;
}

static void test_snapshot(void) {
        _cleanup_(luks_header_done) LuksHeader h = LUKS_HEADER_NULL;
        struct crypt_device *cd = NULL;
        char why[LUKS_WHY_MAX] = "", target[64];
        const char *json = NULL;
        Tpm2Token tok;
        struct stat st;
        ssize_t k;
        int fd, seals, r;

        CHECK(copy_file(image, scratch) == 0, "scratch copy of the image");
        r = luks_header_snapshot(scratch, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == 0, "snapshot taken (%s)", why);
        CHECK(h.fd >= 0 && strncmp(h.path, "/proc/self/fd/", 14) == 0, "path %s", h.path);
        CHECK(fstat(h.fd, &st) == 0 && (uint64_t) st.st_size == h.info.area_size, "memfd holds exactly the header area");
        k = readlink(h.path, target, sizeof(target) - 1);
        target[k > 0 ? k : 0] = '\0';
        CHECK(strstr(target, "memfd:") != NULL, "path resolves to a memfd (%s)", target);
        CHECK((fcntl(h.fd, F_GETFD) & FD_CLOEXEC) != 0, "memfd is close-on-exec");
        seals = fcntl(h.fd, F_GET_SEALS);
        CHECK(seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) ==
                                    (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
              "memfd sealed against write, grow, shrink and reseal (%#x)", seals);
        CHECK(pwrite(h.fd, "x", 1, 0) < 0 && errno == EPERM, "write to the snapshot fails with EPERM");
        fd = open(h.path, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0 && pwrite(fd, "x", 1, 100) < 0 && errno == EPERM, "write through a reopened path fails");
        CHECK(fd >= 0 && ftruncate(fd, 0) < 0 && errno == EPERM, "truncating fails");
        CHECK(fd >= 0 && mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED, "shared writable mmap fails");
        if (fd >= 0)
                (void) close(fd);

        /* The host rewrites the disk after the snapshot: the snapshot is what counts. */
        {
                uint8_t *zero = calloc(1, h.info.area_size);

                CHECK(write_file(scratch, zero, h.info.area_size, false) == 0, "header area of the disk wiped");
                free(zero);
        }
        r = open_and_check(&h, scratch, 0, PASS);
        CHECK(r == 0, "libcryptsetup loads the memfd as detached header and checks keyslot 0 (%d)", r);
        r = open_and_check(&h, scratch, 1, PASS2);
        CHECK(r == 1, "argon2id keyslot 1 checks through the snapshot (%d)", r);
        r = open_and_check(&h, scratch, CRYPT_ANY_SLOT, "wrong");
        CHECK(r == -EPERM, "a wrong passphrase is refused (%d)", r);

        CHECK(crypt_init_data_device(&cd, h.path, scratch) == 0 && crypt_load(cd, CRYPT_LUKS2, NULL) == 0,
              "load for token check");
        CHECK(crypt_get_cipher(cd) && strcmp(crypt_get_cipher(cd), "aes") == 0, "cipher from the snapshot");
        CHECK(crypt_token_json_get(cd, 0, &json) == 0, "token 0 readable");
        CHECK(json && token_tpm2_parse(json, &tok, why, sizeof(why)) == 0 && tok.keyslot == 0,
              "token from the header parses (%s)", why);
        CHECK(strcmp(crypt_get_metadata_device_name(cd), h.path) == 0, "metadata device is the memfd path");
        crypt_free(cd);

        luks_header_done(&h);
        CHECK(h.fd == -1 && h.path[0] == '\0', "done resets the struct");
        luks_header_done(&h);
        CHECK(h.fd == -1, "done twice is harmless");
}

static void test_snapshot_errors(void) {
        _cleanup_(luks_header_done) LuksHeader h = LUKS_HEADER_NULL;
        char why[LUKS_WHY_MAX] = "";
        uint8_t *buf;
        size_t size;
        int r;

        r = luks_header_snapshot("/nonexistent/disk", LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -ENOENT && strstr(why, "cannot open /nonexistent/disk"), "missing device: %s", why);
        r = luks_header_snapshot(tmpdir, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -ENOTBLK && strstr(why, "neither a block device nor a regular file"), "directory: %s", why);
        CHECK(h.fd == -1, "ret untouched on failure");

        CHECK(read_file(image, &buf, &size) == 0, "read image");
        CHECK(write_file(scratch, buf, 20000, true) == 0, "image cut inside the secondary header");
        r = luks_header_snapshot(scratch, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -EBADMSG && strstr(why, "truncated"), "cut in the headers: %s", why);
        CHECK(write_file(scratch, buf, 100000, true) == 0, "image cut inside the keyslots area");
        r = luks_header_snapshot(scratch, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -EBADMSG && strstr(why, "ends at 100000 bytes, the header area needs 1081344"),
              "cut in the keyslots: %s", why);
        CHECK(mutate(buf, "segments.0.encryption", "\"cipher_null-ecb\"") == 0 &&
                      write_file(scratch, buf, size, true) == 0,
              "cipher_null image");
        r = luks_header_snapshot(scratch, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -EOPNOTSUPP && strstr(why, "segment 0 uses cipher_null") && h.fd == -1,
              "snapshot refuses cipher_null: %s", why);
        r = luks_header_snapshot(image_luks1, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -EMEDIUMTYPE && strstr(why, "LUKS version 1 header is not supported"), "LUKS1 device: %s", why);
        CHECK(write_file(scratch, (const uint8_t *) "hello", 5, true) == 0, "not a LUKS image");
        r = luks_header_snapshot(scratch, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
        CHECK(r == -EMEDIUMTYPE, "short non-LUKS file: %s", why);
        free(buf);
}

static int debug_saw_recovery;
static void capture_log(int level, const char *msg, void *usrptr) {
        (void) level;
        (void) usrptr;
        if (strstr(msg, "header requires recovery"))
                debug_saw_recovery = 1;
}

/* What the seal is for: with a header copy libcryptsetup considers bad, it tries to rewrite it from
 * the other copy. The validator never passes such a header; this shows that even if it did, the
 * sealed memfd would stay exactly as checked. */
static void test_repair_blocked(void) {
        uint8_t *buf, *after;
        size_t size, area = 2 * 16384 + 1024 * 1024;
        struct crypt_device *cd = NULL;
        char path[32];
        int fd, r;

        CHECK(read_file(image, &buf, &size) == 0, "read image");
        buf[16384 + LUKS2_FIXTURE_BIN + 9000] = 'x'; /* secondary JSON padding: its checksum fails */
        fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(fd >= 0 && write(fd, buf, area) == (ssize_t) area &&
                      fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK) == 0,
              "sealed memfd with a damaged secondary header");
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        crypt_set_log_callback(NULL, capture_log, NULL);
        crypt_set_debug_level(CRYPT_DEBUG_ALL);
        r = crypt_init_data_device(&cd, path, image);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        crypt_set_debug_level(CRYPT_DEBUG_NONE);
        crypt_set_log_callback(NULL, NULL, NULL);
        crypt_free(cd);
        CHECK(debug_saw_recovery, "libcryptsetup wanted to repair the secondary header (load: %d)", r);
        after = malloc(area);
        CHECK(pread(fd, after, area, 0) == (ssize_t) area && memcmp(after, buf, area) == 0,
              "the sealed memfd is unchanged");
        free(after);
        (void) close(fd);
        free(buf);
}

static void test_mutate_tool(void) {
        const char *srcdir = getenv("UNIT_SRCDIR");
        char cmd[512], why[LUKS_WHY_MAX] = "";
        uint8_t *buf;
        size_t size;
        int r;

        if (!srcdir || access("/usr/bin/python3", X_OK) < 0) {
                printf("ok %u - # SKIP luks2-mutate.py (no UNIT_SRCDIR or python3)\n", ++tap_n);
                return;
        }
        CHECK(copy_file(image, scratch) == 0, "scratch image for luks2-mutate.py");
        (void) snprintf(cmd, sizeof(cmd),
                        "/usr/bin/python3 '%s/../fixtures/luks2-mutate.py' '%s' set keyslots.0.area.encryption "
                        "'\"cipher_null-ecb\"'",
                        srcdir, scratch);
        r = system(cmd);
        CHECK(r == 0, "luks2-mutate.py ran (%d)", r);
        CHECK(read_file(scratch, &buf, &size) == 0, "read mutated image");
        CHECK(lib_loads(buf, 2 * 16384) == 0, "libcryptsetup accepts the tool's header (checksums right)");
        r = luks_header_validate(buf, size, NULL, why, sizeof(why));
        CHECK(r == -EOPNOTSUPP && strstr(why, "keyslot 0 area uses cipher_null"), "validator refuses it: %s", why);
        free(buf);

        (void) snprintf(cmd, sizeof(cmd),
                        "/usr/bin/python3 '%s/../fixtures/luks2-mutate.py' '%s' primary-only set segments.0.iv_tweak '\"0\"'",
                        srcdir, scratch);
        CHECK(copy_file(image, scratch) == 0 && system(cmd) == 0, "primary-only rewrite");
        CHECK(read_file(scratch, &buf, &size) == 0, "read");
        r = luks_header_validate(buf, size, NULL, why, sizeof(why));
        /* Python writes the same text json-c wrote, so the copies still agree byte for byte. */
        CHECK(r == 0, "an identical rewrite of one copy keeps the copies equal (%s)", why);
        free(buf);
}

/* The states of a first boot's re-key (provision.c), made by libcryptsetup itself: accepted only with
 * LUKS_SNAPSHOT_PROVISION and a cvmcrypt-provision token, refused as unlock sees them. */
static int snapshot_as(LuksSnapshotFlags flags, char *why, size_t n) {
        LuksHeader h = LUKS_HEADER_NULL;
        int r = luks_header_snapshot(scratch, flags, &h, why, n);

        luks_header_done(&h);
        return r;
}

static void test_provision_states(void) {
        static const struct crypt_pbkdf_type fast = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                                      .flags = CRYPT_PBKDF_NO_BENCHMARK };
        struct crypt_params_reencrypt rp = { .mode = CRYPT_REENCRYPT_REENCRYPT, .direction = CRYPT_REENCRYPT_FORWARD,
                                             .resilience = "checksum", .hash = "sha256",
                                             .luks2 = &(struct crypt_params_luks2){ .sector_size = 4096 },
                                             .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY };
        ProvisionToken pt = { .keyslot = 0, .bank = 0x000B, .pcr_mask = 1u << 7 };
        struct crypt_device *cd = NULL;
        char why[LUKS_WHY_MAX] = "", *json = NULL;
        int r, slot, token = -1;

        CHECK(copy_file(image, scratch) == 0, "scratch copy for the provisioning states");
        r = crypt_init(&cd, scratch);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r >= 0)
                r = crypt_set_pbkdf_type(cd, &fast);
        slot = r < 0 ? r : crypt_keyslot_add_by_key(cd, CRYPT_ANY_SLOT, NULL, 64, PASS, strlen(PASS), CRYPT_VOLUME_KEY_NO_SEGMENT);
        CHECK(slot >= 0, "a keyslot for a new, unbound volume key (%d)", slot);

        r = snapshot_as(LUKS_SNAPSHOT_HEADERS, why, sizeof(why));
        CHECK(r == -EOPNOTSUPP && strstr(why, "2 digests"), "unbound key refused for unlock: %s", why);
        r = snapshot_as(LUKS_SNAPSHOT_PROVISION, why, sizeof(why));
        CHECK(r == -EOPNOTSUPP && strstr(why, "without a cvmcrypt-provision token"), "and for provision without its token: %s", why);
        if (token_provision_format(&pt, &json) >= 0)
                token = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
        free(json);
        CHECK(token >= 0, "provisioning token added (%d)", token);
        r = snapshot_as(LUKS_SNAPSHOT_PROVISION, why, sizeof(why));
        CHECK(r == 0, "unbound key accepted for provision with its token (%s)", why);

        r = slot < 0 ? slot : crypt_reencrypt_init_by_passphrase(cd, NULL, PASS, strlen(PASS), 0, slot, "aes", "xts-plain64", &rp);
        CHECK(r >= 0, "re-key initialized (%d)", r);
        r = snapshot_as(LUKS_SNAPSHOT_HEADERS, why, sizeof(why));
        CHECK(r == -EOPNOTSUPP && strstr(why, "requirement 'online-reencrypt-v"), "pending re-key refused for unlock: %s", why);
        r = snapshot_as(LUKS_SNAPSHOT_KEYSLOTS | LUKS_SNAPSHOT_PROVISION, why, sizeof(why));
        CHECK(r == 0, "pending re-key accepted for provision (%s)", why);
        r = luks_header_finish_rekey(scratch, why, sizeof(why));
        CHECK(r == 0, "a re-key that has not run is not finished by hand (%d %s)", r, why);
        crypt_free(cd);
        cd = NULL;

        /* The same header without the token, or with the re-key turned into a decryption, is refused. */
        {
                uint8_t *buf = NULL;
                size_t size = 0;
                uint64_t hdr_size;
                json_object *root = NULL, *ks, *tokens;
                char mutated[32];

                CHECK(read_file(scratch, &buf, &size) == 0, "read the re-key header");
                hdr_size = buf ? luks2_fixture_hdr_size(buf) : 0;
                root = buf ? json_tokener_parse((const char *) buf + LUKS2_FIXTURE_BIN) : NULL;
                if (root && json_object_object_get_ex(root, "tokens", &tokens)) {
                        json_object_object_del(tokens, "1");
                        r = luks2_fixture_set_json(buf, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
                        if (r >= 0)
                                r = luks_header_validate_flags(buf, 2 * hdr_size, LUKS_SNAPSHOT_PROVISION, NULL, why, sizeof(why));
                        CHECK(r == -EOPNOTSUPP && strstr(why, "without a cvmcrypt-provision token"),
                              "pending re-key without the token refused: %s", why);
                }
                json_object_put(root);
                free(buf);
                buf = NULL;
                CHECK(read_file(scratch, &buf, &size) == 0, "read the re-key header again");
                root = buf ? json_tokener_parse((const char *) buf + LUKS2_FIXTURE_BIN) : NULL;
                if (root && json_object_object_get_ex(root, "keyslots", &ks)) {
                        json_object_object_foreach(ks, key, val) {
                                json_object *mode;

                                if (json_object_object_get_ex(val, "mode", &mode)) {
                                        (void) snprintf(mutated, sizeof(mutated), "%s", key);
                                        json_object_object_add(val, "mode", json_object_new_string("decrypt"));
                                }
                        }
                        r = luks2_fixture_set_json(buf, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
                        if (r >= 0)
                                r = luks_header_validate_flags(buf, 2 * hdr_size, LUKS_SNAPSHOT_PROVISION, NULL, why, sizeof(why));
                        CHECK(r == -EOPNOTSUPP && strstr(why, "mode 'decrypt' is not reencrypt"), "a decryption is refused: %s", why);
                }
                json_object_put(root);
                free(buf);
        }
}

int main(void) {
        uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        if (!mkdtemp(tmpdir)) {
                printf("1..0 # SKIP no temporary directory\n");
                return 0;
        }
        (void) snprintf(image, sizeof(image), "%s/luks2.img", tmpdir);
        (void) snprintf(image_big, sizeof(image_big), "%s/big.img", tmpdir);
        (void) snprintf(image_luks1, sizeof(image_luks1), "%s/luks1.img", tmpdir);
        (void) snprintf(scratch, sizeof(scratch), "%s/scratch.img", tmpdir);

        r = make_image(image, 16384, 1024 * 1024);
        CHECK(r == 0, "LUKS2 image made with libcryptsetup (%d)", r);
        r = make_image(image_big, 65536, 2 * 1024 * 1024);
        CHECK(r == 0, "LUKS2 image with 64 KiB metadata (%d)", r);
        r = make_luks1(image_luks1);
        CHECK(r == 0, "LUKS1 image (%d)", r);
        CHECK(read_file(image, &buf, &size) == 0, "image read");
        if (buf) {
                test_genuine(buf, size);
                test_mutations(buf, size);
                test_raw(buf, size);
                test_truncated(buf, size);
                test_reconcile(buf, size);
        }
        test_other_images();
        test_snapshot();
        test_snapshot_errors();
        test_repair_blocked();
        test_mutate_tool();
        test_provision_states();
        free(buf);

        (void) unlink(image);
        (void) unlink(image_big);
        (void) unlink(image_luks1);
        (void) unlink(scratch);
        (void) rmdir(tmpdir);
        return tap_done();
}
