/*
 * The workload of work.h. Geometry is written with two decimals, as
 * annotation tools keep it; each move shifts the whole shape.
 */
#include "work.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double *xy; /* x1, y1, x2, y2, ... */
    size_t points;
    double box[4];
} shape_t;

static shape_t *shapes;
static size_t nshapes;

static const char *const labels[] = {"person", "car",   "bicycle",
                                     "dog",    "truck", "traffic light"};
#define NLABELS (sizeof(labels) / sizeof(labels[0]))

static const char *const kind_names[OP_KINDS] = {"create", "move", "relabel",
                                                 "delete", "presence"};

int work_parse_mix(const char *text, mix_t *mix)
{
    char buf[256], *save = NULL, *part;
    int total = 0, k;

    memset(mix, 0, sizeof(*mix));
    if (strlen(text) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, text);
    for (part = strtok_r(buf, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(part, '=');

        if (!eq)
            return -EINVAL;
        *eq = '\0';
        for (k = 0; k < OP_KINDS && strcmp(part, kind_names[k]) != 0; k++)
            ;
        if (k == OP_KINDS)
            return -EINVAL;
        mix->share[k] = atoi(eq + 1);
        if (mix->share[k] < 0)
            return -EINVAL;
        total += mix->share[k];
    }
    return total == 100 ? 0 : -EINVAL;
}

op_kind_t work_pick(const mix_t *mix, int roll)
{
    int k;

    for (k = 0; k < OP_KINDS; k++) {
        if (roll < mix->share[k])
            return (op_kind_t)k;
        roll -= mix->share[k];
    }
    return OP_MOVE;
}

static int add_shape(const double *xy, size_t points)
{
    shape_t *grown = realloc(shapes, (nshapes + 1) * sizeof(*shapes));
    double minx = xy[0], miny = xy[1], maxx = xy[0], maxy = xy[1];
    size_t i;

    if (!grown)
        return -ENOMEM;
    shapes = grown;
    shapes[nshapes].xy = malloc(points * 2 * sizeof(double));
    if (!shapes[nshapes].xy)
        return -ENOMEM;
    memcpy(shapes[nshapes].xy, xy, points * 2 * sizeof(double));
    for (i = 1; i < points; i++) {
        minx = xy[2 * i] < minx ? xy[2 * i] : minx;
        maxx = xy[2 * i] > maxx ? xy[2 * i] : maxx;
        miny = xy[2 * i + 1] < miny ? xy[2 * i + 1] : miny;
        maxy = xy[2 * i + 1] > maxy ? xy[2 * i + 1] : maxy;
    }
    shapes[nshapes].points = points;
    shapes[nshapes].box[0] = minx;
    shapes[nshapes].box[1] = miny;
    shapes[nshapes].box[2] = maxx - minx;
    shapes[nshapes].box[3] = maxy - miny;
    nshapes++;
    return 0;
}

/* Adds the first ring of an annotation's polygon segmentation, if any. */
static int add_annotation(json_t *ann)
{
    json_t *seg = json_object_get(ann, "segmentation");
    json_t *ring = json_is_array(seg) ? json_array_get(seg, 0) : NULL;
    size_t n = json_array_size(ring), i;
    double xy[2048];

    if (!json_is_array(ring) || n < 6 || n % 2 || n > 2048)
        return 0;
    for (i = 0; i < n; i++)
        xy[i] = json_number_value(json_array_get(ring, i));
    return add_shape(xy, n / 2);
}

static int add_stand_ins(void)
{
    static const double tri[] = {10, 10, 60, 12, 30, 70};
    static const double quad[] = {100, 100, 180, 100, 180, 160, 100, 160};
    int rc = add_shape(tri, 3);

    return rc < 0 ? rc : add_shape(quad, 4);
}

int work_load_coco(const char *path)
{
    json_error_t err;
    json_t *root, *anns, *ann;
    size_t i;
    int rc = 0;

    root = path ? json_load_file(path, 0, &err) : NULL;
    if (path && !root) {
        fprintf(stderr, "loadgen: %s:%d: %s\n", path, err.line, err.text);
        return -EINVAL;
    }
    anns = json_object_get(root, "annotations");
    json_array_foreach(anns, i, ann)
    {
        rc = add_annotation(ann);
        if (rc < 0)
            break;
    }
    json_decref(root);
    if (rc == 0 && nshapes == 0)
        rc = add_stand_ins();
    return rc < 0 ? rc : (int)nshapes;
}

size_t work_shapes(void)
{
    return nshapes;
}

size_t work_shape_points(size_t i)
{
    return shapes[i % nshapes].points;
}

/* A cursor over an output buffer; once full it stays full. */
typedef struct {
    char *p;
    size_t len, cap;
    int full;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt,
                                                      ...)
{
    va_list ap;
    int n;

    if (o->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->full = 1;
    else
        o->len += (size_t)n;
}

static void put_geometry(out_t *o, size_t shape, int polygon, double dx,
                         double dy)
{
    const shape_t *s = &shapes[shape % nshapes];
    size_t i;

    if (!polygon) {
        put(o, "[%.2f,%.2f,%.2f,%.2f]", s->box[0] + dx, s->box[1] + dy,
            s->box[2], s->box[3]);
        return;
    }
    put(o, "[[");
    for (i = 0; i < s->points; i++)
        put(o, "%s%.2f,%.2f", i ? "," : "", s->xy[2 * i] + dx,
            s->xy[2 * i + 1] + dy);
    put(o, "]]");
}

static void put_head(out_t *o, const char *room, const char *actor,
                     unsigned long opseq)
{
    put(o,
        "{\"type\":\"ops\",\"room\":\"%s\",\"actor\":\"%s\",\"opseq\":%lu,"
        "\"ops\":[",
        room, actor, opseq);
}

static size_t finish(out_t *o)
{
    put(o, "]}");
    return o->full ? 0 : o->len;
}

size_t work_create(char *out, size_t cap, const char *room, const char *actor,
                   unsigned long opseq, unsigned long obj, size_t shape,
                   int kind_polygon)
{
    out_t o = {out, 0, cap, 0};

    put_head(&o, room, actor, opseq);
    put(&o,
        "{\"op\":\"create\",\"id\":\"%s.%lu\",\"kind\":\"%s\",\"fields\":{"
        "\"item\":\"img-1\",\"label\":\"%s\",\"geometry\":",
        actor, obj, kind_polygon ? "polygon" : "bbox", labels[shape % NLABELS]);
    put_geometry(&o, shape, kind_polygon, 0, 0);
    put(&o, "}}");
    return finish(&o);
}

size_t work_move(char *out, size_t cap, const char *room, const char *actor,
                 unsigned long opseq, unsigned long obj, size_t shape,
                 int kind_polygon, double dx, double dy)
{
    out_t o = {out, 0, cap, 0};

    put_head(&o, room, actor, opseq);
    put(&o,
        "{\"op\":\"update\",\"id\":\"%s.%lu\",\"base\":{},\"set\":{"
        "\"geometry\":",
        actor, obj);
    put_geometry(&o, shape, kind_polygon, dx, dy);
    put(&o, "}}");
    return finish(&o);
}

size_t work_relabel(char *out, size_t cap, const char *room, const char *actor,
                    unsigned long opseq, unsigned long obj, int label)
{
    out_t o = {out, 0, cap, 0};

    put_head(&o, room, actor, opseq);
    put(&o,
        "{\"op\":\"update\",\"id\":\"%s.%lu\",\"base\":{},\"set\":{"
        "\"label\":\"%s\"}}",
        actor, obj, labels[(unsigned)label % NLABELS]);
    return finish(&o);
}

size_t work_delete(char *out, size_t cap, const char *room, const char *actor,
                   unsigned long opseq, unsigned long obj)
{
    out_t o = {out, 0, cap, 0};

    put_head(&o, room, actor, opseq);
    put(&o, "{\"op\":\"delete\",\"id\":\"%s.%lu\",\"base\":{}}", actor, obj);
    return finish(&o);
}

size_t work_presence(char *out, size_t cap, const char *room, const char *actor,
                     double x, double y, unsigned long selected)
{
    out_t o = {out, 0, cap, 0};

    put(&o,
        "{\"type\":\"presence\",\"room\":\"%s\",\"state\":{\"cursor\":"
        "[%.1f,%.1f],\"selected\":[\"%s.%lu\"],\"item\":\"img-1\"}}",
        room, x, y, actor, selected);
    return o.full ? 0 : o.len;
}

size_t work_create_many(char *out, size_t cap, const char *room,
                        const char *actor, unsigned long opseq,
                        unsigned long first, unsigned count)
{
    out_t o = {out, 0, cap, 0};
    unsigned i;

    put_head(&o, room, actor, opseq);
    for (i = 0; i < count; i++) {
        unsigned long obj = first + i;

        put(&o,
            "%s{\"op\":\"create\",\"id\":\"%s.%lu\",\"kind\":\"polygon\","
            "\"fields\":{\"item\":\"img-1\",\"label\":\"%s\",\"geometry\":",
            i ? "," : "", actor, obj, labels[obj % NLABELS]);
        put_geometry(&o, obj, 1, (double)(obj % 40), (double)(obj % 25));
        put(&o, "}}");
    }
    return finish(&o);
}
