/*
 * The load generator's workload: real annotation shapes read from a COCO
 * file, and the JSON text of the messages that simulated annotators send.
 * Does no I/O besides reading the COCO file.
 */
#ifndef LG_WORK_H
#define LG_WORK_H

#include <stddef.h>

typedef enum {
    OP_CREATE,
    OP_MOVE,
    OP_RELABEL,
    OP_DELETE,
    OP_PRESENCE
} op_kind_t;
#define OP_KINDS 5

/* Shares of each op kind, in percent of all sends; they add up to 100. */
typedef struct {
    int share[OP_KINDS];
} mix_t;

/* Parses "create=10,move=50,relabel=20,delete=5,presence=15". Kinds left
 * out get 0. Returns 0, or -EINVAL when the text is invalid or the shares
 * do not add up to 100. */
int work_parse_mix(const char *text, mix_t *mix);

/* Picks an op kind for a roll in [0, 100). */
op_kind_t work_pick(const mix_t *mix, int roll);

/* Reads the polygons of a COCO instances file. Returns the number of
 * shapes, or a negative errno-style code. Without a file, or when the file
 * contains no polygon, it uses two made-up shapes. */
int work_load_coco(const char *path);

/* Number of shapes loaded. */
size_t work_shapes(void);

/* Vertex count of shape i (modulo the number of shapes). */
size_t work_shape_points(size_t i);

/*
 * Each writer appends the text of one message to out (cap bytes) and
 * returns its length, or 0 when it does not fit. Object ids are
 * ACTOR.N. kind_polygon chooses polygon or bbox geometry from shape.
 */
size_t work_create(char *out, size_t cap, const char *room, const char *actor,
                   unsigned long opseq, unsigned long obj, size_t shape,
                   int kind_polygon);
size_t work_move(char *out, size_t cap, const char *room, const char *actor,
                 unsigned long opseq, unsigned long obj, size_t shape,
                 int kind_polygon, double dx, double dy);
size_t work_relabel(char *out, size_t cap, const char *room, const char *actor,
                    unsigned long opseq, unsigned long obj, int label);
size_t work_delete(char *out, size_t cap, const char *room, const char *actor,
                   unsigned long opseq, unsigned long obj);
size_t work_presence(char *out, size_t cap, const char *room, const char *actor,
                     double x, double y, unsigned long selected);

/* A batch of count polygon creates, objects first .. first + count - 1,
 * for loading a big room. */
size_t work_create_many(char *out, size_t cap, const char *room,
                        const char *actor, unsigned long opseq,
                        unsigned long first, unsigned count);

#endif
