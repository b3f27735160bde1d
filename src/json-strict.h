/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_STRICT_DEPTH_MAX 16
#define JSON_STRICT_KEYS_MAX 64 /* per object */

/* Parses text (size bytes, no NUL needed) as exactly one JSON value with json-c, after checking
 * what json-c lets through even in strict mode: RFC 8259 grammar only (no single quotes, NaN,
 * control characters in strings, trailing commas), valid UTF-8, nothing but whitespace after the
 * value, nesting at most depth (<= JSON_STRICT_DEPTH_MAX), at most JSON_STRICT_KEYS_MAX keys per
 * object, keys without escapes, and no key twice in one object (json-c keeps the last silently,
 * another reader of the same file might keep the first). Returns 0 or -EBADMSG with why set
 * ("offset N: ..."). */
int json_parse_strict(const char *text, size_t size, int depth, json_object **ret, char *why, size_t why_size);

/* Adds v under key, taking ownership; -ENOMEM (v released) when v is NULL or the add fails. */
int json_add(json_object *o, const char *key, json_object *v);
/* Adds n bytes (at most JSON_HEX_MAX) as a lowercase hex string. */
#define JSON_HEX_MAX 72
int json_add_hex(json_object *o, const char *key, const uint8_t *p, size_t n);

/* "a string", "an integer", ...: for messages such as "field 'x' is not a string". */
const char *json_type_phrase(json_type t);

static inline void json_object_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
