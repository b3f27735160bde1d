/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "encoding.h"
#include "json-strict.h"

typedef struct Span {
        const char *p;
        size_t len;
} Span;

typedef struct Scanner {
        const char *s;
        size_t n, i;
        int depth, max_depth;
        char *why;
        size_t why_size;
} Scanner;

static int fail(Scanner *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Scanner *sc, const char *fmt, ...) {
        char msg[160];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        (void) snprintf(sc->why, sc->why_size, "offset %zu: %s", sc->i, msg);
        return -EBADMSG;
}

static void skip_ws(Scanner *sc) {
        while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' || sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r'))
                sc->i++;
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* A string starting at the opening quote. Bytes >= 0x80 are left to json-c's UTF-8 check. */
static int scan_string(Scanner *sc, bool is_key, Span *ret) {
        size_t start = ++sc->i;

        while (sc->i < sc->n) {
                unsigned char c = (unsigned char) sc->s[sc->i];

                if (c == '"') {
                        if (ret)
                                *ret = (Span){ sc->s + start, sc->i - start };
                        sc->i++;
                        return 0;
                }
                if (c < 0x20)
                        return fail(sc, "control character 0x%02x in a string", c);
                if (c == '\\') {
                        if (is_key)
                                return fail(sc, "escape sequence in an object key");
                        if (sc->i + 1 >= sc->n)
                                break;
                        c = (unsigned char) sc->s[sc->i + 1];
                        if (c == 'u') {
                                if (sc->i + 6 > sc->n || !is_hex(sc->s[sc->i + 2]) || !is_hex(sc->s[sc->i + 3]) ||
                                    !is_hex(sc->s[sc->i + 4]) || !is_hex(sc->s[sc->i + 5]))
                                        return fail(sc, "bad \\u escape");
                                sc->i += 6;
                                continue;
                        }
                        if (!strchr("\"\\/bfnrt", c) || c == 0)
                                return fail(sc, "bad escape sequence");
                        sc->i += 2;
                        continue;
                }
                sc->i++;
        }
        return fail(sc, "unterminated string");
}

static int scan_number(Scanner *sc) {
        const char *s = sc->s;
        size_t n = sc->n;

        if (sc->i < n && s[sc->i] == '-')
                sc->i++;
        if (sc->i >= n || !is_digit(s[sc->i]))
                return fail(sc, "malformed number");
        if (s[sc->i] == '0')
                sc->i++;
        else
                while (sc->i < n && is_digit(s[sc->i]))
                        sc->i++;
        if (sc->i < n && s[sc->i] == '.') {
                sc->i++;
                if (sc->i >= n || !is_digit(s[sc->i]))
                        return fail(sc, "malformed number");
                while (sc->i < n && is_digit(s[sc->i]))
                        sc->i++;
        }
        if (sc->i < n && (s[sc->i] == 'e' || s[sc->i] == 'E')) {
                sc->i++;
                if (sc->i < n && (s[sc->i] == '+' || s[sc->i] == '-'))
                        sc->i++;
                if (sc->i >= n || !is_digit(s[sc->i]))
                        return fail(sc, "malformed number");
                while (sc->i < n && is_digit(s[sc->i]))
                        sc->i++;
        }
        return 0;
}

static int scan_value(Scanner *sc);

static int scan_object(Scanner *sc) {
        Span keys[JSON_STRICT_KEYS_MAX];
        size_t n_keys = 0;
        int k;

        sc->i++; /* '{' */
        skip_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == '}') {
                sc->i++;
                return 0;
        }
        for (;;) {
                Span key;

                skip_ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i] != '"')
                        return fail(sc, "expected a key in double quotes");
                k = scan_string(sc, true, &key);
                if (k < 0)
                        return k;
                for (size_t j = 0; j < n_keys; j++)
                        if (keys[j].len == key.len && memcmp(keys[j].p, key.p, key.len) == 0)
                                return fail(sc, "key '%.*s' appears twice in one object", (int) (key.len > 64 ? 64 : key.len),
                                            key.p);
                if (n_keys >= JSON_STRICT_KEYS_MAX)
                        return fail(sc, "more than %d keys in one object", JSON_STRICT_KEYS_MAX);
                keys[n_keys++] = key;
                skip_ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i] != ':')
                        return fail(sc, "expected ':'");
                sc->i++;
                k = scan_value(sc);
                if (k < 0)
                        return k;
                skip_ws(sc);
                if (sc->i < sc->n && sc->s[sc->i] == ',') {
                        sc->i++;
                        continue;
                }
                if (sc->i < sc->n && sc->s[sc->i] == '}') {
                        sc->i++;
                        return 0;
                }
                return fail(sc, "expected ',' or '}'");
        }
}

static int scan_array(Scanner *sc) {
        int k;

        sc->i++; /* '[' */
        skip_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == ']') {
                sc->i++;
                return 0;
        }
        for (;;) {
                k = scan_value(sc);
                if (k < 0)
                        return k;
                skip_ws(sc);
                if (sc->i < sc->n && sc->s[sc->i] == ',') {
                        sc->i++;
                        continue;
                }
                if (sc->i < sc->n && sc->s[sc->i] == ']') {
                        sc->i++;
                        return 0;
                }
                return fail(sc, "expected ',' or ']'");
        }
}

static int scan_literal(Scanner *sc, const char *word) {
        size_t len = strlen(word);

        if (sc->n - sc->i < len || memcmp(sc->s + sc->i, word, len) != 0)
                return fail(sc, "unexpected character");
        sc->i += len;
        return 0;
}

static int scan_value(Scanner *sc) {
        int k;

        skip_ws(sc);
        if (sc->i >= sc->n)
                return fail(sc, "unexpected end of input");
        switch (sc->s[sc->i]) {
        case '{':
        case '[':
                if (++sc->depth > sc->max_depth)
                        return fail(sc, "nested deeper than %d", sc->max_depth);
                k = sc->s[sc->i] == '{' ? scan_object(sc) : scan_array(sc);
                sc->depth--;
                return k;
        case '"':
                return scan_string(sc, false, NULL);
        case 't':
                return scan_literal(sc, "true");
        case 'f':
                return scan_literal(sc, "false");
        case 'n':
                return scan_literal(sc, "null");
        default:
                return scan_number(sc);
        }
}

int json_parse_strict(const char *text, size_t size, int depth, json_object **ret, char *why, size_t why_size) {
        Scanner sc = { .s = text, .n = size, .max_depth = depth, .why = why, .why_size = why_size };
        struct json_tokener *tok;
        json_object *o;
        int k;

        if (depth < 1 || depth > JSON_STRICT_DEPTH_MAX || size > INT_MAX)
                return -EINVAL;
        k = scan_value(&sc);
        if (k < 0)
                return k;
        skip_ws(&sc);
        if (sc.i != sc.n)
                return fail(&sc, "trailing data after the JSON value");
        /* json-c has no object for a top-level null (and may not even finish it): no caller wants one. */
        sc.i = 0;
        skip_ws(&sc);
        if (sc.s[sc.i] == 'n')
                return fail(&sc, "the value is null");

        tok = json_tokener_new_ex(depth + 1);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, text, (int) size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != size) {
                (void) snprintf(why, why_size, "offset %zu: %s", json_tokener_get_parse_end(tok),
                                json_tokener_error_desc(json_tokener_get_error(tok)));
                json_object_put(o);
                json_tokener_free(tok);
                return -EBADMSG;
        }
        json_tokener_free(tok);
        *ret = o;
        return 0;
}

const char *json_type_phrase(json_type t) {
        switch (t) {
        case json_type_string:
                return "a string";
        case json_type_int:
                return "an integer";
        case json_type_boolean:
                return "a boolean";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        default:
                return "of another type";
        }
}

int json_add(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_add_hex(json_object *o, const char *key, const uint8_t *p, size_t n) {
        char buf[2 * JSON_HEX_MAX + 1];

        if (n > JSON_HEX_MAX)
                return -E2BIG;
        hex_encode(p, n, buf);
        return json_add(o, key, json_object_new_string(buf));
}
