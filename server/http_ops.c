/*
 * Op batches over HTTP, COCO import and COCO export.
 *
 * A POST of an op batch goes through the same apply path as a WebSocket
 * batch (room_submit_sink()), with the request as the reply sink. A batch
 * of more than --max-ops ops is applied in slices of at most --max-ops
 * ops, one after the other. Slice k (from 0) is the batch of opseq
 * OPSEQ + k. So a retry of the whole request gets the stored ack of every
 * slice that applied, and only the other slices are applied. This module
 * decodes, slices and collects the acks; the merge decides the edits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coco.h"
#include "http_int.h"
#include "log.h"
#include "metrics.h"
#include "obj.h"
#include "pack.h"
#include "room.h"
#include "vv.h"

/* Slices of one request, at most: the acks Redis keeps per actor and
 * room (STORE_ACKS_KEPT), so that a retry finds the ack of every slice. */
#define SLICES_MAX 256

typedef struct {
    http_pending_t p;
    char room[PROTO_ROOM_MAX + 1];
    char actor[PROTO_ID_MAX + 1];
    uint64_t opseq; /* of the first slice */
    msg_t *slices;
    size_t nslices;
    size_t next; /* the slice whose ack is awaited */
    jwt_role_t role;
    char sub[JWT_SUB_MAX + 1]; /* of the request's token */
    json_t *results; /* of the slices acked so far */
    uint64_t seq;    /* the last seq that applied, 0 when none */
    json_t *extra;   /* members added to the response (import) */
} ops_req_t;

static void free_req(ops_req_t *req)
{
    for (size_t i = 0; i < req->nslices; i++)
        msg_clear(&req->slices[i]);
    free(req->slices);
    json_decref(req->results);
    json_decref(req->extra);
    free(req);
}

static void submit_next(ops_req_t *req);

static void respond_done(ops_req_t *req)
{
    json_t *body = json_pack("{s:s, s:I, s:I, s:O}", "room", req->room, "opseq",
                             (json_int_t)req->opseq, "last_opseq",
                             (json_int_t)(req->opseq + req->nslices - 1),
                             "results", req->results);

    if (body && req->seq > 0)
        json_object_set_new(body, "seq", json_integer((json_int_t)req->seq));
    if (body && req->extra)
        json_object_update(body, req->extra);
    if (http_respond(req->p.wsi, req->p.h, 200, body) < 0)
        http_error(req->p.wsi, req->p.h, 500, "internal",
                   "cannot build the response");
}

static void on_ack(const json_t *ack, void *arg)
{
    ops_req_t *req = arg;
    json_t *seq = json_object_get(ack, "seq");

    if (req->p.cancelled) {
        free_req(req);
        return;
    }
    json_array_extend(req->results, json_object_get(ack, "results"));
    if (json_is_integer(seq) && (uint64_t)json_integer_value(seq) > req->seq)
        req->seq = (uint64_t)json_integer_value(seq);
    if (++req->next < req->nslices) {
        submit_next(req);
        return;
    }
    http_pending_finish(&req->p);
    respond_done(req);
    free_req(req);
}

static void on_fail(msg_err_t code, const char *message, void *arg)
{
    ops_req_t *req = arg;

    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, http_status_of(code),
                   msg_code_name(code), "%s", message);
    free_req(req);
}

static const room_sink_t ops_sink = {on_ack, on_fail};

/* Hands the next slice to the room. The sink may respond, and free req,
 * before this returns. */
static void submit_next(ops_req_t *req)
{
    msg_t *m = &req->slices[req->next];
    int rc = room_submit_sink(req->room, m, req->role, req->sub, &ops_sink,
                              req);

    if (rc == 0)
        return;
    if (http_pending_finish(&req->p))
        http_error(req->p.wsi, req->p.h, 503, "unavailable",
                   "room %s cannot be opened while Redis is unreachable; "
                   "retry later",
                   req->room);
    free_req(req);
}

/* Decodes ops[first, first + n) into slice m. Returns 0, or -1 after
 * queueing a 400 or 413 response. */
static int decode_slice(struct lws *wsi, http_t *h, const ops_req_t *req,
                        const json_t *ops, size_t first, size_t n, int atomic,
                        msg_t *m)
{
    char detail[PROTO_ERR_MAX];

    msg_init(m);
    m->type = MSG_OPS;
    snprintf(m->room, sizeof(m->room), "%s", req->room);
    snprintf(m->actor, sizeof(m->actor), "%s", req->actor);
    m->opseq = req->opseq + req->nslices;
    m->has_opseq = 1;
    m->atomic = atomic;
    m->ops = calloc(n, sizeof(*m->ops));
    if (!m->ops)
        return http_error(wsi, h, 500, "internal", "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *j = json_array_get(ops, first + i);
        int rc = -EINVAL;

        if (json_is_object(j))
            rc = msg_op_from_json(j, &http_cfg->limits, 0, &m->ops[i], detail,
                                  sizeof(detail));
        else
            snprintf(detail, sizeof(detail), "must be an object");
        if (rc < 0) {
            http_error(wsi, h, rc == -E2BIG ? 413 : 400,
                       rc == -E2BIG ? "too_large" : "invalid_message",
                       "ops[%zu]%s%s", first + i,
                       json_is_object(j) ? "." : ": ", detail);
            return -1;
        }
        m->nops = i + 1;
    }
    return 0;
}

/* Checks the batch's size against the slicing rules. Returns the number
 * of slices, or 0 after queueing an error. */
static size_t count_slices(struct lws *wsi, http_t *h, size_t nops,
                           uint64_t opseq, int atomic)
{
    size_t max = http_cfg->limits.max_ops;
    size_t n = (nops + max - 1) / max;

    if (nops == 0)
        return http_error(wsi, h, 400, "invalid_message",
                          "ops must contain at least one op"),
               0;
    if (atomic && n > 1)
        return http_error(wsi, h, 413, "too_large",
                          "an atomic batch holds at most %zu ops "
                          "(--max-ops); it has %zu",
                          max, nops),
               0;
    if (n > SLICES_MAX)
        return http_error(wsi, h, 413, "too_large",
                          "a batch holds at most %d slices of %zu ops; it "
                          "has %zu ops",
                          SLICES_MAX, max, nops),
               0;
    if (opseq > VV_COUNTER_MAX - (n - 1))
        return http_error(wsi, h, 400, "invalid_message",
                          "opseq + slices - 1 must stay below 2^53"),
               0;
    return n;
}

int http_ops_apply(struct lws *wsi, http_t *h, const char *actor,
                   uint64_t opseq, const json_t *ops, int atomic, json_t *extra)
{
    size_t nops = json_array_size(ops), max = http_cfg->limits.max_ops;
    size_t n = count_slices(wsi, h, nops, opseq, atomic);
    ops_req_t *req;

    if (n == 0) {
        json_decref(extra);
        return 0;
    }
    req = calloc(1, sizeof(*req));
    if (req)
        req->slices = calloc(n, sizeof(*req->slices));
    if (!req || !req->slices || !(req->results = json_array())) {
        free(req ? req->slices : NULL);
        free(req);
        json_decref(extra);
        return http_error(wsi, h, 500, "internal", "out of memory");
    }
    snprintf(req->room, sizeof(req->room), "%s", h->room);
    snprintf(req->actor, sizeof(req->actor), "%s", actor);
    req->opseq = opseq;
    req->role = h->role;
    snprintf(req->sub, sizeof(req->sub), "%s", h->claims.sub);
    req->extra = extra;
    while (req->nslices < n) {
        size_t first = req->nslices * max;
        size_t len = nops - first < max ? nops - first : max;

        if (decode_slice(wsi, h, req, ops, first, len, atomic,
                         &req->slices[req->nslices]) < 0) {
            msg_clear(&req->slices[req->nslices]);
            free_req(req);
            return 0;
        }
        req->nslices++;
    }
    http_pending_start(&req->p, wsi, h);
    submit_next(req);
    return 0;
}

/* Reads actor, opseq and atomic of a batch body. Returns 0, or -1 after
 * queueing a 400. */
static int batch_header(struct lws *wsi, http_t *h, const json_t *root,
                        const char **actor, uint64_t *opseq, int *atomic)
{
    const json_t *a = json_object_get(root, "actor");
    const json_t *o = json_object_get(root, "opseq");
    const json_t *at = json_object_get(root, "atomic");

    if (!json_is_string(a) ||
        !proto_token_valid(json_string_value(a), json_string_length(a),
                           PROTO_ID_MAX))
        return http_error(wsi, h, 400, "invalid_message",
                          "actor: expected 1 to 64 printable ASCII "
                          "characters"),
               -1;
    if (!json_is_integer(o) || json_integer_value(o) < 1 ||
        (uint64_t)json_integer_value(o) > VV_COUNTER_MAX)
        return http_error(wsi, h, 400, "invalid_message",
                          "opseq: expected an integer from 1 to "
                          "9007199254740991"),
               -1;
    if (at && !json_is_boolean(at))
        return http_error(wsi, h, 400, "invalid_message",
                          "atomic: expected a boolean"),
               -1;
    if (!json_is_array(json_object_get(root, "ops")))
        return http_error(wsi, h, 400, "invalid_message",
                          "ops: expected an array of ops"),
               -1;
    *actor = json_string_value(a);
    *opseq = (uint64_t)json_integer_value(o);
    *atomic = json_is_true(at);
    return 0;
}

int http_ops_post(struct lws *wsi, http_t *h)
{
    json_t *root = http_parse_body(wsi, h);
    const char *actor;
    uint64_t opseq;
    int atomic, rc = 0;

    if (!root)
        return 0;
    if (!json_is_object(root))
        http_error(wsi, h, 400, "invalid_json",
                   "the body must be an object {actor, opseq, ops}");
    else if (batch_header(wsi, h, root, &actor, &opseq, &atomic) == 0)
        rc = http_ops_apply(wsi, h, actor, opseq, json_object_get(root, "ops"),
                            atomic, NULL);
    json_decref(root);
    return rc;
}

/* COCO import */

uint64_t http_clock_opseq(void)
{
    static uint64_t last;
    struct timespec ts;
    uint64_t now;

    /* Microseconds since 1970 stay below 2^53 until the year 2255. */
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    last = now > last ? now : last + 1;
    return last;
}

/* Reads the actor and opseq of an import from the query, with defaults
 * that make each import a new batch. Returns 0 or -EINVAL. */
static int import_ids(struct lws *wsi, char *actor, size_t actor_len,
                      uint64_t *opseq)
{
    char buf[PROTO_ID_MAX + 16], num[48];
    const char *a = http_query(wsi, "actor=", buf, sizeof(buf));
    const char *o = http_query(wsi, "opseq=", num, sizeof(num));
    char *end;

    snprintf(actor, actor_len, "%s", a ? a : "coco-import");
    if (!proto_token_valid(actor, strlen(actor), PROTO_ID_MAX))
        return -EINVAL;
    if (!o) {
        *opseq = http_clock_opseq();
        return 0;
    }
    *opseq = strtoull(o, &end, 10);
    return o[0] >= '0' && o[0] <= '9' && !*end && *opseq >= 1 &&
                   *opseq <= VV_COUNTER_MAX
               ? 0
               : -EINVAL;
}

static int check_format(struct lws *wsi, http_t *h)
{
    char buf[32];
    const char *format = http_query(wsi, "format=", buf, sizeof(buf));

    if (format && strcmp(format, "coco") != 0)
        return http_error(wsi, h, 400, "invalid_message",
                          "format: only coco is supported"),
               -1;
    return 0;
}

int http_ops_import(struct lws *wsi, http_t *h)
{
    char actor[PROTO_ID_MAX + 1], prefix[80], err[PROTO_ERR_MAX];
    json_t *root, *ops = NULL, *skipped = NULL;
    uint64_t opseq;
    int rc;

    if (check_format(wsi, h) < 0)
        return 0;
    if (import_ids(wsi, actor, sizeof(actor), &opseq) < 0)
        return http_error(wsi, h, 400, "invalid_message",
                          "actor or opseq of the query is invalid");
    root = http_parse_body(wsi, h);
    if (!root)
        return 0;
    rc = coco_import(root, http_query(wsi, "prefix=", prefix, sizeof(prefix)),
                     &ops, &skipped, err, sizeof(err));
    if (rc < 0) {
        json_decref(root);
        return http_error(wsi, h, rc == -ENOMEM ? 500 : 400,
                          rc == -ENOMEM ? "internal" : "invalid_message", "%s",
                          err);
    }

    /* The ops share values with root, which lives until they are
     * decoded into slices. */
    rc = http_ops_apply(
        wsi, h, actor, opseq, ops, 0,
        json_pack("{s:s, s:o}", "actor", actor, "skipped", skipped));
    json_decref(ops);
    json_decref(root);
    return rc;
}

/* COCO export */

typedef struct {
    http_pending_t p;
    char room[PROTO_ROOM_MAX + 1];
} export_req_t;

/* Builds the COCO JSON of a loaded room. Returns NULL on failure. */
static json_t *export_body(const char *room, const store_room_t *sr)
{
    obj_t **objs = calloc(sr->n + 1, sizeof(*objs));
    json_t *coco = NULL, *skipped = NULL;
    char err[PROTO_ERR_MAX];
    size_t n = 0;

    for (size_t i = 0; objs && i < sr->n; i++)
        if (unpack_obj(sr->blobs[i], sr->blob_lens[i], sr->ids[i], sr->revs[i],
                       &objs[n], err, sizeof(err)) == 0)
            n++;
    if (objs && coco_export_objs((const obj_t *const *)objs, n, &coco, &skipped,
                                 err, sizeof(err)) < 0)
        log_error("http", "room %s: cannot export: %s", room, err);
    if (json_array_size(skipped) > 0)
        log_info("http",
                 "room %s: export left out %zu objects COCO cannot "
                 "hold",
                 room, json_array_size(skipped));
    for (size_t i = 0; i < n; i++)
        obj_free(objs[i]);
    free(objs);
    json_decref(skipped);
    return coco;
}

static void on_export_load(int status, const store_room_t *sr, void *arg)
{
    export_req_t *req = arg;
    json_t *coco;

    if (!http_pending_finish(&req->p)) {
        free(req);
        return;
    }
    if (status < 0) {
        http_error(req->p.wsi, req->p.h, 503, "unavailable",
                   "Redis is unreachable; retry later");
    } else {
        coco = export_body(req->room, sr);
        if (!coco || http_respond(req->p.wsi, req->p.h, 200, coco) < 0)
            http_error(req->p.wsi, req->p.h, 500, "internal",
                       "cannot build the export");
    }
    free(req);
}

int http_ops_export(struct lws *wsi, http_t *h)
{
    export_req_t *req;

    if (check_format(wsi, h) < 0)
        return 0;
    req = calloc(1, sizeof(*req));
    if (!req)
        return -1;
    snprintf(req->room, sizeof(req->room), "%s", h->room);
    if (store_load(http_store, req->room, on_export_load, req) < 0) {
        free(req);
        return http_error(wsi, h, 503, "unavailable",
                          "Redis is unreachable; retry later");
    }
    http_pending_start(&req->p, wsi, h);
    return 0;
}
