/*
 * Compact JSON text of jansson values, with short floats.
 *
 * The output matches json_dumpb(j, ..., JSON_COMPACT) except for reals:
 * jansson writes them with "%.17g", so 0.91 becomes 0.91000000000000003,
 * and glibc's conversion at that precision is slow. Here a real is written
 * with the fewest significant digits, up to 17, that read back as the same
 * double, and it keeps a '.' or an exponent so that it reads back as a real.
 */
#ifndef AL_JSONTEXT_H
#define AL_JSONTEXT_H

#include <jansson.h>
#include <stddef.h>

/* Bytes jsontext_real() writes at most, with the terminating NUL. */
#define JSONTEXT_REAL_MAX 32

/* Receives the next piece of text. Returns 0, or -1 to stop the encoding. */
typedef int (*jsontext_write_fn)(const char *text, size_t len, void *arg);

/* Writes the compact JSON text of j through write(). Object members keep
 * their insertion order. Returns 0, or -1 when write() failed or j is
 * nested deeper than 2048 levels. */
int jsontext_dump(const json_t *j, jsontext_write_fn write, void *arg);

/* Returns the JSON text of j as a NUL-terminated string to free(), or NULL
 * when out of memory or j is nested too deeply. */
char *jsontext_dumps(const json_t *j);

/* Sets *len to the bytes of the JSON text of j. Returns 0, or -1 when j
 * is nested too deeply. */
int jsontext_length(const json_t *j, size_t *len);

/* Writes the JSON text of the finite double d into buf, which has at least
 * JSONTEXT_REAL_MAX bytes, and returns its length. */
size_t jsontext_real(double d, char *buf);

#endif
