/*
 * JSON decoding of client messages, with a check of every member, and the
 * builders of the JSON messages the server sends.
 */
#include "msg.h"

#include "jsontext.h"
#include "pack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define WHERE_MAX 64 /* bytes of a member path such as "ops[999].base" */
#define SHOWN_MAX 64 /* bytes of a value quoted in a message */

static const char *const code_names[] = {
    [MSG_ERR_INVALID_JSON] = "invalid_json",
    [MSG_ERR_INVALID_MESSAGE] = "invalid_message",
    [MSG_ERR_UNKNOWN_TYPE] = "unknown_type",
    [MSG_ERR_NOT_JOINED] = "not_joined",
    [MSG_ERR_TOO_LARGE] = "too_large",
    [MSG_ERR_UNAVAILABLE] = "unavailable",
    [MSG_ERR_INTERNAL] = "internal",
    [MSG_ERR_STALE_OPSEQ] = "stale_opseq",
    [MSG_ERR_FORBIDDEN] = "forbidden",
    [MSG_ERR_UNAUTHORIZED] = "unauthorized",
    [MSG_ERR_RATE_LIMITED] = "rate_limited",
};

const char *msg_code_name(msg_err_t code)
{
    if ((size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
        return "internal";
    return code_names[code];
}

void msg_init(msg_t *msg)
{
    memset(msg, 0, sizeof(*msg));
}

void msg_clear(msg_t *msg)
{
    size_t i;

    for (i = 0; i < msg->nops; i++)
        op_clear(&msg->ops[i]);
    free(msg->ops);
    free(msg->token);
    json_decref(msg->state);
    msg_init(msg);
}

/* ---- member checks ---- */

/* Fetches member name of obj, failing when it is missing and required.
 * Returns 0 with *value set (NULL when absent) or -EINVAL. */
static int get_member(const json_t *obj, const char *name, int required,
                      json_t **value, char *err, size_t errlen)
{
    *value = json_object_get(obj, name);
    if (*value == NULL && required)
        return proto_fail(err, errlen, -EINVAL, "%s is missing", name);
    return 0;
}

static int wrong_type(const char *name, const char *expected,
                      const json_t *value, char *err, size_t errlen)
{
    char got[SHOWN_MAX];

    proto_json_describe(value, got, sizeof(got));
    return proto_fail(err, errlen, -EINVAL, "%s must be %s, got %s", name,
                      expected, got);
}

/* Reads a required string member. */
static int get_string(const json_t *obj, const char *name, const char **s,
                      size_t *len, char *err, size_t errlen)
{
    json_t *value;

    if (get_member(obj, name, 1, &value, err, errlen) < 0)
        return -EINVAL;
    if (!json_is_string(value))
        return wrong_type(name, "a string", value, err, errlen);
    *s = json_string_value(value);
    *len = json_string_length(value);
    return 0;
}

static int get_room(const json_t *obj, char *room, char *err, size_t errlen)
{
    const char *s;
    size_t len;

    if (get_string(obj, "room", &s, &len, err, errlen) < 0)
        return -EINVAL;
    if (!proto_room_valid(s, len))
        return wrong_type("room",
                          "1 to 128 characters from A-Z a-z 0-9 . _ : -",
                          json_object_get(obj, "room"), err, errlen);
    memcpy(room, s, len);
    room[len] = '\0';
    return 0;
}

/* Reads a required token member (an id or an actor) into out, which has
 * room for PROTO_ID_MAX + 1 bytes. */
static int get_token(const json_t *obj, const char *name, char *out, char *err,
                     size_t errlen)
{
    const char *s;
    size_t len;

    if (get_string(obj, name, &s, &len, err, errlen) < 0)
        return -EINVAL;
    if (!proto_token_valid(s, len, PROTO_ID_MAX))
        return wrong_type(name, "1 to 64 bytes of printable ASCII",
                          json_object_get(obj, name), err, errlen);
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int opseq_valid(const json_t *value)
{
    json_int_t n;

    if (!json_is_integer(value))
        return 0;
    n = json_integer_value(value);
    return n >= 1 && (uint64_t)n <= VV_COUNTER_MAX;
}

static int get_opseq(const json_t *obj, uint64_t *opseq, char *err,
                     size_t errlen)
{
    json_t *value;

    if (get_member(obj, "opseq", 1, &value, err, errlen) < 0)
        return -EINVAL;
    if (!opseq_valid(value))
        return wrong_type("opseq", "an integer from 1 to 9007199254740991",
                          value, err, errlen);
    *opseq = (uint64_t)json_integer_value(value);
    return 0;
}

/* Reads the "token" of an auth message: 1..MSG_TOKEN_MAX bytes. */
static int get_token_string(const json_t *obj, msg_t *msg, char *err,
                            size_t errlen)
{
    const char *s;
    size_t len;

    if (get_string(obj, "token", &s, &len, err, errlen) < 0)
        return -EINVAL;
    if (len == 0 || len > MSG_TOKEN_MAX)
        return proto_fail(err, errlen, -EINVAL,
                          "token must be 1 to %d bytes, got %zu",
                          MSG_TOKEN_MAX, len);
    msg->token = strndup(s, len);
    return msg->token ? 0 : -ENOMEM;
}

/* Reads the optional "since" of a join: the seq a resuming client holds. */
static int get_since(const json_t *obj, msg_t *msg, char *err, size_t errlen)
{
    json_t *value = json_object_get(obj, "since");
    json_int_t n;

    if (!value)
        return 0;
    n = json_is_integer(value) ? json_integer_value(value) : -1;
    if (n < 0 || (uint64_t)n > VV_COUNTER_MAX)
        return wrong_type("since", "an integer from 0 to 9007199254740991",
                          value, err, errlen);
    msg->since = (uint64_t)n;
    msg->has_since = 1;
    return 0;
}

/* Reads the optional "actor" of a join: the replica's presence key. */
static int get_join_actor(const json_t *obj, msg_t *msg, char *err,
                          size_t errlen)
{
    if (!json_object_get(obj, "actor"))
        return 0;
    if (get_token(obj, "actor", msg->actor, err, errlen) < 0)
        return -EINVAL;
    msg->has_actor = 1;
    return 0;
}

/* ---- presence and claims ---- */

static int read_presence(const json_t *root, const proto_limits_t *limits,
                         msg_t *msg, char *err, size_t errlen)
{
    json_t *state;

    if (get_room(root, msg->room, err, errlen) < 0 ||
        get_member(root, "state", 1, &state, err, errlen) < 0)
        return -EINVAL;
    if (!json_is_object(state))
        return wrong_type("state", "an object", state, err, errlen);
    if (jsontext_length(state, &msg->state_len) < 0)
        return proto_fail(err, errlen, -E2BIG,
                          "state is nested too deeply to encode");
    if (msg->state_len > limits->max_presence)
        return proto_fail(err, errlen, -E2BIG,
                          "state is %zu bytes as JSON, over the limit of %zu",
                          msg->state_len, limits->max_presence);
    msg->state = json_incref(state);
    return 0;
}

/* Reads an optional integer member from 0 to 2^53-1 into *out. */
static int get_count(const json_t *obj, const char *name, uint64_t *out,
                     char *err, size_t errlen)
{
    json_t *value = json_object_get(obj, name);
    json_int_t n;

    if (!value)
        return 0;
    n = json_is_integer(value) ? json_integer_value(value) : -1;
    if (n < 0 || (uint64_t)n > VV_COUNTER_MAX)
        return wrong_type(name, "an integer from 0 to 9007199254740991",
                          value, err, errlen);
    *out = (uint64_t)n;
    return 0;
}

static int get_frames(const json_t *target, msg_target_t *t, char *err,
                      size_t errlen)
{
    json_t *frames = json_object_get(target, "frames");
    const json_t *a = json_array_get(frames, 0), *b = json_array_get(frames, 1);

    if (!json_is_array(frames) || json_array_size(frames) != 2 ||
        !json_is_integer(a) || !json_is_integer(b) ||
        json_integer_value(a) < 0 || json_integer_value(b) < 0 ||
        json_integer_value(a) > json_integer_value(b) ||
        (uint64_t)json_integer_value(b) > VV_COUNTER_MAX)
        return wrong_type("target.frames",
                          "[first, last], integers with 0 <= first <= last",
                          frames, err, errlen);
    t->first = (uint64_t)json_integer_value(a);
    t->last = (uint64_t)json_integer_value(b);
    return 0;
}

static int get_target(const json_t *root, msg_target_t *t, char *err,
                      size_t errlen)
{
    json_t *target;
    char detail[PROTO_ERR_MAX];

    if (get_member(root, "target", 1, &target, err, errlen) < 0)
        return -EINVAL;
    if (!json_is_object(target) ||
        !!json_object_get(target, "id") == !!json_object_get(target, "item"))
        return wrong_type("target", "{\"id\": ID} or {\"item\": ID, "
                          "\"frames\": [first, last]}",
                          target, err, errlen);
    if (json_object_get(target, "id")) {
        if (get_token(target, "id", t->id, detail, sizeof(detail)) < 0)
            return proto_fail(err, errlen, -EINVAL, "target.%s", detail);
        return 0;
    }
    if (get_token(target, "item", t->item, detail, sizeof(detail)) < 0)
        return proto_fail(err, errlen, -EINVAL, "target.%s", detail);
    return get_frames(target, t, err, errlen);
}

static int read_claim(const json_t *root, msg_t *msg, char *err,
                      size_t errlen)
{
    msg->ttl = MSG_TTL_DEFAULT;
    if (get_room(root, msg->room, err, errlen) < 0 ||
        get_target(root, &msg->target, err, errlen) < 0 ||
        get_count(root, "ref", &msg->ref, err, errlen) < 0)
        return -EINVAL;
    if (msg->type == MSG_RELEASE)
        return 0;
    if (get_count(root, "ttl", &msg->ttl, err, errlen) < 0 ||
        msg->ttl < MSG_TTL_MIN || msg->ttl > MSG_TTL_MAX)
        return wrong_type("ttl", "milliseconds from 1000 to 600000",
                          json_object_get(root, "ttl"), err, errlen);
    return 0;
}

/* ---- ops ---- */

static int check_field_name(const char *where, const char *name, char *err,
                            size_t errlen)
{
    size_t len = strlen(name);
    char shown[SHOWN_MAX];

    if (len >= 1 && len <= PROTO_FIELD_MAX)
        return 0;
    proto_quote(name, len, shown, sizeof(shown));
    return proto_fail(err, errlen, -EINVAL,
                      "%s: field name %s must be 1 to %d bytes", where, shown,
                      PROTO_FIELD_MAX);
}

/* Reads an optional object of fields (create "fields" or update "set"). */
static int get_fields(const json_t *j, const char *name, json_t **out,
                      char *err, size_t errlen)
{
    const char *key;
    json_t *value, *field;

    if (get_member(j, name, 0, &value, err, errlen) < 0 || value == NULL)
        return 0;
    if (!json_is_object(value))
        return wrong_type(name, "an object", value, err, errlen);
    json_object_foreach (value, key, field) {
        if (check_field_name(name, key, err, errlen) < 0)
            return -EINVAL;
    }
    *out = json_incref(value);
    return 0;
}

/* Returns 1 when names[0..n) contains name. */
static int names_hold(const json_t *names, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(json_string_value(json_array_get(names, i)), name) == 0)
            return 1;
    }
    return 0;
}

static int check_unset_name(const json_t *unset, size_t i, const json_t *set,
                            char *err, size_t errlen)
{
    json_t *item = json_array_get(unset, i);
    char where[WHERE_MAX], shown[SHOWN_MAX];
    const char *name;

    snprintf(where, sizeof(where), "unset[%zu]", i);
    if (!json_is_string(item))
        return wrong_type(where, "a string", item, err, errlen);
    name = json_string_value(item);
    if (check_field_name(where, name, err, errlen) < 0)
        return -EINVAL;

    proto_quote(name, strlen(name), shown, sizeof(shown));
    if (names_hold(unset, i, name))
        return proto_fail(err, errlen, -EINVAL, "unset lists %s twice", shown);
    if (json_object_get(set, name) != NULL)
        return proto_fail(err, errlen, -EINVAL,
                          "unset names %s, which set writes too", shown);
    return 0;
}

static int get_unset(const json_t *j, const json_t *set, json_t **out,
                     char *err, size_t errlen)
{
    json_t *value;
    size_t i;

    if (get_member(j, "unset", 0, &value, err, errlen) < 0 || value == NULL)
        return 0;
    if (!json_is_array(value))
        return wrong_type("unset", "an array of field names", value, err,
                          errlen);

    /* Names are compared pairwise. The caller checked the field count
     * against the limit first, which keeps this small. */
    for (i = 0; i < json_array_size(value); i++) {
        if (check_unset_name(value, i, set, err, errlen) < 0)
            return -EINVAL;
    }
    *out = json_incref(value);
    return 0;
}

/* Reads the version vector member name ("base", or "vv" in events). */
static int get_vv(const json_t *j, const char *name, vv_t *vv, char *err,
                  size_t errlen)
{
    char detail[PROTO_ERR_MAX];
    json_t *value;
    int rc;

    if (get_member(j, name, 1, &value, err, errlen) < 0)
        return -EINVAL;
    rc = vv_from_json(vv, value, detail, sizeof(detail));
    if (rc == -EINVAL)
        return proto_fail(err, errlen, rc, "%s: %s", name, detail);
    return rc;
}

/* Rejects members that belong to other op types, such as "set" in a
 * create, because they show a client bug that would otherwise be lost. */
static int reject_members(const json_t *j, const char *const *names,
                          const char *op, char *err, size_t errlen)
{
    for (; *names != NULL; names++) {
        if (json_object_get(j, *names) != NULL)
            return proto_fail(err, errlen, -EINVAL, "%s is not allowed in %s",
                              *names, op);
    }
    return 0;
}

static int check_field_count(size_t n, const char *what,
                             const proto_limits_t *limits, char *err,
                             size_t errlen)
{
    if (n <= limits->max_fields)
        return 0;
    return proto_fail(err, errlen, -E2BIG,
                      "%s write %zu fields, over the limit of %zu", what, n,
                      limits->max_fields);
}

static int read_create(const json_t *j, const proto_limits_t *limits, op_t *op,
                       char *err, size_t errlen)
{
    static const char *const others[] = {"set", "unset", NULL};
    json_t *value;
    int rc;

    if (reject_members(j, others, "a create", err, errlen) < 0)
        return -EINVAL;
    if (get_member(j, "kind", 1, &value, err, errlen) < 0)
        return -EINVAL;
    if (!json_is_string(value) || !proto_kind_valid(json_string_value(value)))
        return wrong_type("kind",
                          "an object kind such as bbox, polygon, mask, "
                          "tag, item or category",
                          value, err, errlen);

    op->kind = strdup(json_string_value(value));
    if (op->kind == NULL)
        return -ENOMEM;
    rc = get_fields(j, "fields", &op->fields, err, errlen);
    if (rc < 0)
        return rc;
    return check_field_count(json_object_size(op->fields), "fields", limits,
                             err, errlen);
}

static int read_update(const json_t *j, const proto_limits_t *limits, op_t *op,
                       char *err, size_t errlen)
{
    static const char *const others[] = {"kind", "fields", NULL};
    json_t *unset = json_object_get(j, "unset");
    size_t n;
    int rc;

    if (reject_members(j, others, "an update", err, errlen) < 0)
        return -EINVAL;
    rc = get_fields(j, "set", &op->set, err, errlen);
    if (rc < 0)
        return rc;

    /* Count before comparing unset names pairwise. */
    n = json_object_size(op->set) + json_array_size(unset);
    rc = check_field_count(n, "set and unset", limits, err, errlen);
    if (rc < 0)
        return rc;
    rc = get_unset(j, op->set, &op->unset, err, errlen);
    if (rc < 0)
        return rc;
    if (n == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "set or unset must name at least one field");
    return 0;
}

static int read_delete(const json_t *j, char *err, size_t errlen)
{
    static const char *const others[] = {"kind", "fields", "set", "unset",
                                         NULL};

    return reject_members(j, others, "a delete", err, errlen);
}

/* Reads a restore. Events give it the kind of the restored object. */
static int read_restore(const json_t *j, const proto_limits_t *limits,
                        int is_event, op_t *op, char *err, size_t errlen)
{
    static const char *const others[] = {"set", "unset", NULL};
    json_t *kind = json_object_get(j, "kind");
    int rc;

    if (reject_members(j, others, "a restore", err, errlen) < 0)
        return -EINVAL;
    if (kind != NULL && !is_event)
        return proto_fail(err, errlen, -EINVAL,
                          "kind is not allowed in a restore");
    if (kind != NULL && (!json_is_string(kind) ||
                         !proto_kind_valid(json_string_value(kind))))
        return wrong_type("kind", "an object kind", kind, err, errlen);
    if (kind != NULL && (op->kind = strdup(json_string_value(kind))) == NULL)
        return -ENOMEM;
    rc = get_fields(j, "fields", &op->fields, err, errlen);
    if (rc < 0)
        return rc;
    return check_field_count(json_object_size(op->fields), "fields", limits,
                             err, errlen);
}

static int read_settings(const json_t *j, const proto_limits_t *limits,
                         op_t *op, char *err, size_t errlen)
{
    static const char *const others[] = {"id", "kind", "fields", "unset",
                                         NULL};
    json_t *set;
    int rc;

    if (reject_members(j, others, "a settings op", err, errlen) < 0 ||
        get_member(j, "set", 1, &set, err, errlen) < 0)
        return -EINVAL;
    rc = get_fields(j, "set", &op->set, err, errlen);
    if (rc < 0)
        return rc;
    if (json_object_size(op->set) == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "set must name policy or schema");
    op->id = strdup(OBJ_ROOM_ID);
    if (op->id == NULL)
        return -ENOMEM;
    return check_field_count(json_object_size(op->set), "set", limits, err,
                             errlen);
}

static int read_op_type(const json_t *j, op_type_t *type, char *err,
                        size_t errlen)
{
    const char *s;
    size_t len;

    if (get_string(j, "op", &s, &len, err, errlen) < 0)
        return -EINVAL;
    if (strcmp(s, "create") == 0)
        *type = OP_CREATE;
    else if (strcmp(s, "update") == 0)
        *type = OP_UPDATE;
    else if (strcmp(s, "delete") == 0)
        *type = OP_DELETE;
    else if (strcmp(s, "restore") == 0)
        *type = OP_RESTORE;
    else if (strcmp(s, "settings") == 0)
        *type = OP_SETTINGS;
    else
        return wrong_type("op",
                          "\"create\", \"update\", \"delete\", "
                          "\"restore\" or \"settings\"",
                          json_object_get(j, "op"), err, errlen);
    return 0;
}

static int read_id(const json_t *j, op_t *op, char *err, size_t errlen)
{
    char id[PROTO_ID_MAX + 1];

    if (get_token(j, "id", id, err, errlen) < 0)
        return -EINVAL;
    op->id = strdup(id);
    return op->id == NULL ? -ENOMEM : 0;
}

static int read_body(const json_t *j, const proto_limits_t *limits,
                     int is_event, op_t *op, char *err, size_t errlen)
{
    switch (op->type) {
    case OP_CREATE:
        return read_create(j, limits, op, err, errlen);
    case OP_UPDATE:
        return read_update(j, limits, op, err, errlen);
    case OP_DELETE:
        return read_delete(j, err, errlen);
    case OP_RESTORE:
        return read_restore(j, limits, is_event, op, err, errlen);
    case OP_SETTINGS:
        return read_settings(j, limits, op, err, errlen);
    }
    return -EINVAL;
}

static int read_op(const json_t *j, const proto_limits_t *limits, int is_event,
                   op_t *op, char *err, size_t errlen)
{
    int rc;

    if (!json_is_object(j))
        return wrong_type("op", "an object", j, err, errlen);
    if (read_op_type(j, &op->type, err, errlen) < 0)
        return -EINVAL;
    if (op->type != OP_SETTINGS) {
        rc = read_id(j, op, err, errlen);
        if (rc < 0)
            return rc;
    }
    rc = read_body(j, limits, is_event, op, err, errlen);
    if (rc < 0)
        return rc;

    /* A client's create has no base, but every op of an event has a vv. */
    if (is_event)
        return get_vv(j, "vv", &op->base, err, errlen);
    if (op->type == OP_CREATE)
        return reject_members(j, (const char *const[]){"base", NULL},
                              "a create", err, errlen);
    return get_vv(j, "base", &op->base, err, errlen);
}

int msg_op_from_json(const json_t *j, const proto_limits_t *limits,
                     int is_event, op_t *op, char *err, size_t errlen)
{
    proto_limits_t defaults;
    int rc;

    if (limits == NULL) {
        proto_limits_default(&defaults);
        limits = &defaults;
    }
    op_init(op);
    rc = read_op(j, limits, is_event, op, err, errlen);
    if (rc < 0)
        op_clear(op);
    return rc;
}

/* ---- messages ---- */

/* Returns the nesting depth of the JSON text, counting each array and
 * object as one level, or stop + 1 as soon as it passes stop. Bytes inside
 * strings are skipped; the text need not be valid JSON. */
static size_t text_depth(const char *buf, size_t len, size_t stop)
{
    size_t i, depth = 0, max = 0;
    int in_string = 0;

    for (i = 0; i < len; i++) {
        char c = buf[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
            if (max > stop)
                return max;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

/* Copies jansson's error text into out, replacing bytes that are not
 * printable ASCII because the text may quote the invalid input. */
static void copy_ascii(char *out, size_t outlen, const char *text)
{
    size_t i;

    for (i = 0; text[i] != '\0' && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)text[i];

        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[i] = '\0';
}

static json_t *load(const char *buf, size_t len, const proto_limits_t *limits,
                    msg_error_t *err)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    json_error_t jerr;
    json_t *root;

    if (len > limits->max_message) {
        err->code = MSG_ERR_TOO_LARGE;
        proto_fail(err->message, sizeof(err->message), 0,
                   "the message is %zu bytes, over the limit of %zu bytes", len,
                   limits->max_message);
        return NULL;
    }
    if (text_depth(buf, len, limits->max_depth) > limits->max_depth) {
        err->code = MSG_ERR_TOO_LARGE;
        proto_fail(err->message, sizeof(err->message), 0,
                   "the message nests deeper than the limit of %zu levels",
                   limits->max_depth);
        return NULL;
    }

    root =
        json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        err->code = MSG_ERR_INVALID_JSON;
        copy_ascii(text, sizeof(text), jerr.text);
        proto_fail(err->message, sizeof(err->message), 0,
                   "invalid JSON at line %d, column %d: %s", jerr.line,
                   jerr.column, text);
    }
    return root;
}

/* Copies room and opseq into err when the message carries valid ones, so
 * that an error reply can name them. */
static void peek_ids(const json_t *root, msg_error_t *err)
{
    json_t *room = json_object_get(root, "room");
    json_t *opseq = json_object_get(root, "opseq");

    if (json_is_string(room) &&
        proto_room_valid(json_string_value(room), json_string_length(room)))
        strcpy(err->room, json_string_value(room));
    if (opseq_valid(opseq))
        err->opseq = (uint64_t)json_integer_value(opseq);
}

static int read_ops_array(const json_t *ops, const proto_limits_t *limits,
                          msg_t *msg, char *err, size_t errlen)
{
    char detail[PROTO_ERR_MAX];
    size_t i, n = json_array_size(ops);
    int rc;

    msg->ops = calloc(n, sizeof(*msg->ops));
    if (msg->ops == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        const json_t *j = json_array_get(ops, i);

        if (!json_is_object(j)) {
            snprintf(detail, sizeof(detail), "ops[%zu]", i);
            return wrong_type(detail, "an object", j, err, errlen);
        }
        rc = msg_op_from_json(j, limits, 0, &msg->ops[i], detail,
                              sizeof(detail));
        if (rc < 0)
            return rc == -ENOMEM
                       ? rc
                       : proto_fail(err, errlen, rc, "ops[%zu].%s", i, detail);
        msg->nops = i + 1;
    }
    return 0;
}

static int read_ops(const json_t *root, const proto_limits_t *limits,
                    msg_t *msg, char *err, size_t errlen)
{
    json_t *ops, *atomic;
    size_t n;

    if (get_room(root, msg->room, err, errlen) < 0 ||
        get_token(root, "actor", msg->actor, err, errlen) < 0 ||
        get_opseq(root, &msg->opseq, err, errlen) < 0 ||
        get_member(root, "ops", 1, &ops, err, errlen) < 0)
        return -EINVAL;
    msg->has_opseq = 1;

    atomic = json_object_get(root, "atomic");
    if (atomic != NULL && !json_is_boolean(atomic))
        return wrong_type("atomic", "a boolean", atomic, err, errlen);
    msg->atomic = json_is_true(atomic);

    if (!json_is_array(ops))
        return wrong_type("ops", "an array of ops", ops, err, errlen);
    n = json_array_size(ops);
    if (n == 0)
        return proto_fail(err, errlen, -EINVAL,
                          "ops must contain at least one op");
    if (n > limits->max_ops)
        return proto_fail(err, errlen, -E2BIG,
                          "the batch contains %zu ops, over the limit of %zu",
                          n, limits->max_ops);
    return read_ops_array(ops, limits, msg, err, errlen);
}

static int read_message(const json_t *root, const proto_limits_t *limits,
                        msg_t *msg, msg_error_t *err)
{
    char *text = err->message;
    size_t len = sizeof(err->message);
    const char *type;
    size_t type_len;

    if (get_string(root, "type", &type, &type_len, text, len) < 0)
        return -EINVAL;
    if (strcmp(type, "join") == 0) {
        msg->type = MSG_JOIN;
        if (get_room(root, msg->room, text, len) < 0 ||
            get_join_actor(root, msg, text, len) < 0)
            return -EINVAL;
        return get_since(root, msg, text, len);
    }
    if (strcmp(type, "presence") == 0) {
        msg->type = MSG_PRESENCE;
        return read_presence(root, limits, msg, text, len);
    }
    if (strcmp(type, "claim") == 0 || strcmp(type, "release") == 0) {
        msg->type = type[0] == 'c' ? MSG_CLAIM : MSG_RELEASE;
        return read_claim(root, msg, text, len);
    }
    if (strcmp(type, "leave") == 0) {
        msg->type = MSG_LEAVE;
        return get_room(root, msg->room, text, len);
    }
    if (strcmp(type, "ops") == 0) {
        msg->type = MSG_OPS;
        return read_ops(root, limits, msg, text, len);
    }
    if (strcmp(type, "auth") == 0) {
        msg->type = MSG_AUTH;
        return get_token_string(root, msg, text, len);
    }

    err->code = MSG_ERR_UNKNOWN_TYPE;
    return wrong_type("type",
                      "\"join\", \"leave\", \"ops\", \"auth\", "
                      "\"presence\", \"claim\" or \"release\"",
                      json_object_get(root, "type"), text, len);
}

static void error_init(msg_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->code = MSG_ERR_INVALID_MESSAGE;
}

/* Decodes a message already parsed into root (taking the reference);
 * expected names the form a message must have in its encoding. */
static int decode_root(json_t *root, const char *expected,
                       const proto_limits_t *limits, msg_t *msg,
                       msg_error_t *err)
{
    int rc;

    if (!json_is_object(root)) {
        err->code = MSG_ERR_INVALID_JSON;
        rc = wrong_type("a message", expected, root, err->message,
                        sizeof(err->message));
        json_decref(root);
        return rc;
    }

    peek_ids(root, err);
    rc = read_message(root, limits, msg, err);
    json_decref(root);
    if (rc == -E2BIG)
        err->code = MSG_ERR_TOO_LARGE;
    if (rc == -ENOMEM) {
        err->code = MSG_ERR_INTERNAL;
        snprintf(err->message, sizeof(err->message), "out of memory");
    }
    if (rc < 0)
        msg_clear(msg);
    return rc;
}

int msg_decode_json(const char *buf, size_t len, const proto_limits_t *limits,
                    msg_t *msg, msg_error_t *err)
{
    proto_limits_t defaults;
    json_t *root;

    msg_init(msg);
    error_init(err);
    if (limits == NULL) {
        proto_limits_default(&defaults);
        limits = &defaults;
    }

    root = load(buf, len, limits, err);
    if (root == NULL)
        return err->code == MSG_ERR_TOO_LARGE ? -E2BIG : -EINVAL;
    return decode_root(root, "a JSON object", limits, msg, err);
}

int msg_decode_msgpack(const char *buf, size_t len,
                       const proto_limits_t *limits, msg_t *msg,
                       msg_error_t *err)
{
    proto_limits_t defaults;
    size_t depth;
    json_t *root = NULL;

    msg_init(msg);
    error_init(err);
    if (limits == NULL) {
        proto_limits_default(&defaults);
        limits = &defaults;
    }
    if (len > limits->max_message) {
        err->code = MSG_ERR_TOO_LARGE;
        snprintf(err->message, sizeof(err->message),
                 "the message has %zu bytes, over the limit of %zu", len,
                 limits->max_message);
        return -E2BIG;
    }

    depth = limits->max_depth < PACK_DEPTH_MAX ? limits->max_depth
                                               : PACK_DEPTH_MAX;
    if (unpack_json(buf, len, depth, &root, err->message,
                    sizeof(err->message)) < 0) {
        err->code = MSG_ERR_INVALID_JSON;
        return -EINVAL;
    }
    return decode_root(root, "a msgpack map", limits, msg, err);
}

/* ---- server messages ---- */

/* Returns a JSON string of text, with bytes that are not printable ASCII
 * replaced when text is not valid UTF-8. */
static json_t *safe_string(const char *text)
{
    char copy[PROTO_ERR_MAX];
    json_t *s = json_string(text);

    if (s != NULL)
        return s;
    copy_ascii(copy, sizeof(copy), text);
    return json_string(copy);
}

json_t *msg_error_json(const msg_error_t *err)
{
    json_t *j = json_pack("{s:s, s:s, s:o}", "type", "error", "code",
                          msg_code_name(err->code), "message",
                          safe_string(err->message));

    if (j == NULL)
        return NULL;
    if (err->room[0] != '\0' &&
        json_object_set_new(j, "room", json_string(err->room)) < 0)
        goto fail;
    if (err->opseq != 0 &&
        json_object_set_new(j, "opseq", json_integer((json_int_t)err->opseq)) <
            0)
        goto fail;
    return j;

fail:
    json_decref(j);
    return NULL;
}

static const char *status_name(res_status_t status)
{
    switch (status) {
    case RES_APPLIED:
        return "applied";
    case RES_MERGED:
        return "merged";
    case RES_CONFLICT:
        return "conflict";
    case RES_REJECTED:
        return "rejected";
    }
    return "rejected";
}

/* Builds one entry of an ack's results. */
static json_t *result_json(const char *id, const op_result_t *res)
{
    json_t *j = json_pack("{s:s}", "status", status_name(res->status));
    int rc = 0;

    if (j == NULL)
        return NULL;
    if (id != NULL)
        rc |= json_object_set_new(j, "id", json_string(id));
    if (res->reason != NULL)
        rc |= json_object_set_new(j, "reason", json_string(res->reason));
    if (res->status == RES_REJECTED)
        rc |= json_object_set_new(j, "message", safe_string(res->message));
    else
        rc |= json_object_set_new(j, "vv", vv_to_json(&res->vv));
    if (res->conflicts != NULL)
        rc |= json_object_set(j, "conflicts", res->conflicts);
    if (res->overwritten != NULL)
        rc |= json_object_set(j, "overwritten", res->overwritten);
    if (rc != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *msg_ack_json(const char *room, uint64_t opseq, uint64_t seq,
                     const char *const *ids, const op_result_t *results,
                     size_t n)
{
    json_t *list = json_array();
    json_t *j;
    size_t i;

    for (i = 0; list != NULL && i < n; i++) {
        const char *id = ids != NULL ? ids[i] : NULL;

        if (json_array_append_new(list, result_json(id, &results[i])) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (list == NULL)
        return NULL;

    j = json_pack("{s:s, s:s, s:I}", "type", "ack", "room", room, "opseq",
                  (json_int_t)opseq);
    if (j != NULL && seq != 0 &&
        json_object_set_new(j, "seq", json_integer((json_int_t)seq)) < 0) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL || json_object_set_new(j, "results", list) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *msg_left_json(const char *room)
{
    return json_pack("{s:s, s:s}", "type", "left", "room", room);
}

static const char *op_name(op_type_t type)
{
    switch (type) {
    case OP_CREATE:
        return "create";
    case OP_UPDATE:
        return "update";
    case OP_DELETE:
        return "delete";
    case OP_RESTORE:
        return "restore";
    case OP_SETTINGS:
        return "settings";
    }
    return "delete";
}

json_t *msg_event_op_json(const op_t *op, const vv_t *vv)
{
    int writes_fields = op->type == OP_CREATE || op->type == OP_RESTORE;
    int writes_set = op->type == OP_UPDATE || op->type == OP_SETTINGS;
    json_t *j = json_pack("{s:s}", "op", op_name(op->type));
    int rc = 0;

    if (j == NULL)
        return NULL;
    if (op->type != OP_SETTINGS)
        rc |= json_object_set_new(j, "id", json_string(op->id));
    if (writes_fields && op->kind != NULL)
        rc |= json_object_set_new(j, "kind", json_string(op->kind));
    if (writes_fields && op->fields != NULL)
        rc |= json_object_set(j, "fields", op->fields);
    if (writes_set && op->set != NULL)
        rc |= json_object_set(j, "set", op->set);
    if (op->type == OP_UPDATE && op->unset != NULL)
        rc |= json_object_set(j, "unset", op->unset);
    rc |= json_object_set_new(j, "vv", vv_to_json(vv));
    if (rc != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}
