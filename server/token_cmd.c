/*
 * annolive token --secret-file FILE --sub ID --role ROLE --rooms PATTERNS
 *                [--name NAME] [--ttl DURATION] [--audience AUD]
 *                [--issuer ISS]
 */
#include "token_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "jwt.h"

#define ROOMS_MAX 256

typedef struct {
    const char *secret_file;
    const char *sub, *name, *role, *rooms, *ttl, *audience, *issuer;
} token_args_t;

static void usage(void)
{
    printf("Usage: annolive token --secret-file FILE --sub ID --role ROLE "
           "--rooms PATTERNS [OPTION]...\n"
           "Prints an HS256 token signed with the secret in FILE (at least "
           "32 bytes;\nANNOLIVE_AUTH_SECRET may hold it instead).\n\n"
           "  --sub ID            subject: the user or bot id\n"
           "  --role ROLE         viewer, annotator, reviewer, bot or admin\n"
           "  --rooms PATTERNS    comma-separated room patterns, such as "
           "project:42,project:7:*\n"
           "  --name NAME         display name (optional)\n"
           "  --ttl DURATION      lifetime: N, Ns, Nm, Nh or Nd (default "
           "8h)\n"
           "  --audience AUD      aud claim (optional)\n"
           "  --issuer ISS        iss claim (optional)\n");
}

/* Parses N, Ns, Nm, Nh or Nd into seconds. Returns 0 or -EINVAL. */
static int parse_ttl(const char *s, int64_t *out)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    int64_t unit = 1;

    if (end == s || n <= 0)
        return -EINVAL;
    if (*end == 'm')
        unit = 60;
    else if (*end == 'h')
        unit = 3600;
    else if (*end == 'd')
        unit = 86400;
    else if (*end != 's' && *end != '\0')
        return -EINVAL;
    if (*end && end[1])
        return -EINVAL;
    if (n > 3650LL * 86400 / unit)
        return -EINVAL;
    *out = n * unit;
    return 0;
}

static int parse_args(int argc, char **argv, token_args_t *a)
{
    static const struct option opts[] = {
        {"secret-file", required_argument, NULL, 'f'},
        {"sub", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},
        {"role", required_argument, NULL, 'r'},
        {"rooms", required_argument, NULL, 'R'},
        {"ttl", required_argument, NULL, 't'},
        {"audience", required_argument, NULL, 'a'},
        {"issuer", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(a, 0, sizeof(*a));
    a->ttl = "8h";
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': a->secret_file = optarg; break;
        case 's': a->sub = optarg; break;
        case 'n': a->name = optarg; break;
        case 'r': a->role = optarg; break;
        case 'R': a->rooms = optarg; break;
        case 't': a->ttl = optarg; break;
        case 'a': a->audience = optarg; break;
        case 'i': a->issuer = optarg; break;
        case 'h': usage(); return 1;
        default:
            fprintf(stderr, "annolive token: invalid or incomplete option "
                    "'%s'; run 'annolive token --help'\n", argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (!a->sub || !a->role || !a->rooms) {
        fprintf(stderr, "annolive token: --sub, --role and --rooms are "
                "required; run 'annolive token --help'\n");
        return -EINVAL;
    }
    return 0;
}

/* Splits a comma-separated list in place. Returns the count or -E2BIG. */
static int split_rooms(char *list, const char **rooms)
{
    int n = 0;
    char *save = NULL;

    for (char *p = strtok_r(list, ",", &save); p;
         p = strtok_r(NULL, ",", &save)) {
        if (n == ROOMS_MAX)
            return -E2BIG;
        rooms[n++] = p;
    }
    return n;
}

static int mint(const token_args_t *a, jwt_mint_t *in, char **token)
{
    unsigned char secret[AUTH_SECRET_MAX];
    char err[256];
    size_t len = 0;
    int rc = auth_load_secret(a->secret_file, secret, sizeof(secret), &len,
                              err, sizeof(err));

    if (rc < 0 || len == 0) {
        fprintf(stderr, "annolive token: %s\n",
                rc < 0 ? err
                       : "no secret: give --secret-file FILE or set "
                         "ANNOLIVE_AUTH_SECRET");
        return rc < 0 ? rc : -EINVAL;
    }
    rc = jwt_mint_hs256(secret, len, in, token, err, sizeof(err));
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc < 0)
        fprintf(stderr, "annolive token: %s\n", err);
    return rc;
}

int token_cmd_run(int argc, char **argv)
{
    const char *rooms[ROOMS_MAX];
    token_args_t a;
    jwt_mint_t in;
    char *list, *token = NULL;
    int rc, n;

    rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    memset(&in, 0, sizeof(in));
    if (jwt_role_parse(a.role, &in.role) < 0 ||
        parse_ttl(a.ttl, &in.ttl_s) < 0) {
        fprintf(stderr, "annolive token: invalid %s '%s'; expected %s\n",
                jwt_role_parse(a.role, &in.role) < 0 ? "--role" : "--ttl",
                jwt_role_parse(a.role, &in.role) < 0 ? a.role : a.ttl,
                jwt_role_parse(a.role, &in.role) < 0
                    ? "viewer, annotator, reviewer, bot or admin"
                    : "N, Ns, Nm, Nh or Nd up to 10 years");
        return 2;
    }
    list = strdup(a.rooms);
    n = list ? split_rooms(list, rooms) : -ENOMEM;
    if (n < 0) {
        fprintf(stderr, "annolive token: --rooms has more than the maximum "
                "of %d patterns\n", ROOMS_MAX);
        free(list);
        return 2;
    }
    in.sub = a.sub;
    in.name = a.name;
    in.rooms = rooms;
    in.nrooms = (size_t)n;
    in.audience = a.audience;
    in.issuer = a.issuer;
    in.now = (int64_t)time(NULL);
    rc = mint(&a, &in, &token);
    free(list);
    if (rc < 0)
        return 2;
    printf("%s\n", token);
    free(token);
    return 0;
}
