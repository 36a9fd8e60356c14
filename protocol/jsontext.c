/*
 * Compact JSON text of jansson values, with short floats.
 *
 * Text goes through a small staging buffer, so write() is called per few
 * kilobytes rather than per token.
 */
#include "jsontext.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 2048
#define STAGE_SIZE 4096
#define FIXED_DECIMALS_MAX 9        /* decimals the fixed-point path tries */
#define FIXED_ABS_MAX 1e15          /* larger values use "%g" */
#define EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */

static const double pow10_table[FIXED_DECIMALS_MAX + 1] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
};

typedef struct out {
    char stage[STAGE_SIZE];
    size_t len;
    jsontext_write_fn write;
    void *arg;
    int failed;
} out_t;

static void flush(out_t *o)
{
    if (o->len > 0 && !o->failed && o->write(o->stage, o->len, o->arg) < 0)
        o->failed = 1;
    o->len = 0;
}

static void put(out_t *o, const char *text, size_t len)
{
    if (len > STAGE_SIZE - o->len) {
        flush(o);
        if (len > STAGE_SIZE) {
            if (!o->failed && o->write(text, len, o->arg) < 0)
                o->failed = 1;
            return;
        }
    }
    memcpy(o->stage + o->len, text, len);
    o->len += len;
}

static void put_char(out_t *o, char c)
{
    if (o->len == STAGE_SIZE)
        flush(o);
    o->stage[o->len++] = c;
}

/* Writes the decimal digits of v at the end of buf and returns where they
 * start. */
static char *digits_of(uint64_t v, char *end)
{
    char *p = end;

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static size_t format_integer(int64_t v, char *buf)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = digits_of(mag, end);
    size_t n = 0;

    if (v < 0)
        buf[n++] = '-';
    memcpy(buf + n, p, (size_t)(end - p));
    return n + (size_t)(end - p);
}

/* Writes the integer n scaled down by 10^decimals, such as 23954 and 2 as
 * 239.54, or n and 0 as n.0. */
static size_t format_fixed(int64_t n, int decimals, char *buf)
{
    char tmp[32];
    char *end = tmp + sizeof(tmp);
    uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    char *p = digits_of(mag, end);
    size_t len = 0, ndigits;

    while (end - p <= decimals)
        *--p = '0';
    ndigits = (size_t)(end - p);
    if (n < 0)
        buf[len++] = '-';
    memcpy(buf + len, p, ndigits - (size_t)decimals);
    len += ndigits - (size_t)decimals;
    buf[len++] = '.';
    if (decimals == 0) {
        buf[len++] = '0';
    } else {
        memcpy(buf + len, end - decimals, (size_t)decimals);
        len += (size_t)decimals;
    }
    return len;
}

/* Removes the trailing zeros of n as decimals, so 2500 with 3 decimals
 * becomes 25 with 1: the same number in fewer digits. */
static int64_t drop_zeros(int64_t n, int *decimals)
{
    while (*decimals > 0 && n % 10 == 0) {
        n /= 10;
        (*decimals)--;
    }
    return n;
}

/* Tries d as an integer n over a power of ten 10^k. The quotient of two
 * exact doubles is correctly rounded, so when n / 10^k equals d, the
 * decimal text of n with k decimals reads back as d. Returns the length,
 * or 0 when no k up to FIXED_DECIMALS_MAX works. */
static size_t try_fixed(double d, char *buf)
{
    if (fabs(d) >= FIXED_ABS_MAX)
        return 0;
    for (int k = 0; k <= FIXED_DECIMALS_MAX; k++) {
        double scaled = d * pow10_table[k];

        if (fabs(scaled) >= EXACT_INT_LIMIT)
            return 0;
        if (scaled == trunc(scaled) && scaled / pow10_table[k] == d) {
            int64_t n = drop_zeros((int64_t)scaled, &k);

            return format_fixed(n, k, buf);
        }
    }
    return 0;
}

size_t jsontext_real(double d, char *buf)
{
    size_t len;
    int precision;

    if (d == 0) {
        len = signbit(d) ? 4 : 3;
        memcpy(buf, signbit(d) ? "-0.0" : "0.0", len + 1);
        return len;
    }
    len = try_fixed(d, buf);
    if (len > 0) {
        buf[len] = '\0';
        return len;
    }
    /* 15 significant digits read back for every decimal of up to 15
     * digits, and 17 for every double. */
    for (precision = 15; precision < 17; precision++) {
        snprintf(buf, JSONTEXT_REAL_MAX, "%.*g", precision, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (precision == 17)
        snprintf(buf, JSONTEXT_REAL_MAX, "%.17g", d);
    len = strlen(buf);
    if (!strpbrk(buf, ".e")) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    return len;
}

/* Writes a string with the escapes jansson uses: quote, backslash, and
 * the control characters, \u00XX for those without a short form. */
static void put_string(out_t *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = 0;

    put_char(o, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char seq[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            memcpy(seq, "\\u00", 4);
            seq[4] = hex[c >> 4];
            seq[5] = hex[c & 0xf];
            seq[6] = '\0';
            esc = seq;
        }
        put(o, esc, strlen(esc));
    }
    put(o, s + start, len - start);
    put_char(o, '"');
}

static void put_value(out_t *o, const json_t *j, int depth);

static void put_object(out_t *o, const json_t *j, int depth)
{
    void *iter = json_object_iter((json_t *)j);
    int first = 1;

    put_char(o, '{');
    for (; iter && !o->failed;
         iter = json_object_iter_next((json_t *)j, iter)) {
        if (!first)
            put_char(o, ',');
        first = 0;
        put_string(o, json_object_iter_key(iter),
                   json_object_iter_key_len(iter));
        put_char(o, ':');
        put_value(o, json_object_iter_value(iter), depth + 1);
    }
    put_char(o, '}');
}

static void put_array(out_t *o, const json_t *j, int depth)
{
    size_t n = json_array_size(j);

    put_char(o, '[');
    for (size_t i = 0; i < n && !o->failed; i++) {
        if (i > 0)
            put_char(o, ',');
        put_value(o, json_array_get(j, i), depth + 1);
    }
    put_char(o, ']');
}

static void put_value(out_t *o, const json_t *j, int depth)
{
    char num[JSONTEXT_REAL_MAX];

    if (!j || depth > DEPTH_MAX) {
        o->failed = 1;
        return;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        put_object(o, j, depth);
        break;
    case JSON_ARRAY:
        put_array(o, j, depth);
        break;
    case JSON_STRING:
        put_string(o, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        put(o, num, format_integer(json_integer_value(j), num));
        break;
    case JSON_REAL:
        put(o, num, jsontext_real(json_real_value(j), num));
        break;
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    case JSON_NULL:
        put(o, "null", 4);
        break;
    }
}

int jsontext_dump(const json_t *j, jsontext_write_fn write, void *arg)
{
    out_t *o = malloc(sizeof(*o));
    int rc;

    if (!o)
        return -1;
    o->len = 0;
    o->write = write;
    o->arg = arg;
    o->failed = 0;
    put_value(o, j, 0);
    flush(o);
    rc = o->failed ? -1 : 0;
    free(o);
    return rc;
}

typedef struct text {
    char *data;
    size_t len, cap;
} text_t;

static int append_text(const char *piece, size_t len, void *arg)
{
    text_t *t = arg;

    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char *grown;

        while (cap < t->len + len + 1)
            cap *= 2;
        grown = realloc(t->data, cap);
        if (!grown)
            return -1;
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, piece, len);
    t->len += len;
    t->data[t->len] = '\0';
    return 0;
}

char *jsontext_dumps(const json_t *j)
{
    text_t t = {NULL, 0, 0};

    if (jsontext_dump(j, append_text, &t) < 0 || !t.data) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

static int count_text(const char *piece, size_t len, void *arg)
{
    (void)piece;
    *(size_t *)arg += len;
    return 0;
}

int jsontext_length(const json_t *j, size_t *len)
{
    *len = 0;
    return jsontext_dump(j, count_text, len);
}
