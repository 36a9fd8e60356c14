/*
 * The "annolive token" subcommand: mints an HS256 token so a team can
 * start without an identity provider.
 */
#ifndef AL_TOKEN_CMD_H
#define AL_TOKEN_CMD_H

/* Runs "annolive token ARGS" (argv[0] is "token"). Prints the token on
 * stdout and returns 0, or prints one line on stderr and returns 2. */
int token_cmd_run(int argc, char **argv);

#endif
