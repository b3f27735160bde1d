/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event log's format: CEL-JSON records in JSON-SEQ, strict parser and writer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "macro.h"
#include "measure.h"

#define RS '\x1e'
#define CONTENT_TYPE "cvmcrypt"
/* root -> digests -> digest object is 3; other writers' content may nest a little deeper. */
#define RECORD_JSON_DEPTH 8

static const char *const event_names[_MEASURE_EVENT_MAX] = {
        [MEASURE_BINARY] = "binary",     [MEASURE_CONFIG] = "config",     [MEASURE_ANCHORS] = "anchors",
        [MEASURE_POLICY] = "policy",     [MEASURE_ATTESTED] = "attested", [MEASURE_VOLUME] = "volume",
        [MEASURE_BOOT_DONE] = "boot-done", [MEASURE_PROVISIONED] = "provisioned",
};

const char *measure_event_name(MeasureEvent e) {
        return e >= 0 && e < _MEASURE_EVENT_MAX ? event_names[e] : NULL;
}

static MeasureEvent event_from_name(const char *s) {
        for (int e = 0; e < _MEASURE_EVENT_MAX; e++)
                if (strcmp(event_names[e], s) == 0)
                        return (MeasureEvent) e;
        return MEASURE_FOREIGN;
}

void measure_log_done(MeasureLog *log) {
        if (!log)
                return;
        free(log->records);
        *log = (MeasureLog){};
}

/* ---- values ---- */

static bool is_lower_hex(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool printable_ascii(const char *s) {
        for (; *s; s++)
                if (*s < 0x20 || *s > 0x7e)
                        return false;
        return true;
}

bool measure_volume_name_valid(const char *name) {
        return name && *name && strlen(name) < MEASURE_NAME_MAX && printable_ascii(name) && !strchr(name, ':');
}

bool measure_volume_uuid_valid(const char *uuid) {
        size_t len = uuid ? strlen(uuid) : 0;

        if (len == 0 || len >= MEASURE_UUID_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!(uuid[i] == '-' || (uuid[i] >= '0' && uuid[i] <= '9') || (uuid[i] >= 'a' && uuid[i] <= 'f') ||
                      (uuid[i] >= 'A' && uuid[i] <= 'F')))
                        return false;
        return true;
}

/* "cvmcrypt:EVENT:sha256:HEX", or one of the event's fixed spellings. */
static bool event_string_valid(MeasureEvent e, const char *s) {
        const char *alt = e == MEASURE_CONFIG || e == MEASURE_ANCHORS ? "absent" : e == MEASURE_POLICY ? "none" : NULL;
        const char *name = measure_event_name(e);
        size_t len = strlen(name);

        if (e == MEASURE_BOOT_DONE)
                return strcmp(s, "cvmcrypt:boot-done") == 0;
        if (e == MEASURE_PROVISIONED)
                return strncmp(s, "cvmcrypt:provisioned:", 21) == 0 && measure_volume_uuid_valid(s + 21);
        if (strncmp(s, "cvmcrypt:", 9) != 0 || strncmp(s + 9, name, len) != 0 || s[9 + len] != ':')
                return false;
        s += 9 + len + 1;
        if (alt && strcmp(s, alt) == 0)
                return true;
        return strncmp(s, "sha256:", 7) == 0 && strlen(s + 7) == 64 && is_lower_hex(s + 7, 64);
}

/* ---- parsing ---- */

typedef struct Where {
        size_t index, offset;
        char *why;
        size_t n;
} Where;

static int bad(const Where *w, const char *format, ...) _printf_(2, 3);
static int bad(const Where *w, const char *format, ...) {
        char msg[200];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(msg, sizeof(msg), format, ap);
        va_end(ap);
        return format_reason(w->why, w->n, -EBADMSG, "record %zu (byte %zu): %s", w->index, w->offset, msg);
}

static int check_keys(json_object *o, const char *const *allowed, size_t count, const char *what, const Where *w) {
        json_object_object_foreach(o, key, val) {
                bool known = false;
                char buf[40];

                (void) val;
                for (size_t i = 0; i < count && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (!known)
                        return bad(w, "%s field '%s' is not known", what, log_escape(buf, sizeof(buf), key));
        }
        return 0;
}

static int get_uint(json_object *o, const char *key, uint64_t max, bool *present, uint64_t *ret, const Where *w) {
        json_object *v;
        int64_t x;

        *present = json_object_object_get_ex(o, key, &v);
        if (!*present)
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return bad(w, "field '%s' is not an integer", key);
        x = json_object_get_int64(v);
        /* json-c saturates at INT64_MAX: a value that large is out of range, not that value. */
        if (x < 0 || x == INT64_MAX || (uint64_t) x > max)
                return bad(w, "field '%s' is out of range", key);
        *ret = (uint64_t) x;
        return 0;
}

/* A string field into buf (size n including the NUL): no NUL inside, not longer. */
static int get_string(json_object *o, const char *key, bool required, char *buf, size_t size, const Where *w) {
        json_object *v;
        size_t len;

        buf[0] = '\0';
        if (!json_object_object_get_ex(o, key, &v))
                return required ? bad(w, "field '%s' is missing", key) : 0;
        if (!json_object_is_type(v, json_type_string))
                return bad(w, "field '%s' is not a string", key);
        len = (size_t) json_object_get_string_len(v);
        if (strlen(json_object_get_string(v)) != len)
                return bad(w, "field '%s' contains a NUL character", key);
        if (len >= size)
                return bad(w, "field '%s' is longer than %zu bytes", key, size - 1);
        memcpy(buf, json_object_get_string(v), len + 1);
        return 0;
}

static int parse_digest(json_object *o, MeasureRecord *r, const Where *w) {
        static const char *const keys[] = { "hashAlg", "digest" };
        char alg[16], hex[2 * TPM_DIGEST_MAX + 1];
        uint16_t bank;
        size_t size;
        int k;

        if (!json_object_is_type(o, json_type_object))
                return bad(w, "an element of 'digests' is not an object");
        k = check_keys(o, keys, ELEMENTSOF(keys), "digest", w);
        if (k < 0)
                return k;
        k = get_string(o, "hashAlg", true, alg, sizeof(alg), w);
        if (k < 0)
                return k;
        if (tpm_bank_from_name(alg, &bank) < 0)
                return bad(w, "hash algorithm '%s' is not known", alg);
        for (size_t i = 0; i < r->n_digests; i++)
                if (r->digests[i].bank == bank)
                        return bad(w, "two %s digests", alg);
        k = get_string(o, "digest", true, hex, sizeof(hex), w);
        if (k < 0)
                return k;
        size = tpm_bank_digest_size(bank);
        if (hex_decode_exact(hex, strlen(hex), r->digests[r->n_digests].value, size) < 0)
                return bad(w, "the %s digest is not %zu hex digits", alg, 2 * size);
        r->digests[r->n_digests++].bank = bank;
        return 0;
}

static int parse_digests(json_object *root, MeasureRecord *r, const Where *w) {
        json_object *a;
        size_t len;
        int k;

        if (!json_object_object_get_ex(root, "digests", &a))
                return bad(w, "field 'digests' is missing");
        if (!json_object_is_type(a, json_type_array))
                return bad(w, "field 'digests' is not an array");
        len = json_object_array_length(a);
        if (len == 0 || len > MEASURE_BANKS_MAX)
                return bad(w, "field 'digests' holds %zu digests, not 1..%u", len, MEASURE_BANKS_MAX);
        for (size_t i = 0; i < len; i++) {
                k = parse_digest(json_object_array_get_idx(a, i), r, w);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Our content: the event and its string, with the fields that belong to that event only. */
static int parse_ours(json_object *root, MeasureRecord *r, const Where *w) {
        static const char *const keys[] = { "event", "string", "path", "name", "uuid", "bootId", "timestamp" };
        char event[16], expect[MEASURE_STRING_MAX];
        json_object *c;
        int k;

        if (!json_object_object_get_ex(root, "content", &c) || !json_object_is_type(c, json_type_object))
                return bad(w, "a cvmcrypt record needs a 'content' object");
        if (!r->has_recnum)
                return bad(w, "a cvmcrypt record needs a 'recnum'");
        if (r->nv)
                return bad(w, "a cvmcrypt record is for a PCR, not an NV index");
        k = check_keys(c, keys, ELEMENTSOF(keys), "content", w);
        if (k < 0)
                return k;
        k = get_string(c, "event", true, event, sizeof(event), w);
        if (k < 0)
                return k;
        r->event = event_from_name(event);
        if (r->event == MEASURE_FOREIGN)
                return bad(w, "event '%s' is not known", event);
        k = get_string(c, "string", true, r->string, sizeof(r->string), w);
        if (k >= 0)
                k = get_string(c, "path", false, r->path, sizeof(r->path), w);
        if (k >= 0)
                k = get_string(c, "name", false, r->name, sizeof(r->name), w);
        if (k >= 0)
                k = get_string(c, "uuid", false, r->uuid, sizeof(r->uuid), w);
        if (k >= 0)
                k = get_string(c, "bootId", false, r->boot_id, sizeof(r->boot_id), w);
        if (k >= 0)
                k = get_uint(c, "timestamp", UINT64_MAX, &r->has_timestamp, &r->timestamp, w);
        if (k < 0)
                return k;
        if (r->boot_id[0] && (strlen(r->boot_id) != 32 || !is_lower_hex(r->boot_id, 32)))
                return bad(w, "field 'bootId' is not 32 lowercase hex digits");
        if (r->path[0] && (r->event > MEASURE_POLICY || !printable_ascii(r->path)))
                return bad(w, "field 'path' does not belong to a %s event", event);
        if (r->event != MEASURE_VOLUME) {
                if (r->name[0] || r->uuid[0])
                        return bad(w, "fields 'name' and 'uuid' belong to volume events only");
                if (!event_string_valid(r->event, r->string))
                        return bad(w, "'%.64s' is not a %s event", r->string, event);
                return 0;
        }
        if (!measure_volume_name_valid(r->name) || !measure_volume_uuid_valid(r->uuid))
                return bad(w, "a volume event needs a 'name' (printable, no ':') and a 'uuid'");
        (void) snprintf(expect, sizeof(expect), "cvmcrypt:%s:%s", r->name, r->uuid);
        if (strcmp(expect, r->string) != 0)
                return bad(w, "the volume event's string is not cvmcrypt:NAME:UUID");
        return 0;
}

static int parse_record(json_object *root, MeasureRecord *r, const Where *w) {
        static const char *const keys[] = { "recnum", "pcr", "nv_index", "digests", "content_type", "content" };
        char type[64] = "";
        json_object *v;
        bool has_pcr, has_nv;
        uint64_t x = 0;
        int k;

        *r = (MeasureRecord){ .index = w->index, .event = MEASURE_FOREIGN };
        if (!json_object_is_type(root, json_type_object))
                return bad(w, "not a JSON object");
        k = check_keys(root, keys, ELEMENTSOF(keys), "record", w);
        if (k < 0)
                return k;
        k = get_uint(root, "recnum", SIZE_MAX, &r->has_recnum, &x, w);
        if (k < 0)
                return k;
        if (r->has_recnum && x != w->index)
                return bad(w, "recnum %llu is not the record's position %zu", (unsigned long long) x, w->index);
        k = get_uint(root, "pcr", TPM_PCR_MAX - 1, &has_pcr, &x, w);
        if (k < 0)
                return k;
        r->pcr = (unsigned) x;
        k = get_uint(root, "nv_index", UINT32_MAX - 1, &has_nv, &x, w);
        if (k < 0)
                return k;
        if (has_pcr == has_nv)
                return bad(w, "needs exactly one of 'pcr' and 'nv_index'");
        r->nv = has_nv;
        k = parse_digests(root, r, w);
        if (k < 0)
                return k;
        if (json_object_object_get_ex(root, "content_type", &v)) {
                if (!json_object_is_type(v, json_type_string))
                        return bad(w, "field 'content_type' is not a string");
                (void) snprintf(type, sizeof(type), "%s", json_object_get_string(v));
        }
        if (strcmp(type, CONTENT_TYPE) == 0)
                return parse_ours(root, r, w);
        return 0;
}

static int add_record(MeasureLog *log, size_t *allocated, const char *text, size_t len, size_t offset, char *why,
                      size_t n) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        Where w = { .index = log->n, .offset = offset, .why = why, .n = n };
        char parse_why[160] = "";
        int k;

        if (len == 0 || (len == 1 && text[0] == '\n'))
                return bad(&w, "empty");
        if (len > MEASURE_RECORD_MAX)
                return bad(&w, "larger than %u bytes", MEASURE_RECORD_MAX);
        /* RFC 7464: a text without its final LF may have been cut short. */
        if (text[len - 1] != '\n')
                return bad(&w, "truncated (no line feed at its end)");
        if (log->n >= MEASURE_RECORDS_MAX)
                return bad(&w, "more than %u records", MEASURE_RECORDS_MAX);
        k = json_parse_strict(text, len, RECORD_JSON_DEPTH, &root, parse_why, sizeof(parse_why));
        if (k == -ENOMEM)
                return format_reason(why, n, k, "out of memory");
        if (k < 0)
                return bad(&w, "not valid JSON: %s", parse_why);
        if (log->n == *allocated) {
                size_t m = *allocated ? 2 * *allocated : 16;
                MeasureRecord *p = reallocarray(log->records, m, sizeof(MeasureRecord));

                if (!p)
                        return format_reason(why, n, -ENOMEM, "out of memory");
                log->records = p;
                *allocated = m;
        }
        k = parse_record(root, &log->records[log->n], &w);
        if (k < 0)
                return k;
        log->n++;
        return 0;
}

int measure_log_parse(const char *text, size_t size, MeasureLog *ret, char *why, size_t n) {
        _cleanup_(measure_log_done) MeasureLog log = {};
        size_t allocated = 0, i = 0;
        int k;

        if (!text || !ret)
                return -EINVAL;
        if (size > MEASURE_LOG_MAX)
                return format_reason(why, n, -EFBIG, "the log is larger than %u bytes", MEASURE_LOG_MAX);
        if (size > 0 && text[0] != RS)
                return format_reason(why, n, -EBADMSG, "the log does not start with a record separator (0x1E)");
        while (i < size) {
                const char *start = text + i + 1, *end = memchr(start, RS, size - i - 1);
                size_t len = end ? (size_t) (end - start) : size - i - 1;

                k = add_record(&log, &allocated, start, len, i + 1, why, n);
                if (k < 0)
                        return k;
                i += len + 1;
        }
        *ret = log;
        log = (MeasureLog){};
        return 0;
}

/* ---- writing ---- */

static int add_string(json_object *o, const char *key, const char *value) {
        return json_add(o, key, json_object_new_string(value));
}

static int build_content(const MeasureRecord *r, json_object **ret) {
        _cleanup_(json_object_putp) json_object *c = json_object_new_object();
        int k;

        if (!c)
                return -ENOMEM;
        k = add_string(c, "event", measure_event_name(r->event));
        if (k >= 0)
                k = add_string(c, "string", r->string);
        if (k >= 0 && r->path[0])
                k = add_string(c, "path", r->path);
        if (k >= 0 && r->event == MEASURE_VOLUME) {
                k = add_string(c, "name", r->name);
                if (k >= 0)
                        k = add_string(c, "uuid", r->uuid);
        }
        if (k >= 0 && r->boot_id[0])
                k = add_string(c, "bootId", r->boot_id);
        if (k >= 0 && r->has_timestamp)
                k = json_add(c, "timestamp", json_object_new_int64((int64_t) r->timestamp));
        if (k < 0)
                return k;
        *ret = TAKE_PTR(c);
        return 0;
}

int measure_record_format(const MeasureRecord *r, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *digests = json_object_new_array();
        json_object *content = NULL;
        const char *text;
        int k;

        if (!r || !ret || !measure_event_name(r->event) || r->nv || r->pcr >= TPM_PCR_MAX || r->n_digests == 0)
                return -EINVAL;
        if (!o || !digests)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_digests; i++) {
                json_object *d = json_object_new_object();

                if (!d || json_object_array_add(digests, d) < 0) {
                        json_object_put(d);
                        return -ENOMEM;
                }
                k = add_string(d, "hashAlg", tpm_bank_name(r->digests[i].bank));
                if (k >= 0)
                        k = json_add_hex(d, "digest", r->digests[i].value, tpm_bank_digest_size(r->digests[i].bank));
                if (k < 0)
                        return k;
        }
        k = json_add(o, "recnum", json_object_new_int64((int64_t) r->index));
        if (k >= 0)
                k = json_add(o, "pcr", json_object_new_int((int) r->pcr));
        if (k >= 0)
                k = json_add(o, "digests", json_object_get(digests));
        if (k >= 0)
                k = add_string(o, "content_type", CONTENT_TYPE);
        if (k >= 0)
                k = build_content(r, &content);
        if (k >= 0)
                k = json_add(o, "content", content);
        if (k < 0)
                return k;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text || asprintf(ret, "%c%s\n", RS, text) < 0)
                return -ENOMEM;
        return 0;
}
