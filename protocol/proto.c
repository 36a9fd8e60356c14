/*
 * Shared helpers of the protocol library: default limits, name checks and
 * the formatting of error messages.
 */
#include "proto.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define QUOTE_MAX 40 /* bytes of a quoted value shown in a message */

static const char *const kinds[] = {
    "bbox",   "polygon",  "polyline",  "points",   "ellipse",
    "cuboid", "mask",     "keypoints", "skeleton", "tag",
    "span",   "relation", "item",      "category",
};

void proto_limits_default(proto_limits_t *limits)
{
    limits->max_message = 1024 * 1024;
    limits->max_ops = 1000;
    limits->max_fields = 256;
    /* Server messages nest one level deeper than the client message they
     * reply to (an ack's conflicts, an event's overwritten values), and
     * msgpack-c reads at most PACK_DEPTH_MAX (32) levels. */
    limits->max_depth = 31;
    limits->max_presence = 4096;
}

static int room_char(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    if (c >= '0' && c <= '9')
        return 1;
    return c == '.' || c == '_' || c == ':' || c == '-';
}

int proto_room_valid(const char *name, size_t len)
{
    size_t i;

    if (name == NULL || len == 0 || len > PROTO_ROOM_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if (!room_char((unsigned char)name[i]))
            return 0;
    }
    return 1;
}

int proto_token_valid(const char *s, size_t len, size_t max)
{
    size_t i;

    if (s == NULL || len == 0 || len > max)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x21 || c > 0x7e)
            return 0;
    }
    return 1;
}

int proto_kind_valid(const char *kind)
{
    size_t i;

    if (kind == NULL)
        return 0;
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kind, kinds[i]) == 0)
            return 1;
    }
    return 0;
}

/* Returns the largest n <= len such that s[0..n) does not end inside a
 * UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len)
{
    size_t n = len;

    while (n > 0 && ((unsigned char)s[n - 1] & 0xc0) == 0x80)
        n--;
    if (n == 0)
        return len;

    /* s[n - 1] starts a sequence: keep it only when it is complete. */
    unsigned char lead = (unsigned char)s[n - 1];
    size_t need = 1;

    if (lead >= 0xf0)
        need = 4;
    else if (lead >= 0xe0)
        need = 3;
    else if (lead >= 0xc0)
        need = 2;
    return len - (n - 1) >= need ? len : n - 1;
}

const char *proto_quote(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t n = len, i, o = 0;
    int cut = 0;

    if (buflen == 0)
        return buf;
    if (n > QUOTE_MAX) {
        n = utf8_cut(s, QUOTE_MAX);
        cut = 1;
    }

    /* Room for the quotes, "..." and the NUL. */
    if (buflen < n + 6) {
        buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Writes a real so that it reads as one: 12.0 rather than 12. */
static void describe_real(double value, char *buf, size_t buflen)
{
    size_t n;

    snprintf(buf, buflen, "%.17g", value);
    n = strlen(buf);
    if (strpbrk(buf, ".eEn") == NULL && n + 3 <= buflen)
        memcpy(buf + n, ".0", 3);
}

const char *proto_json_describe(const struct json_t *j, char *buf,
                                size_t buflen)
{
    const char *text = "nothing";

    if (buflen == 0)
        return buf;
    if (j == NULL) {
        snprintf(buf, buflen, "%s", text);
        return buf;
    }
    switch (json_typeof(j)) {
    case JSON_STRING:
        return proto_quote(json_string_value(j), json_string_length(j), buf,
                           buflen);
    case JSON_INTEGER:
        snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return buf;
    case JSON_REAL:
        describe_real(json_real_value(j), buf, buflen);
        return buf;
    case JSON_OBJECT:
        text = "an object";
        break;
    case JSON_ARRAY:
        text = "an array";
        break;
    case JSON_TRUE:
        text = "true";
        break;
    case JSON_FALSE:
        text = "false";
        break;
    case JSON_NULL:
        text = "null";
        break;
    }
    snprintf(buf, buflen, "%s", text);
    return buf;
}

int proto_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || errlen == 0)
        return code;
    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);

    if (n < 0)
        err[0] = '\0';
    else if ((size_t)n >= errlen)
        err[utf8_cut(err, errlen - 1)] = '\0';
    return code;
}
