/*
 * annolive: a real-time collaboration server for annotation tools.
 *
 * main() wires one libuv loop with the Redis store, the rooms and the
 * libwebsockets server, and runs it until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "room.h"
#include "sess.h"
#include "store.h"
#include "token_cmd.h"

#define STOP_WRITES_MS 2000 /* maximum wait for writes in flight at stop */
#define STOP_GRACE_MS 5000  /* maximum duration of a stop, in all */
#define STOP_POLL_MS 20

typedef struct {
    uv_loop_t loop;
    config_t cfg;
    store_t *store;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;
    uint64_t writes_deadline; /* end of the wait for writes in flight */
    uint64_t stop_deadline;   /* end of the wait for connections */
    int closing;              /* connections are being closed */
    int store_status; /* 1 while starting, then 0 or a negative code */
    int exit_code;
} server_t;

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Stops everything that keeps the loop alive. */
static void shut_down(server_t *srv)
{
    net_destroy();
    if (srv->store)
        store_stop(srv->store);
    srv->store = NULL;
    close_handle((uv_handle_t *)&srv->sigterm);
    close_handle((uv_handle_t *)&srv->sigint);
    close_handle((uv_handle_t *)&srv->stop_timer);
    room_module_stop();
}

/* Steps of a graceful stop, polled by stop_timer: first the writes in
 * flight finish (their acks still reach the clients), then every
 * connection is closed with 1001 after its queued messages. The Redis
 * commands that the closes sent, such as removing presence entries, then
 * get their replies, and the loop ends. Each step is bounded in time. */
static void on_stop_timer(uv_timer_t *t)
{
    server_t *srv = t->data;
    uint64_t now = uv_now(&srv->loop);

    if (!srv->closing) {
        if (room_batches_in_flight() > 0 && now < srv->writes_deadline)
            return;
        srv->closing = 1;
        log_info("main", "closing %zu connections", sess_close_all());
        return;
    }
    if ((sess_count() > 0 || store_commands_pending(srv->store) > 0) &&
        now < srv->stop_deadline)
        return;
    if (sess_count() > 0 || room_batches_in_flight() > 0)
        log_warn("main", "stopping with %zu connections and %zu writes "
                 "still open after %d ms", sess_count(),
                 room_batches_in_flight(), STOP_GRACE_MS);
    else if (store_commands_pending(srv->store) > 0)
        log_warn("main", "stopping with %zu Redis commands unanswered after "
                 "%d ms; presence entries they removed expire by themselves",
                 store_commands_pending(srv->store), STOP_GRACE_MS);
    uv_timer_stop(t);
    shut_down(srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server_t *srv = sig->data;
    uint64_t now = uv_now(&srv->loop);

    if (uv_is_active((uv_handle_t *)&srv->stop_timer))
        return;
    http_set_stopping();
    log_info("main", "received %s: rejecting new connections, finishing "
             "%zu writes in flight", strsignal(signum),
             room_batches_in_flight());
    srv->writes_deadline = now + STOP_WRITES_MS;
    srv->stop_deadline = now + STOP_GRACE_MS;
    uv_timer_start(&srv->stop_timer, on_stop_timer, 0, STOP_POLL_MS);
}

static void on_store_ready(int status, void *arg)
{
    server_t *srv = arg;

    srv->store_status = status;
    if (status < 0) {
        srv->exit_code = 1;
        shut_down(srv);
        return;
    }
    if (net_start(&srv->loop, &srv->cfg) < 0) {
        srv->exit_code = 1;
        shut_down(srv);
        return;
    }
    log_info("main", "instance %s ready", srv->cfg.instance);
}

static int start(server_t *srv)
{
    store_events_t events = {
        .connection = room_on_connection,
        .subscribed = room_on_subscribed,
        .message = room_on_message,
        .aware = room_on_aware,
        .deleted = room_on_deleted,
    };
    int rc;

    uv_signal_init(&srv->loop, &srv->sigterm);
    uv_signal_init(&srv->loop, &srv->sigint);
    uv_timer_init(&srv->loop, &srv->stop_timer);
    srv->sigterm.data = srv->sigint.data = srv->stop_timer.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    sess_configure(&srv->cfg);
    srv->store_status = 1;
    rc = store_start(&srv->store, &srv->loop, &srv->cfg, &events, srv,
                     on_store_ready);
    if (rc < 0)
        return rc;
    http_configure(&srv->cfg, srv->store, &srv->loop);
    return room_module_init(&srv->loop, &srv->cfg, srv->store);
}

static void close_leftover(uv_handle_t *h, void *arg)
{
    close_handle(h);
}

static void finish(server_t *srv)
{
    /* libwebsockets 4.1 frees its context only on a second destroy, after
     * the loop has run its close callbacks. */
    net_destroy();
    if (uv_loop_close(&srv->loop) == UV_EBUSY) {
        uv_walk(&srv->loop, close_leftover, NULL);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->loop);
    }
    room_module_free();
    auth_free();
}

int main(int argc, char **argv)
{
    server_t srv;
    int rc;

    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return token_cmd_run(argc - 1, argv + 1);

    memset(&srv, 0, sizeof(srv));
    rc = config_load(&srv.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(srv.cfg.log_level);
    log_route_lws(srv.cfg.log_level);
    log_info("main", "annolive %s starting as instance %s", ANNOLIVE_VERSION,
             srv.cfg.instance);

    {
        char why[512];

        if (auth_init(&srv.cfg, why, sizeof(why)) < 0) {
            fprintf(stderr, "annolive: %s\n", why);
            return 2;
        }
    }
    uv_loop_init(&srv.loop);
    if (start(&srv) < 0) {
        log_error("main", "out of memory at start");
        return 1;
    }
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    finish(&srv);
    if (srv.exit_code == 0)
        log_info("main", "instance %s stopped", srv.cfg.instance);
    return srv.exit_code;
}
