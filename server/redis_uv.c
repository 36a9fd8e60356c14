/*
 * hiredis on libuv through one uv_poll_t per connection. The watcher lives
 * until hiredis calls cleanup; after that a late poll callback finds no
 * context and does nothing.
 */
#include "redis_uv.h"

#include <errno.h>
#include <stdlib.h>

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis let go of the watcher */
    uv_poll_t poll;
    int events;            /* UV_READABLE and UV_WRITABLE wanted */
} watcher_t;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    watcher_t *w = handle->data;

    /* On an error, a connecting socket learns it in the write handler
     * (hiredis reads SO_ERROR there) and a connected one in the read
     * handler. Either call may free the context. */
    if (status < 0)
        events = (w->ac && !(w->ac->c.flags & REDIS_CONNECTED))
                     ? UV_WRITABLE
                     : UV_READABLE;
    if (w->ac && (events & UV_READABLE))
        redisAsyncHandleRead(w->ac);
    if (w->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(w->ac);
}

static void update(watcher_t *w)
{
    if (w->events)
        uv_poll_start(&w->poll, w->events, on_poll);
    else
        uv_poll_stop(&w->poll);
}

static void add_read(void *data)
{
    watcher_t *w = data;

    w->events |= UV_READABLE;
    update(w);
}

static void del_read(void *data)
{
    watcher_t *w = data;

    w->events &= ~UV_READABLE;
    update(w);
}

static void add_write(void *data)
{
    watcher_t *w = data;

    w->events |= UV_WRITABLE;
    update(w);
}

static void del_write(void *data)
{
    watcher_t *w = data;

    w->events &= ~UV_WRITABLE;
    update(w);
}

static void free_watcher(uv_handle_t *handle)
{
    free(handle->data);
}

static void cleanup(void *data)
{
    watcher_t *w = data;

    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, free_watcher);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    watcher_t *w;

    if (ac->ev.data)
        return -EEXIST;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    if (uv_poll_init(loop, &w->poll, ac->c.fd) < 0) {
        free(w);
        return -EIO;
    }
    w->ac = ac;
    w->poll.data = w;

    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
