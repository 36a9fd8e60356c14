/* The /proc readings of proc.h. */
#include "proc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double cpu_of(int pid, long ticks_per_s)
{
    char path[64], line[1024], *p;
    unsigned long utime, stime;
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (!p || !(p = strrchr(line, ')')))
        return 0;

    /* After ") " come state and ten fields before utime and stime. */
    ok = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                &utime, &stime);
    return ok == 2 ? (double)(utime + stime) / (double)ticks_per_s : 0;
}

double proc_cpu_seconds(const int *pids, size_t n)
{
    long ticks = sysconf(_SC_CLK_TCK);
    double sum = 0;
    size_t i;

    for (i = 0; i < n; i++)
        sum += cpu_of(pids[i], ticks > 0 ? ticks : 100);
    return sum;
}

static long status_of(int pid, const char *field)
{
    char path[64], line[256];
    size_t len = strlen(field);
    long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            sscanf(line + len + 1, "%ld", &kib);
            break;
        }
    }
    fclose(f);
    return kib;
}

long proc_status_kib(const int *pids, size_t n, const char *field)
{
    long sum = 0;
    size_t i;

    for (i = 0; i < n; i++)
        sum += status_of(pids[i], field);
    return sum;
}
