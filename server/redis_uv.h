/*
 * A libuv event adapter for hiredis async contexts.
 *
 * It replaces the adapter shipped with hiredis 0.14, which drops poll
 * errors: a refused or reset connection then never calls back. This one
 * hands errors to hiredis, which reports them through the connect or
 * disconnect callback.
 */
#ifndef AL_REDIS_UV_H
#define AL_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop. Returns 0, or a negative code (ac is unchanged). */
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
