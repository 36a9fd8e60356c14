/*
 * Conversion between COCO instances JSON and annolive objects.
 *
 * The mapping is the one of client-js/src/coco.js, so that a file imported
 * by the server or by the JavaScript client gives the same objects, and a
 * room exports the same COCO JSON through either. Import makes one create
 * op per category (kind "category"), image (kind "item") and annotation
 * (kind "polygon", "mask" or "bbox"), plus one "tag" object that keeps the
 * file's info, licenses and other top-level members. Export is the inverse
 * and writes every imported value back as it was read.
 *
 * Pure code: no I/O, no logging. Numbers are never converted: values are
 * shared with the input, so integers stay integers and reals keep their
 * double. Only a missing bbox or area is computed on export.
 *
 * NOTE: import leaves out an annotation whose bbox member is not 4 numbers
 * even when its segmentation is the geometry, where coco.js imports it.
 * Export orders string ids by UTF-8 bytes, where JavaScript compares
 * UTF-16 units, and writes a computed integer beyond int64 as a real.
 */
#ifndef AL_COCO_H
#define AL_COCO_H

#include <jansson.h>
#include <stddef.h>

#include "obj.h"

/* The object id prefix when the caller gives none. */
#define COCO_PREFIX_DEFAULT "coco:"

/*
 * Converts COCO instances JSON to create ops {"op": "create", "id", "kind",
 * "fields"}: the dataset tag first (when the file has info, licenses or
 * other top-level members), then categories, images and annotations in the
 * order of the file.
 *
 * Object ids are PREFIX "dataset", PREFIX "cat:" ID, PREFIX "img:" ID and
 * PREFIX "ann:" ID, where ID is the element's "id" as JavaScript's String()
 * writes it (1.0 gives "1"). prefix NULL means COCO_PREFIX_DEFAULT.
 * Categories and images keep every member as a field, "id" as "coco_id".
 * An annotation is a "polygon" when its segmentation is a non-empty array
 * of arrays, a "mask" when it is an RLE object with "counts" and "size"
 * (the geometry is that object as it is: counts as runs or as a compressed
 * string, column-major), else a "bbox" whose geometry is its bbox. It keeps
 * every member as a field except "id" (now "coco_id"), "image_id" (now
 * "item", the item's object id) and a segmentation that became its
 * geometry, and gets "label", the name of its category, when the file
 * names one.
 *
 * An element that cannot become a valid object is left out and listed in
 * *skipped as {"where", "id"?, "reason"}: where is its path such as
 * "annotations[3]", id the object id when one was made, and reason a
 * message that names the value, such as "annotations[3].bbox: must be 4
 * numbers, got 3". Reasons are: not an object, an id that is not a number
 * or a string or makes no valid object id, an object id taken by an
 * earlier element, an annotation with neither a segmentation nor a bbox, a
 * bbox that is not 4 finite numbers, and anything for which obj_apply()
 * would reject the create in a room without a schema (geometry, item width
 * and height, attrs, field names and counts). So every op applies.
 *
 * On success returns 0 with *ops and *skipped new arrays owned by the
 * caller (skipped may be empty). Field values in *ops are shared with
 * coco: treat them as immutable. Returns -EINVAL with a message in err
 * when coco is not COCO instances JSON (not an object, "images" or
 * "annotations" not arrays, "categories" present but not an array) or when
 * the prefix makes invalid object ids, and -ENOMEM; *ops and *skipped are
 * then NULL.
 */
int coco_import(const json_t *coco, const char *prefix, json_t **ops,
                json_t **skipped, char *err, size_t errlen);

/*
 * Converts a room's objects, given as a JSON array of {"id", "kind",
 * "fields"?} as a snapshot lists them, to COCO instances JSON: the dataset
 * tag's info, licenses and extra members, then "images", "annotations"
 * and "categories", each sorted by COCO id (numbers first, by value, then
 * the others by their string form; ties keep the order of object ids).
 *
 * Elements are built from "coco_id" and the fields. Objects without
 * coco_id get the next free id of their list. Every stored value is
 * written back unchanged; an annotation's bbox, area and iscrowd are
 * computed only when it lacks them: iscrowd is 1 for masks, else 0, and
 * a mask's bbox and area come from its runs, in either form. A computed
 * number that is not finite is written as null, as JavaScript writes it.
 * An annotation's category is the one whose name is its label, else the
 * one whose id is its category_id.
 *
 * Objects that COCO cannot express are listed in *skipped as {"id",
 * "kind", "reason"}: other kinds (ellipse, cuboid, tag, relation, room,
 * ...), a second dataset tag, a repeated coco_id, annotations whose item
 * or category is not exported, and annotations with an invalid geometry
 * (such as a mask whose runs do not cover its size).
 *
 * Returns 0 with *coco and *skipped new values owned by the caller; stored
 * values in *coco are shared with objects. Returns -EINVAL with err when
 * objects is not an array of objects with string "id" and "kind" and
 * "fields" an object, null or absent, or -ENOMEM; *coco and *skipped are
 * then NULL.
 */
int coco_export(const json_t *objects, json_t **coco, json_t **skipped,
                char *err, size_t errlen);

/* coco_export() of n stored objects. Tombstones (deleted) are not part of
 * the room and are passed over without a skipped entry. */
int coco_export_objs(const obj_t *const *objs, size_t n, json_t **coco,
                     json_t **skipped, char *err, size_t errlen);

#endif
