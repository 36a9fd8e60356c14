/*
 * Leveled logging to stderr. Each line is written with one fwrite so lines
 * from a single thread never interleave.
 */
#include "log.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

log_level_t log_level = LOG_INFO;

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(log_level_t level)
{
    log_level = level;
}

int log_parse_level(const char *name, log_level_t *level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *level = (log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_write(log_level_t level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s: ",
                          (long)(tv.tv_usec / 1000), level_names[level],
                          module);

    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);

    /* A truncated line still ends with a newline. */
    if (r < 0)
        r = 0;
    n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

static void emit_lws(int lws_level, const char *line)
{
    log_level_t level = LOG_DEBUG;
    size_t len = strlen(line);

    if (lws_level & LLL_ERR)
        level = LOG_ERROR;
    else if (lws_level & LLL_WARN)
        level = LOG_WARN;

    /* lws lines end with a newline, which the logger adds itself. */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    LOG(level, "lws", "%.*s", (int)len, line);
}

void log_route_lws(log_level_t level)
{
    int mask = LLL_ERR | LLL_WARN;

    if (level >= LOG_DEBUG)
        mask |= LLL_NOTICE;
    lws_set_log_level(mask, emit_lws);
}
