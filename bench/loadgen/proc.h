/*
 * Readings of other processes from /proc: CPU time and memory. A process
 * that is gone adds nothing.
 */
#ifndef LG_PROC_H
#define LG_PROC_H

#include <stddef.h>

/* CPU seconds, user plus system, used so far by the pids together. */
double proc_cpu_seconds(const int *pids, size_t n);

/* The sum over the pids of a /proc/PID/status field in KiB, such as
 * "VmRSS" (resident now) or "VmHWM" (peak resident). */
long proc_status_kib(const int *pids, size_t n, const char *field);

#endif
