/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest-fetch.h"
#include "config.h"
#include "macro.h"

#ifndef CVM_ANCHORS_DIR
#define CVM_ANCHORS_DIR "/usr/share/cvmcrypt/anchors"
#endif

#define CMDLINE_MAX 4096
#define CMDLINE_PREFIX "cvmcrypt."
#define PATH_VALUE_MAX 512
#define TCTI_MAX 255

typedef int (*ValueParser)(Config *c, const char *value, char *why, size_t n);

typedef struct KeyDef {
        const char *key;
        ValueParser parse;
        bool repeatable;
} KeyDef;

/* Tracks what one source has set: duplicates are errors within a source, and a later source's
 * value replaces an earlier one's. */
typedef struct SourceState {
        unsigned seen;
        bool volumes_replaced;
} SourceState;

static _printf_(3, 4) int fail(ConfigError *err, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return r;
}

static _printf_(3, 4) int why(char *buf, size_t n, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int set_string(char **field, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static int parse_uint(const char *value, unsigned min, unsigned max, unsigned *ret) {
        unsigned long v = 0;

        /* Plain decimal only: no sign, no hex, no leading zeros, no trailing garbage. */
        if (!*value || strlen(value) > 9 || (value[0] == '0' && value[1]))
                return -EINVAL;
        for (const char *p = value; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (*p - '0');
        }
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

static bool path_is_clean(const char *p) {
        size_t len = strlen(p);

        if (p[0] != '/' || len >= PATH_VALUE_MAX)
                return false;
        for (const char *s = p; *s; s++)
                if (isspace((unsigned char) *s) || !isprint((unsigned char) *s))
                        return false;
        /* No "." or ".." components, no empty ones: the path means what it says. */
        return !strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../") &&
               !(len >= 2 && strcmp(p + len - 2, "/.") == 0) && !(len >= 3 && strcmp(p + len - 3, "/..") == 0);
}

static int parse_path(char **field, const char *value, char *w, size_t n) {
        if (!path_is_clean(value))
                return why(w, n, "'%s' is not a clean absolute path", value);
        return set_string(field, value);
}

static int parse_tpm(Config *c, const char *value, char *w, size_t n) {
        size_t name_len = strcspn(value, ":");

        if (strlen(value) > TCTI_MAX)
                return why(w, n, "TCTI string longer than %d bytes", TCTI_MAX);
        if (name_len == 0)
                return why(w, n, "'%s' is not a TCTI (expected NAME or NAME:CONFIG, e.g. device:/dev/tpmrm0)", value);
        for (size_t i = 0; i < name_len; i++)
                if (!islower((unsigned char) value[i]) && !isdigit((unsigned char) value[i]) && value[i] != '-')
                        return why(w, n, "'%s' is not a TCTI name", value);
        for (const char *p = value; *p; p++)
                if (!isgraph((unsigned char) *p))
                        return why(w, n, "TCTI string contains whitespace or control characters");
        return set_string(&c->tpm, value);
}

static int parse_tpm_timeout(Config *c, const char *value, char *w, size_t n) {
        if (parse_uint(value, 0, 600, &c->tpm_timeout) < 0)
                return why(w, n, "'%s' is not a number of seconds between 0 and 600", value);
        return 0;
}

static int parse_device_timeout(Config *c, const char *value, char *w, size_t n) {
        if (parse_uint(value, 0, 600, &c->device_timeout) < 0)
                return why(w, n, "'%s' is not a number of seconds between 0 and 600", value);
        return 0;
}

static int parse_gate_pcr(Config *c, const char *value, char *w, size_t n) {
        /* 0-7 belong to the firmware, 16 and 23 can be reset from the OS, 17-22 need locality 2+. */
        if (parse_uint(value, 8, 15, &c->gate_pcr) < 0)
                return why(w, n, "'%s' is not a PCR between 8 and 15 (0-7 are the firmware's, 16 and 23 are resettable, 17-22 need a higher locality)",
                           value);
        return 0;
}

static int parse_anchors(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->anchors, value, w, n);
}

static int parse_policy(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->policy, value, w, n);
}

/* none, or a live source as `attest --source` takes it, with a clean path if one is given. */
static int parse_attest(Config *c, const char *value, char *w, size_t n) {
        AttestSource source;
        const char *path;

        if (strcmp(value, "none") == 0) {
                free(c->attest);
                c->attest = NULL;
                return 0;
        }
        if (attest_source_parse(value, &source, &path) < 0 || (strchr(value, ':') && !path_is_clean(path)))
                return why(w, n, "'%s' is neither none, hcl-nv, tsm[:DIR] nor sev-guest[:DEVICE] (clean absolute paths)",
                           value);
        return set_string(&c->attest, value);
}

static int parse_attest_certs(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->attest_certs, value, w, n);
}

/* First-boot provisioning: the admin certificate the recovery key is escrowed to, and where the
 * escrow goes (e.g. on the ESP). */
static int parse_provision_escrow_cert(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->provision_escrow_cert, value, w, n);
}

static int parse_provision_escrow_out(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->provision_escrow_out, value, w, n);
}

static int parse_event_log(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->event_log, value, w, n);
}

static int parse_tempdisk_mount(Config *c, const char *value, char *w, size_t n) {
        return parse_path(&c->tempdisk_mount, value, w, n);
}

static int parse_tempdisk(Config *c, const char *value, char *w, size_t n) {
        static const char *const on[] = { "auto", "1", "yes", "true" }, *const off[] = { "0", "no", "false", "off" };

        for (size_t i = 0; i < ELEMENTSOF(on); i++)
                if (strcmp(value, on[i]) == 0) {
                        c->tempdisk = TEMPDISK_AUTO;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(off); i++)
                if (strcmp(value, off[i]) == 0) {
                        c->tempdisk = TEMPDISK_OFF;
                        return 0;
                }
        /* Only stable names: /dev/sdb today may be the OS disk after the next reboot. */
        if (strncmp(value, "/dev/disk/by-", 13) != 0 || !path_is_clean(value))
                return why(w, n, "'%s' is neither auto, 0, nor a /dev/disk/by-* path", value);
        c->tempdisk = TEMPDISK_DEVICE;
        return set_string(&c->tempdisk_device, value);
}

/* One of a fixed list of words; *ret is its index. */
static int parse_choice(const char *value, const char *const *words, size_t n, unsigned *ret) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(value, words[i]) == 0) {
                        *ret = (unsigned) i;
                        return 0;
                }
        return -EINVAL;
}

static int parse_tempdisk_mode(Config *c, const char *value, char *w, size_t n) {
        static const char *const words[] = { [TEMPDISK_DISKS_FIRST] = "first", [TEMPDISK_DISKS_EACH] = "each" };
        unsigned v;

        if (parse_choice(value, words, ELEMENTSOF(words), &v) < 0)
                return why(w, n, "'%s' is neither first nor each", value);
        c->tempdisk_disks = (TempdiskDisks) v;
        return 0;
}

static int parse_tempdisk_fs(Config *c, const char *value, char *w, size_t n) {
        static const char *const words[] = { [TEMPDISK_FS_EXT4] = "ext4", [TEMPDISK_FS_XFS] = "xfs" };
        unsigned v;

        if (parse_choice(value, words, ELEMENTSOF(words), &v) < 0)
                return why(w, n, "'%s' is neither ext4 nor xfs", value);
        c->tempdisk_fs = (TempdiskFs) v;
        return 0;
}

static int parse_tempdisk_crypt(Config *c, const char *value, char *w, size_t n) {
        static const char *const words[] = { [TEMPDISK_CRYPT_LUKS2] = "luks2", [TEMPDISK_CRYPT_PLAIN] = "plain" };
        unsigned v;

        if (parse_choice(value, words, ELEMENTSOF(words), &v) < 0)
                return why(w, n, "'%s' is neither luks2 nor plain", value);
        c->tempdisk_crypt = (TempdiskCrypt) v;
        return 0;
}

/* Whether the first boot's re-key runs before the volume opens, or on the open volume in the real
 * root (cvmcrypt-reencrypt.service). */
static int parse_provision_reencrypt(Config *c, const char *value, char *w, size_t n) {
        static const char *const words[] = { [PROVISION_REENCRYPT_FOREGROUND] = "foreground",
                                              [PROVISION_REENCRYPT_BACKGROUND] = "background" };
        unsigned v;

        if (parse_choice(value, words, ELEMENTSOF(words), &v) < 0)
                return why(w, n, "'%s' is neither foreground nor background", value);
        c->provision_reencrypt = (ProvisionReencrypt) v;
        return 0;
}

/* "0", or a whole number of K, M, G or T (binary units) from 1M to 1T in 4K steps. */
static int parse_tempdisk_swap(Config *c, const char *value, char *w, size_t n) {
        static const char units[] = "KMGT";
        size_t len = strlen(value);
        const char *u;
        unsigned number;
        char digits[8];

        if (strcmp(value, "0") == 0) {
                c->tempdisk_swap = 0;
                return 0;
        }
        u = len >= 2 ? strchr(units, value[len - 1]) : NULL;
        if (u && len - 1 < sizeof(digits)) {
                memcpy(digits, value, len - 1);
                digits[len - 1] = '\0';
        }
        if (!u || len - 1 >= sizeof(digits) || parse_uint(digits, 1, 999999, &number) < 0)
                return why(w, n, "'%s' is not 0 or a size such as 512M or 4G", value);
        c->tempdisk_swap = (uint64_t) number << (10 * (u - units + 1));
        if (c->tempdisk_swap < (UINT64_C(1) << 20) || c->tempdisk_swap > (UINT64_C(1) << 40) ||
            c->tempdisk_swap % 4096 != 0)
                return why(w, n, "'%s' is not between 1M and 1T in steps of 4K", value);
        return 0;
}

static bool is_uuid(const char *s) {
        static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

        if (strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; pattern[i]; i++)
                if (pattern[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
                        return false;
        return true;
}

static bool is_volume_name(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len > CONFIG_VOLUME_NAME_MAX || s[0] == '-' || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("_.-", *s))
                        return false;
        return true;
}

static int parse_volume(Config *c, const char *value, char *w, size_t n) {
        _cleanup_free_ char *device = NULL, *name = NULL;
        size_t dev_len = strcspn(value, " \t");
        const char *rest = value + dev_len + strspn(value + dev_len, " \t");

        device = strndup(value, dev_len);
        if (!device)
                return -ENOMEM;
        if (strncmp(device, "UUID=", 5) == 0 ? !is_uuid(device + 5)
                                              : strncmp(device, "/dev/", 5) != 0 || !path_is_clean(device))
                return why(w, n, "volume device '%s' is neither a /dev path nor UUID=<uuid>", device);
        if (*rest) {
                if (!is_volume_name(rest))
                        return why(w, n, "volume name '%s' is invalid (letters, digits, '_', '.', '-'; at most %d)", rest,
                                   CONFIG_VOLUME_NAME_MAX);
                name = strdup(rest);
                if (!name)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_volumes; i++) {
                if (strcmp(c->volumes[i].device, device) == 0)
                        return why(w, n, "volume '%s' is listed twice", device);
                if (name && c->volumes[i].name && strcmp(c->volumes[i].name, name) == 0)
                        return why(w, n, "volume name '%s' is used twice", name);
        }
        if (c->n_volumes >= CONFIG_VOLUMES_MAX)
                return why(w, n, "more than %d volumes", CONFIG_VOLUMES_MAX);
        c->volumes[c->n_volumes++] = (ConfigVolume){ .device = TAKE_PTR(device), .name = TAKE_PTR(name) };
        return 0;
}

static const KeyDef key_table[] = {
        { "anchors", parse_anchors, false },
        { "attest", parse_attest, false },
        { "attest-certs", parse_attest_certs, false },
        { "device-timeout", parse_device_timeout, false },
        { "event-log", parse_event_log, false },
        { "gate-pcr", parse_gate_pcr, false },
        { "policy", parse_policy, false },
        { "provision-escrow-cert", parse_provision_escrow_cert, false },
        { "provision-escrow-out", parse_provision_escrow_out, false },
        { "provision-reencrypt", parse_provision_reencrypt, false },
        { "tempdisk", parse_tempdisk, false },
        { "tempdisk-crypt", parse_tempdisk_crypt, false },
        { "tempdisk-fs", parse_tempdisk_fs, false },
        { "tempdisk-mode", parse_tempdisk_mode, false },
        { "tempdisk-mount", parse_tempdisk_mount, false },
        { "tempdisk-swap", parse_tempdisk_swap, false },
        { "tpm", parse_tpm, false },
        { "tpm-timeout", parse_tpm_timeout, false },
        { "volume", parse_volume, true },
};

static void clear_volumes(Config *c) {
        for (size_t i = 0; i < c->n_volumes; i++) {
                free(c->volumes[i].device);
                free(c->volumes[i].name);
        }
        c->n_volumes = 0;
}

void config_init(Config *c) {
        *c = (Config){
                .tpm = strdup("device:/dev/tpmrm0"),
                .tpm_timeout = 30,
                .device_timeout = 30,
                .gate_pcr = 15,
                .anchors = strdup(CVM_ANCHORS_DIR),
                .event_log = strdup("/run/log/systemd/tpm2-measure.log"),
                .tempdisk = TEMPDISK_AUTO,
                .tempdisk_mount = strdup("/mnt/resource"),
        };
}

void config_done(Config *c) {
        free(c->tpm);
        free(c->anchors);
        free(c->policy);
        free(c->attest);
        free(c->attest_certs);
        free(c->provision_escrow_cert);
        free(c->provision_escrow_out);
        free(c->event_log);
        free(c->tempdisk_device);
        free(c->tempdisk_mount);
        clear_volumes(c);
        *c = (Config){};
}

static bool defaults_allocated(const Config *c) {
        return c->tpm && c->anchors && c->event_log && c->tempdisk_mount;
}

/* Applies key=value from one source. The message is already prefixed with the location. */
static int apply(Config *c, SourceState *st, const char *key, const char *value, const char *loc, ConfigError *err) {
        char w[384] = "";
        int r;

        for (size_t i = 0; i < ELEMENTSOF(key_table); i++) {
                const KeyDef *k = &key_table[i];

                if (strcmp(k->key, key) != 0)
                        continue;
                if (!k->repeatable && (st->seen & (1u << i)))
                        return fail(err, -EEXIST, "%s: '%s' is set twice", loc, key);
                if (*value == '\0')
                        return fail(err, -EINVAL, "%s: '%s' has an empty value", loc, key);
                /* A source that lists volumes replaces the volume list of the sources before it. */
                if (k->repeatable && !st->volumes_replaced) {
                        clear_volumes(c);
                        st->volumes_replaced = true;
                }
                st->seen |= 1u << i;
                r = k->parse(c, value, w, sizeof(w));
                if (r == -ENOMEM)
                        return fail(err, r, "%s: out of memory", loc);
                if (r < 0)
                        return fail(err, r, "%s: bad value for '%s': %s", loc, key, w);
                return 0;
        }
        return fail(err, -EINVAL, "%s: unknown key '%s'", loc, key);
}

static bool is_key(const char *s, size_t len) {
        if (len == 0 || len > 32 || !islower((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!islower((unsigned char) s[i]) && !isdigit((unsigned char) s[i]) && s[i] != '-')
                        return false;
        return true;
}

static void trim(const char **s, size_t *len) {
        while (*len > 0 && (**s == ' ' || **s == '\t'))
                (*s)++, (*len)--;
        while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
                (*len)--;
}

static int parse_line(Config *c, SourceState *st, const char *line, size_t len, const char *loc, ConfigError *err) {
        char key[33], value[CONFIG_LINE_MAX + 1];
        const char *eq, *k = line, *v;
        size_t klen, vlen;

        for (size_t i = 0; i < len; i++)
                if (line[i] != '\t' && ((unsigned char) line[i] < 0x20 || line[i] == 0x7f))
                        return fail(err, -EINVAL, "%s: control character 0x%02x", loc, (unsigned char) line[i]);
        trim(&k, &len);
        if (len == 0 || *k == '#')
                return 0;
        eq = memchr(k, '=', len);
        if (!eq)
                return fail(err, -EINVAL, "%s: expected KEY=VALUE", loc);
        klen = (size_t) (eq - k);
        v = eq + 1;
        vlen = len - klen - 1;
        trim(&k, &klen);
        trim(&v, &vlen);
        if (!is_key(k, klen))
                return fail(err, -EINVAL, "%s: '%.*s' is not a valid key", loc, (int) (klen > 32 ? 32 : klen), k);
        memcpy(key, k, klen);
        key[klen] = '\0';
        memcpy(value, v, vlen);
        value[vlen] = '\0';
        return apply(c, st, key, value, loc, err);
}

static int parse_file_text(Config *c, SourceState *st, const char *text, size_t len, const char *where,
                           ConfigError *err) {
        unsigned line_no = 0;

        if (len > CONFIG_FILE_MAX)
                return fail(err, -EFBIG, "%s: larger than %d bytes", where, CONFIG_FILE_MAX);
        if (memchr(text, '\0', len))
                return fail(err, -EINVAL, "%s: contains a NUL byte", where);
        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t line_len = nl ? (size_t) (nl - (text + pos)) : len - pos;
                char loc[PATH_VALUE_MAX + 32];
                int r;

                line_no++;
                (void) snprintf(loc, sizeof(loc), "%s:%u", where, line_no);
                if (line_len > CONFIG_LINE_MAX)
                        return fail(err, -E2BIG, "%s: line longer than %d bytes", loc, CONFIG_LINE_MAX);
                r = parse_line(c, st, text + pos, line_len, loc, err);
                if (r < 0)
                        return r;
                pos += line_len + 1;
        }
        return 0;
}

int config_parse_file_text(Config *c, const char *text, size_t len, const char *where, ConfigError *err) {
        SourceState st = {};

        return parse_file_text(c, &st, text, len, where, err);
}

/* Splits the next kernel-command-line word the way the kernel does: whitespace separates words
 * unless inside double quotes, and the quotes themselves are dropped. */
static int next_word(const char **p, const char *end, char *word, size_t n, size_t *ret_len) {
        bool quoted = false;
        size_t j = 0;

        while (*p < end && isspace((unsigned char) **p))
                (*p)++;
        for (; *p < end && (quoted || !isspace((unsigned char) **p)); (*p)++) {
                if (**p == '"') {
                        quoted = !quoted;
                        continue;
                }
                if (j + 1 >= n)
                        return -E2BIG;
                word[j++] = **p;
        }
        if (quoted)
                return -EBADMSG;
        word[j] = '\0';
        *ret_len = j;
        return 0;
}

static int parse_cmdline_text(Config *c, SourceState *st, const char *text, size_t len, const char *where,
                              ConfigError *err) {
        const char *p = text, *end = text + len;
        char word[CMDLINE_MAX + 1];
        unsigned n = 0;

        if (len > CMDLINE_MAX)
                return fail(err, -EFBIG, "%s: longer than %d bytes", where, CMDLINE_MAX);
        for (size_t i = 0; i < len; i++)
                if (!isspace((unsigned char) text[i]) && ((unsigned char) text[i] < 0x20 || text[i] == 0x7f))
                        return fail(err, -EINVAL, "%s: control character 0x%02x", where, (unsigned char) text[i]);
        for (;;) {
                char loc[PATH_VALUE_MAX + 64], *eq;
                size_t wlen;
                int r;

                r = next_word(&p, end, word, sizeof(word), &wlen);
                if (r < 0)
                        return fail(err, r, "%s, word %u: unbalanced double quote", where, n + 1);
                if (wlen == 0)
                        return 0;
                n++;
                if (strncmp(word, CMDLINE_PREFIX, strlen(CMDLINE_PREFIX)) != 0)
                        continue;
                (void) snprintf(loc, sizeof(loc), "%s, word %u", where, n);
                eq = strchr(word, '=');
                if (!eq)
                        return fail(err, -EINVAL, "%s: '%.64s' needs =VALUE", loc, word);
                *eq = '\0';
                if (!is_key(word + strlen(CMDLINE_PREFIX), strlen(word + strlen(CMDLINE_PREFIX))))
                        return fail(err, -EINVAL, "%s: '%.64s' is not a valid key", loc, word);
                r = apply(c, st, word + strlen(CMDLINE_PREFIX), eq + 1, loc, err);
                if (r < 0)
                        return r;
        }
}

int config_parse_cmdline_text(Config *c, const char *text, size_t len, const char *where, ConfigError *err) {
        SourceState st = {};

        return parse_cmdline_text(c, &st, text, len, where, err);
}

/* Reads a whole small file. The config file must not be writable by anyone but root when we run
 * as root: whoever can edit it decides which disk gets formatted. */
static int read_small_file(const char *path, size_t max, bool check_owner, char **ret, size_t *ret_len,
                           ConfigError *err) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail(err, negative_errno(), "%s: cannot open: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return fail(err, negative_errno(), "%s: cannot stat: %s", path, strerror(errno));
        if (check_owner && !S_ISREG(st.st_mode))
                return fail(err, -EINVAL, "%s: not a regular file", path);
        if (check_owner && geteuid() == 0 && (st.st_uid != 0 || (st.st_mode & 022)))
                return fail(err, -EPERM, "%s: must be owned by root and not writable by group or others", path);
        buf = malloc(max + 1);
        if (!buf)
                return fail(err, -ENOMEM, "%s: out of memory", path);
        for (;;) {
                ssize_t k = read(fd, buf + len, max + 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return fail(err, negative_errno(), "%s: read failed: %s", path, strerror(errno));
                if (k == 0)
                        break;
                len += (size_t) k;
                if (len > max)
                        return fail(err, -EFBIG, "%s: larger than %zu bytes", path, max);
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int load_file(Config *c, SourceState *st, const char *path, ConfigError *err) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = read_small_file(path, CONFIG_FILE_MAX, true, &text, &len, err);
        if (r < 0)
                return r;
        return parse_file_text(c, st, text, len, path, err);
}

static int load_cmdline(Config *c, SourceState *st, const char *path, ConfigError *err) {
        _cleanup_free_ char *text = NULL;
        char where[PATH_VALUE_MAX + 32];
        size_t len;
        int r;

        (void) snprintf(where, sizeof(where), "kernel command line (%s)", path);
        r = read_small_file(path, CMDLINE_MAX, false, &text, &len, err);
        if (r < 0)
                return r;
        return parse_cmdline_text(c, st, text, len, where, err);
}

int config_load(Config *c, const ConfigSources *src, ConfigError *err) {
        SourceState file_state = {}, cmdline_state = {};
        int r = 0;

        *err = (ConfigError){};
        config_init(c);
        if (!defaults_allocated(c))
                r = fail(err, -ENOMEM, "out of memory");
        if (r >= 0 && src->file && (src->file_required || access(src->file, F_OK) == 0))
                r = load_file(c, &file_state, src->file, err);
        if (r >= 0 && src->cmdline)
                r = load_cmdline(c, &cmdline_state, src->cmdline, err);
        /* A recovery key escrowed nowhere, or to nobody, would be one nobody can use. */
        if (r >= 0 && !c->provision_escrow_cert != !c->provision_escrow_out)
                r = fail(err, -EINVAL, "provision-escrow-cert= and provision-escrow-out= go together");
        /* Attesting against no policy would pass any guest that is not a debug one. */
        if (r >= 0 && c->attest && !c->policy)
                r = fail(err, -EINVAL, "attest=%s needs policy= (the policy the report must satisfy)", c->attest);
        if (r < 0)
                config_done(c);
        return r;
}

const char *tempdisk_mode_to_string(TempdiskMode m) {
        switch (m) {
        case TEMPDISK_AUTO:
                return "auto";
        case TEMPDISK_OFF:
                return "off";
        case TEMPDISK_DEVICE:
                return "device";
        }
        return "?";
}
