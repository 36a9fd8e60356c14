/*
 * The server's one logger: leveled, printf-checked lines on stderr with a
 * UTC timestamp, the level and the module. libwebsockets' own log lines are
 * routed through it.
 */
#ifndef AL_LOG_H
#define AL_LOG_H

typedef enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

/* Sets the most verbose level written. Lines above it cost one comparison. */
void log_set_level(log_level_t level);

/* Parses "error", "warn", "info" or "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *name, log_level_t *level);

/* Routes libwebsockets' errors and warnings through this logger (its
 * notices too at debug level). */
void log_route_lws(log_level_t level);

void log_write(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern log_level_t log_level;

#define LOG(level, module, ...)                                              \
    do {                                                                     \
        if ((level) <= log_level)                                            \
            log_write((level), (module), __VA_ARGS__);                       \
    } while (0)

#define log_error(module, ...) LOG(LOG_ERROR, module, __VA_ARGS__)
#define log_warn(module, ...) LOG(LOG_WARN, module, __VA_ARGS__)
#define log_info(module, ...) LOG(LOG_INFO, module, __VA_ARGS__)
#define log_debug(module, ...) LOG(LOG_DEBUG, module, __VA_ARGS__)

#endif
