/*
 * The libwebsockets context on the server's libuv loop: one vhost on the
 * listen address serving WebSocket sessions and HTTP on the same port.
 */
#ifndef AL_NET_H
#define AL_NET_H

#include <uv.h>

#include "config.h"

/* Creates the context and starts listening. Returns 0, or a negative code
 * after logging why (the port is in use, the address is invalid). */
int net_start(uv_loop_t *loop, const config_t *cfg);

/* Destroys the context. Call from a uv callback, then again after the loop
 * has run, as libwebsockets 4.1 frees the context only on the second call. */
void net_destroy(void);

#endif
