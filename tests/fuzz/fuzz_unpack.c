/*
 * libFuzzer target: decodes arbitrary bytes with unpack_json() and
 * unpack_obj(), as the server does with what it reads from Redis. A value
 * or stored object that unpacks is packed again and must unpack to an
 * equal one. A value that unpacks is also written as JSON text by
 * jsontext_dump() and must parse to an equal value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "pack.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Packs j and checks that it unpacks to an equal value. */
static void repack(const json_t *j)
{
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    json_t *back = NULL;

    msgpack_sbuffer_init(&sbuf);
    if (pack_json(&sbuf, j) == 0) {
        if (unpack_json(sbuf.data, sbuf.size, PACK_DEPTH_MAX, &back, err,
                        sizeof(err)) != 0 ||
            !json_equal(back, j))
            abort();
        json_decref(back);
    }
    msgpack_sbuffer_destroy(&sbuf);
}

/* Writes j as JSON text and checks that the text parses to an equal
 * value, reals staying reals. */
static void retext(const json_t *j)
{
    char *text = jsontext_dumps(j);
    json_t *back;

    if (!text)
        abort();
    back = json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!back || !json_equal(back, j))
        abort();
    json_decref(back);
    free(text);
}

/* Packs a stored object and checks that it unpacks to an equal object. */
static void repack_obj(const obj_t *obj)
{
    char err[PROTO_ERR_MAX];
    msgpack_sbuffer sbuf;
    obj_t *back = NULL;

    msgpack_sbuffer_init(&sbuf);
    if (pack_obj(&sbuf, obj) != 0 ||
        unpack_obj(sbuf.data, sbuf.size, obj->id, obj->rev, &back, err,
                   sizeof(err)) != 0 ||
        !obj_equal(back, obj))
        abort();
    obj_free(back);
    msgpack_sbuffer_destroy(&sbuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[PROTO_ERR_MAX];
    json_t *j = NULL;
    obj_t *obj = NULL;

    if (unpack_json(buf, size, PACK_DEPTH_MAX, &j, err, sizeof(err)) == 0) {
        repack(j);
        retext(j);
        json_decref(j);
    }

    /* The parity of the size chooses the id, so that the room settings
     * object and its kind "room" are reached too. */
    if (unpack_obj(buf, size, size % 2 ? OBJ_ROOM_ID : "o1", 7, &obj, err,
                   sizeof(err)) == 0) {
        repack_obj(obj);
        obj_free(obj);
    }
    return 0;
}
