/*
 * Unit tests of the JWT module in server/jwt.c: HS256 minting and
 * verification, rejection of forged and malformed tokens, claim checks,
 * room patterns, and RS256 and ES256 with keys generated at test time.
 *
 * Test tokens are built here with OpenSSL's own base64 encoder, HMAC() and
 * EVP_DigestSign(), not with the module's encoder, so that the two
 * implementations check each other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "jwt.h"

#define NOW 1700000000LL /* the current time of every test */
#define ERR_LEN 256

/* The standard claims of a test token, without exp. */
#define CLAIMS \
    "\"sub\":\"alice\",\"role\":\"annotator\",\"rooms\":[\"project:42\"]"

static const char SECRET[] = "test-secret-0123456789abcdef-0123456789";
static const char HS256_HEADER[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char RS256_HEADER[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
static const char ES256_HEADER[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";

/* Flags of pkey_token(). */
#define SIG_RAW_ECDSA 1 /* convert an ECDSA signature to JOSE r || s */
#define SIG_FLIP_BIT 2  /* flip one bit of the signature */

/* Keys generated once per run, with their public keys in PEM files in a
 * temporary directory, and an HS256 verifier with SECRET. */
static struct {
    char dir[256];
    EVP_PKEY *rsa, *rsa_other, *rsa_small, *ec, *ec_other;
    char rsa_pem[300], rsa_other_pem[300], rsa_small_pem[300];
    char ec_pem[300], ec_other_pem[300], junk_pem[300];
    jwt_verifier_t *hs;
} fx;

/* ---- token building ---- */

/* Returns n bytes as unpadded base64url in a malloc'ed string. */
static char *b64url(const void *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len, i;

    assert_non_null(out);
    len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

/* Returns the malloc'ed string a "." b. */
static char *join(const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b);
    char *out = malloc(alen + blen + 2);

    assert_non_null(out);
    memcpy(out, a, alen);
    out[alen] = '.';
    memcpy(out + alen + 1, b, blen + 1);
    return out;
}

/* Returns b64url(header) "." b64url(payload), the signing input. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    char *input = join(h, p);

    free(h);
    free(p);
    return input;
}

/* Returns input "." b64url(sig) and frees input. */
static char *append_sig(char *input, const unsigned char *sig, size_t n)
{
    char *s = b64url(sig, n);
    char *token = join(input, s);

    free(s);
    free(input);
    return token;
}

/* Returns input "." the HMAC-SHA-256 of input with key, and frees input. */
static char *sign_input(char *input, const void *key, size_t keylen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen,
                         (const unsigned char *)input, strlen(input), mac,
                         &maclen));
    return append_sig(input, mac, maclen);
}

static char *hmac_token(const char *header, const char *payload,
                        const void *key, size_t keylen)
{
    return sign_input(signing_input(header, payload), key, keylen);
}

/* Returns an HS256 token signed with SECRET whose payload is the printf
 * format fmt applied to the arguments. */
__attribute__((format(printf, 1, 2))) static char *hs256(const char *fmt, ...)
{
    char payload[JWT_TOKEN_MAX * 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(payload, sizeof(payload), fmt, ap);
    va_end(ap);
    return hmac_token(HS256_HEADER, payload, SECRET, strlen(SECRET));
}

/* Rewrites the DER ECDSA signature in sig as JOSE r || s. Returns 64. */
static size_t der_to_raw(unsigned char *sig, size_t len)
{
    const unsigned char *p = sig;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    unsigned char raw[64];

    assert_non_null(s);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32), 32);
    ECDSA_SIG_free(s);
    assert_true(len >= sizeof(raw));
    memcpy(sig, raw, sizeof(raw));
    return sizeof(raw);
}

/* Returns a token signed with key by EVP_DigestSign() and SHA-256, with
 * flags from SIG_RAW_ECDSA and SIG_FLIP_BIT. */
static char *pkey_token(EVP_PKEY *key, const char *header, const char *payload,
                        int flags)
{
    char *input = signing_input(header, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig;
    size_t siglen = 0;
    char *token;

    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, NULL, &siglen,
                                    (const unsigned char *)input,
                                    strlen(input)),
                     1);
    sig = malloc(siglen);
    assert_non_null(sig);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
                                    (const unsigned char *)input,
                                    strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);

    if (flags & SIG_RAW_ECDSA)
        siglen = der_to_raw(sig, siglen);
    if (flags & SIG_FLIP_BIT)
        sig[siglen / 2] ^= 0x01;
    token = append_sig(input, sig, siglen);
    free(sig);
    return token;
}

/* Returns a copy of token with the base64url character at pos replaced. */
static char *replace_char(const char *token, size_t pos, char c)
{
    char *copy = strdup(token);

    assert_non_null(copy);
    assert_true(pos < strlen(copy));
    copy[pos] = c;
    return copy;
}

/* ---- verification helpers ---- */

static jwt_verifier_t *new_verifier(const jwt_config_t *cfg)
{
    jwt_verifier_t *v = NULL;
    char err[ERR_LEN] = "";
    int rc = jwt_verifier_new(&v, cfg, err, sizeof(err));

    if (rc != 0)
        fail_msg("jwt_verifier_new: %d, %s", rc, err);
    return v;
}

static jwt_verifier_t *key_verifier(const char *alg, const char *key_file)
{
    jwt_config_t cfg;

    jwt_config_init(&cfg);
    cfg.alg = alg;
    cfg.key_file = key_file;
    return new_verifier(&cfg);
}

/* Returns an HS256 verifier with SECRET and the given settings. */
static jwt_verifier_t *hs_verifier(const char *audience, const char *issuer,
                                   int skew_s)
{
    jwt_config_t cfg;

    jwt_config_init(&cfg);
    cfg.alg = "HS256";
    cfg.secret = (const unsigned char *)SECRET;
    cfg.secret_len = strlen(SECRET);
    cfg.audience = audience;
    cfg.issuer = issuer;
    cfg.skew_s = skew_s;
    return new_verifier(&cfg);
}

/* Checks that v accepts token at now. */
static void expect_accept(const jwt_verifier_t *v, const char *token,
                          int64_t now)
{
    char err[ERR_LEN] = "";
    jwt_claims_t c;
    int rc = jwt_verify(v, token, strlen(token), now, &c, err, sizeof(err));

    if (rc != 0)
        fail_msg("rejected with %d: %s", rc, err);
    jwt_claims_clear(&c);
}

static const char *last_dot(const char *s, size_t len)
{
    while (len > 0) {
        if (s[--len] == '.')
            return s + len;
    }
    return NULL;
}

/* Checks that v rejects the len bytes of token at now with -EACCES and a
 * message containing want, and that the message does not contain the
 * secret or the signature. */
static void expect_reject_len(const jwt_verifier_t *v, const char *token,
                              size_t len, int64_t now, const char *want)
{
    char err[ERR_LEN] = "";
    const char *sig = last_dot(token, len);
    jwt_claims_t c;
    int rc = jwt_verify(v, token, len, now, &c, err, sizeof(err));

    if (rc != -EACCES)
        fail_msg("expected -EACCES with \"%s\", got %d: %s", want, rc, err);
    if (!strstr(err, want))
        fail_msg("message \"%s\" does not contain \"%s\"", err, want);
    assert_int_equal(c.nrooms, 0);
    assert_null(c.rooms);
    assert_null(strstr(err, SECRET));
    if (sig && strlen(sig + 1) >= 8)
        assert_null(strstr(err, sig + 1));
}

static void expect_reject(const jwt_verifier_t *v, const char *token,
                          int64_t now, const char *want)
{
    expect_reject_len(v, token, strlen(token), now, want);
}

/* Checks that the HS256 verifier rejects a SECRET-signed token with the
 * payload text at NOW, and frees the token. */
static void reject_payload(const char *payload, const char *want)
{
    char *token = hmac_token(HS256_HEADER, payload, SECRET, strlen(SECRET));

    expect_reject(fx.hs, token, NOW, want);
    free(token);
}

/* ---- fixture ---- */

static void write_pem(EVP_PKEY *key, const char *name, char *path,
                      size_t pathlen)
{
    FILE *f;

    snprintf(path, pathlen, "%s/%s", fx.dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    if (key)
        assert_int_equal(PEM_write_PUBKEY(f, key), 1);
    else
        fputs("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n"
              "-----END PUBLIC KEY-----\n",
              f);
    assert_int_equal(fclose(f), 0);
}

static int setup_keys(void **state)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(fx.dir, sizeof(fx.dir), "%s/test_jwt.XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx.dir));

    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(fx.rsa);
    assert_non_null(fx.rsa_other);
    assert_non_null(fx.rsa_small);
    assert_non_null(fx.ec);
    assert_non_null(fx.ec_other);

    write_pem(fx.rsa, "rsa.pem", fx.rsa_pem, sizeof(fx.rsa_pem));
    write_pem(fx.rsa_other, "rsa_other.pem", fx.rsa_other_pem,
              sizeof(fx.rsa_other_pem));
    write_pem(fx.rsa_small, "rsa_small.pem", fx.rsa_small_pem,
              sizeof(fx.rsa_small_pem));
    write_pem(fx.ec, "ec.pem", fx.ec_pem, sizeof(fx.ec_pem));
    write_pem(fx.ec_other, "ec_other.pem", fx.ec_other_pem,
              sizeof(fx.ec_other_pem));
    write_pem(NULL, "junk.pem", fx.junk_pem, sizeof(fx.junk_pem));

    fx.hs = hs_verifier(NULL, NULL, JWT_SKEW_DEFAULT);
    return 0;
}

static int teardown_keys(void **state)
{
    const char *paths[] = {fx.rsa_pem, fx.rsa_other_pem, fx.rsa_small_pem,
                           fx.ec_pem,  fx.ec_other_pem,  fx.junk_pem};
    size_t i;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        unlink(paths[i]);
    rmdir(fx.dir);
    EVP_PKEY_free(fx.rsa);
    EVP_PKEY_free(fx.rsa_other);
    EVP_PKEY_free(fx.rsa_small);
    EVP_PKEY_free(fx.ec);
    EVP_PKEY_free(fx.ec_other);
    jwt_verifier_free(fx.hs);
    return 0;
}

/* ---- HS256 round trip ---- */

static void minted_token_verifies_with_claims(void **state)
{
    const char *rooms[] = {"project:42", "project:7:*"};
    jwt_mint_t in = {.sub = "alice@example.com",
                     .name = "Alice \xc3\x84rger",
                     .role = JWT_ROLE_REVIEWER,
                     .rooms = rooms,
                     .nrooms = 2,
                     .ttl_s = 3600,
                     .now = NOW};
    char err[ERR_LEN] = "", *token = NULL;
    jwt_claims_t c;

    assert_int_equal(jwt_mint_hs256((const unsigned char *)SECRET,
                                    strlen(SECRET), &in, &token, err,
                                    sizeof(err)),
                     0);
    assert_int_equal(
        jwt_verify(fx.hs, token, strlen(token), NOW + 10, &c, err, sizeof(err)),
        0);
    assert_string_equal(c.sub, "alice@example.com");
    assert_string_equal(c.name, "Alice \xc3\x84rger");
    assert_int_equal(c.role, JWT_ROLE_REVIEWER);
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.nrooms, 2);
    assert_string_equal(c.rooms[0].pattern, "project:42");
    assert_int_equal(c.rooms[0].has_role, 0);
    assert_string_equal(c.rooms[1].pattern, "project:7:*");
    jwt_claims_clear(&c);
    assert_int_equal(c.nrooms, 0);
    free(token);
}

static void mint_without_name_or_rooms(void **state)
{
    jwt_mint_t in = {
        .sub = "bot-1", .role = JWT_ROLE_BOT, .ttl_s = 60, .now = NOW};
    char err[ERR_LEN] = "", *token = NULL;
    jwt_claims_t c;

    assert_int_equal(jwt_mint_hs256((const unsigned char *)SECRET,
                                    strlen(SECRET), &in, &token, err,
                                    sizeof(err)),
                     0);
    assert_int_equal(
        jwt_verify(fx.hs, token, strlen(token), NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "");
    assert_int_equal(c.role, JWT_ROLE_BOT);
    assert_int_equal(c.nrooms, 0);
    jwt_claims_clear(&c);
    free(token);
}

static void minted_audience_and_issuer_verify(void **state)
{
    const char *rooms[] = {"project:*"};
    jwt_mint_t in = {.sub = "alice",
                     .role = JWT_ROLE_VIEWER,
                     .rooms = rooms,
                     .nrooms = 1,
                     .audience = "annolive",
                     .issuer = "https://auth.example.com",
                     .ttl_s = 600,
                     .now = NOW};
    jwt_verifier_t *v =
        hs_verifier("annolive", "https://auth.example.com", JWT_SKEW_DEFAULT);
    char err[ERR_LEN] = "", *token = NULL;

    assert_int_equal(jwt_mint_hs256((const unsigned char *)SECRET,
                                    strlen(SECRET), &in, &token, err,
                                    sizeof(err)),
                     0);
    expect_accept(v, token, NOW);
    expect_reject(fx.hs, token, NOW, "no audience is configured");
    free(token);
    jwt_verifier_free(v);
}

/* ---- forged tokens ---- */

static void tampered_payload_is_rejected(void **state)
{
    char *token = hs256("{" CLAIMS ",\"exp\":%lld}", NOW + 60);
    char *admin = signing_input(
        HS256_HEADER, "{\"sub\":\"alice\",\"role\":\"admin\",\"rooms\":["
                      "\"*\"],\"exp\":9999999999}");
    char *forged = join(admin, strrchr(token, '.') + 1);

    expect_reject(fx.hs, forged, NOW, "signature does not match");
    free(forged);
    free(admin);
    free(token);
}

static void tampered_signature_is_rejected(void **state)
{
    char *token = hs256("{" CLAIMS ",\"exp\":%lld}", NOW + 60);
    size_t sig = (size_t)(strrchr(token, '.') - token) + 1;
    size_t last = strlen(token) - 1;
    char *first_byte = replace_char(token, sig, token[sig] == 'A' ? 'B' : 'A');
    /* 43 characters encode 32 bytes, so the last one carries 2 zero bits:
     * 'A' and 'E' are 0 and 4, and both are canonical. */
    char *last_byte = replace_char(token, last, token[last] == 'A' ? 'E' : 'A');

    expect_accept(fx.hs, token, NOW);
    expect_reject(fx.hs, first_byte, NOW, "signature does not match");
    expect_reject(fx.hs, last_byte, NOW, "signature does not match");
    free(first_byte);
    free(last_byte);
    free(token);
}

static void wrong_secret_is_rejected(void **state)
{
    static const char other[] = "another-secret-0123456789abcdef-012345";
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    char *token = hmac_token(HS256_HEADER, payload, other, strlen(other));

    expect_reject(fx.hs, token, NOW, "signature does not match");
    free(token);
}

static void alg_none_is_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    char *unsigned_token =
        append_sig(signing_input("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload),
                   (const unsigned char *)"", 0);
    char *signed_none =
        hmac_token("{\"alg\":\"none\"}", payload, SECRET, strlen(SECRET));
    char *capital =
        hmac_token("{\"alg\":\"None\"}", payload, SECRET, strlen(SECRET));
    char *no_alg =
        hmac_token("{\"typ\":\"JWT\"}", payload, SECRET, strlen(SECRET));

    expect_reject(fx.hs, unsigned_token, NOW,
                  "alg \"none\" is not the configured HS256");
    expect_reject(fx.hs, signed_none, NOW,
                  "alg \"none\" is not the configured HS256");
    expect_reject(fx.hs, capital, NOW,
                  "alg \"None\" is not the configured HS256");
    expect_reject(fx.hs, no_alg, NOW, "header alg is missing");
    free(unsigned_token);
    free(signed_none);
    free(capital);
    free(no_alg);
}

/* Reads the whole file at path into a malloc'ed buffer. */
static unsigned char *read_file(const char *path, size_t *len)
{
    unsigned char *buf = malloc(16384);
    FILE *f = fopen(path, "rb");

    assert_non_null(buf);
    assert_non_null(f);
    *len = fread(buf, 1, 16384, f);
    assert_true(*len > 0);
    fclose(f);
    return buf;
}

/* The key-confusion attack: the RSA public key is public, so an attacker
 * can HMAC a token with its PEM bytes as the secret. */
static void key_confusion_hs256_is_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    jwt_verifier_t *v = key_verifier("RS256", fx.rsa_pem);
    size_t pem_len;
    unsigned char *pem = read_file(fx.rsa_pem, &pem_len);
    char *hs = hmac_token(HS256_HEADER, payload, pem, pem_len);
    char *rs = hmac_token(RS256_HEADER, payload, pem, pem_len);

    expect_reject(v, hs, NOW, "alg \"HS256\" is not the configured RS256");
    expect_reject(v, rs, NOW, "signature is 32 bytes, the RS256 key needs 256");
    free(rs);
    free(hs);
    free(pem);
    jwt_verifier_free(v);
}

static void token_of_other_alg_is_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    char *rs = pkey_token(fx.rsa, RS256_HEADER, payload, 0);
    char *es = pkey_token(fx.ec, ES256_HEADER, payload, SIG_RAW_ECDSA);
    jwt_verifier_t *ev = key_verifier("ES256", fx.ec_pem);

    expect_reject(fx.hs, rs, NOW, "alg \"RS256\" is not the configured HS256");
    expect_reject(fx.hs, es, NOW, "alg \"ES256\" is not the configured HS256");
    expect_reject(ev, rs, NOW, "alg \"RS256\" is not the configured ES256");
    free(rs);
    free(es);
    jwt_verifier_free(ev);
}

static void crit_header_is_rejected(void **state)
{
    char *token =
        hmac_token("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                   "{" CLAIMS ",\"exp\":9999999999}", SECRET, strlen(SECRET));

    expect_reject(fx.hs, token, NOW, "crit");
    free(token);
}

/* ---- time claims ---- */

static void expired_beyond_skew_is_rejected(void **state)
{
    char *long_ago = hs256("{" CLAIMS ",\"exp\":%lld}", NOW - 120);
    char *at_skew = hs256("{" CLAIMS ",\"exp\":%lld}", NOW - 60);

    expect_reject(fx.hs, long_ago, NOW, "token expired 120 s ago");
    expect_reject(fx.hs, at_skew, NOW, "token expired 60 s ago");
    free(long_ago);
    free(at_skew);
}

static void expired_within_skew_is_accepted(void **state)
{
    char *recent = hs256("{" CLAIMS ",\"exp\":%lld}", NOW - 59);
    char *now = hs256("{" CLAIMS ",\"exp\":%lld}", NOW);
    jwt_verifier_t *strict = hs_verifier(NULL, NULL, 0);

    expect_accept(fx.hs, recent, NOW);
    expect_accept(fx.hs, now, NOW);
    expect_reject(strict, now, NOW, "token expired 0 s ago");
    expect_accept(strict, now, NOW - 1);
    free(recent);
    free(now);
    jwt_verifier_free(strict);
}

static void nbf_in_future_is_rejected(void **state)
{
    char *late =
        hs256("{" CLAIMS ",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 61);
    char *in_skew =
        hs256("{" CLAIMS ",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 60);

    expect_reject(fx.hs, late, NOW, "token is not valid for another 61 s");
    expect_accept(fx.hs, in_skew, NOW);
    free(late);
    free(in_skew);
}

static void iat_in_future_is_rejected(void **state)
{
    char *future =
        hs256("{" CLAIMS ",\"exp\":%lld,\"iat\":%lld}", NOW + 7200, NOW + 3600);
    char *past =
        hs256("{" CLAIMS ",\"exp\":%lld,\"iat\":%lld}", NOW + 7200, NOW - 10);

    expect_reject(fx.hs, future, NOW, "token was issued 3600 s in the future");
    expect_accept(fx.hs, past, NOW);
    free(future);
    free(past);
}

static void missing_or_bad_exp_is_rejected(void **state)
{
    reject_payload("{" CLAIMS "}", "exp is missing");
    reject_payload("{" CLAIMS ",\"exp\":1.7e12}", "exp is not an integer");
    reject_payload("{" CLAIMS ",\"exp\":\"9999999999\"}",
                   "exp is not an integer");
    reject_payload("{" CLAIMS ",\"exp\":-1}", "exp -1 is outside");
    reject_payload("{" CLAIMS ",\"exp\":253402300800}", "is outside");
    reject_payload("{" CLAIMS ",\"exp\":9999999999,\"nbf\":null}",
                   "nbf is not an integer");
    reject_payload("{" CLAIMS ",\"exp\":9999999999,\"iat\":true}",
                   "iat is not an integer");
}

static void now_out_of_range_is_invalid(void **state)
{
    char *token = hs256("{" CLAIMS ",\"exp\":%lld}", NOW + 60);
    char err[ERR_LEN] = "";
    jwt_claims_t c;

    assert_int_equal(
        jwt_verify(fx.hs, token, strlen(token), -1, &c, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(jwt_verify(fx.hs, token, strlen(token), JWT_TIME_MAX + 1,
                                &c, err, sizeof(err)),
                     -EINVAL);
    free(token);
}

/* ---- aud and iss ---- */

static void audience_is_checked(void **state)
{
    jwt_verifier_t *v = hs_verifier("annolive", NULL, JWT_SKEW_DEFAULT);
    char *one =
        hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":\"annolive\"}", NOW + 60);
    char *list = hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":[\"x\",\"annolive\"]}",
                       NOW + 60);
    char *other =
        hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":\"annolive2\"}", NOW + 60);
    char *other_list =
        hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":[\"x\"]}", NOW + 60);
    char *bad_item =
        hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":[\"annolive\",1]}", NOW + 60);
    char *bad_type = hs256("{" CLAIMS ",\"exp\":%lld,\"aud\":5}", NOW + 60);
    char *none = hs256("{" CLAIMS ",\"exp\":%lld}", NOW + 60);

    expect_accept(v, one, NOW);
    expect_accept(v, list, NOW);
    expect_reject(v, other, NOW, "aud does not match the configured audience");
    expect_reject(v, other_list, NOW,
                  "aud does not contain the configured audience");
    expect_reject(v, bad_item, NOW, "aud[1] is not a string");
    expect_reject(v, bad_type, NOW, "aud is not a string or an array");
    expect_reject(v, none, NOW, "aud is missing");
    expect_reject(fx.hs, one, NOW, "no audience is configured");
    free(one);
    free(list);
    free(other);
    free(other_list);
    free(bad_item);
    free(bad_type);
    free(none);
    jwt_verifier_free(v);
}

static void issuer_is_checked(void **state)
{
    jwt_verifier_t *v =
        hs_verifier(NULL, "https://auth.example.com", JWT_SKEW_DEFAULT);
    char *good =
        hs256("{" CLAIMS ",\"exp\":%lld,\"iss\":\"https://auth.example.com\"}",
              NOW + 60);
    char *other =
        hs256("{" CLAIMS ",\"exp\":%lld,\"iss\":\"https://evil.example.com\"}",
              NOW + 60);
    char *none = hs256("{" CLAIMS ",\"exp\":%lld}", NOW + 60);
    char *bad_type = hs256("{" CLAIMS ",\"exp\":%lld,\"iss\":5}", NOW + 60);

    expect_accept(v, good, NOW);
    expect_accept(fx.hs, good, NOW);
    expect_reject(v, other, NOW, "iss does not match the configured issuer");
    expect_reject(v, none, NOW, "iss is missing");
    expect_reject(fx.hs, bad_type, NOW, "iss is not a string");
    free(good);
    free(other);
    free(none);
    free(bad_type);
    jwt_verifier_free(v);
}

/* ---- malformed tokens ---- */

/* Returns b64url(payload) after appending spaces to payload until its
 * length modulo 3 is rem, so that the encoding has a chosen length. */
static char *payload_segment(const char *payload, size_t rem)
{
    char text[512];
    size_t len;

    snprintf(text, sizeof(text), "%s", payload);
    len = strlen(text);
    while (len % 3 != rem)
        text[len++] = ' ';
    text[len] = '\0';
    return b64url(text, len);
}

/* Returns a token of b64url(HS256_HEADER) "." segment, signed with SECRET,
 * so that only the payload segment is at fault. */
static char *token_with_payload_segment(const char *segment)
{
    char *h = b64url(HS256_HEADER, strlen(HS256_HEADER));
    char *input = join(h, segment);

    free(h);
    return sign_input(input, SECRET, strlen(SECRET));
}

static void reject_segment(const char *segment, const char *want)
{
    char *token = token_with_payload_segment(segment);

    expect_reject(fx.hs, token, NOW, want);
    free(token);
}

static void malformed_base64_is_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    char *two = payload_segment(payload, 1);   /* length 4k + 2 */
    char *three = payload_segment(payload, 2); /* length 4k + 3 */
    char *four = payload_segment(payload, 0);  /* length 4k */
    char buf[1024];
    char *token;

    snprintf(buf, sizeof(buf), "%s==", two);
    reject_segment(buf, "payload is not valid base64url");
    snprintf(buf, sizeof(buf), "%s=", three);
    reject_segment(buf, "payload is not valid base64url");
    snprintf(buf, sizeof(buf), "%sA", four);
    reject_segment(buf, "payload is not valid base64url");

    /* Unused low bits of the last character must be zero. */
    snprintf(buf, sizeof(buf), "%s", two);
    buf[strlen(buf) - 1] = 'B';
    reject_segment(buf, "payload is not valid base64url");
    snprintf(buf, sizeof(buf), "%s", three);
    buf[strlen(buf) - 1] = 'B';
    reject_segment(buf, "payload is not valid base64url");

    /* Standard base64 characters and whitespace are not base64url. */
    snprintf(buf, sizeof(buf), "%s", four);
    buf[4] = '+';
    reject_segment(buf, "payload is not valid base64url");
    buf[4] = '/';
    reject_segment(buf, "payload is not valid base64url");
    buf[4] = ' ';
    reject_segment(buf, "payload is not valid base64url");

    /* Header and signature segments are held to the same rules. */
    token = token_with_payload_segment(four);
    snprintf(buf, sizeof(buf), "%s=", token);
    expect_reject(fx.hs, buf, NOW, "signature is not valid base64url");
    buf[3] = '*';
    expect_reject(fx.hs, buf, NOW, "header is not valid base64url");
    expect_reject_len(fx.hs, "e30\0e30.e30.AAAA", 16, NOW,
                      "header is not valid base64url");
    expect_accept(fx.hs, token, NOW);

    free(token);
    free(two);
    free(three);
    free(four);
}

static void padding_free_lengths_all_verify(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    size_t rem;

    for (rem = 0; rem < 3; rem++) {
        char *segment = payload_segment(payload, rem);
        char *token = token_with_payload_segment(segment);

        expect_accept(fx.hs, token, NOW);
        free(token);
        free(segment);
    }
}

static void malformed_json_is_rejected(void **state)
{
    char *token;

    reject_payload("{" CLAIMS ",\"exp\":9999999999",
                   "payload is not valid JSON");
    reject_payload("not json", "payload is not valid JSON");
    reject_payload("", "payload is not valid JSON");
    reject_payload("[1,2]", "payload is not a JSON object");
    reject_payload("{\"a\":1} {}", "payload is not valid JSON");

    token = hmac_token("{\"alg\":\"HS256\"", "{}", SECRET, strlen(SECRET));
    expect_reject(fx.hs, token, NOW, "header is not valid JSON");
    free(token);
    token = hmac_token("[\"HS256\"]", "{}", SECRET, strlen(SECRET));
    expect_reject(fx.hs, token, NOW, "header is not a JSON object");
    free(token);
}

static void wrong_segment_count_is_rejected(void **state)
{
    char *token = hs256("{" CLAIMS ",\"exp\":9999999999}");
    char *extra = join(token, "AAAA");
    char *two = strdup(token);

    assert_non_null(two);
    *strrchr(two, '.') = '\0';
    expect_reject(fx.hs, two, NOW,
                  "expected 3 segments separated by '.', "
                  "found 2");
    expect_reject(fx.hs, extra, NOW, "found 4");
    expect_reject(fx.hs, "abc", NOW, "found 1");
    expect_reject(fx.hs, "", NOW, "token is empty");
    expect_reject(fx.hs, "..", NOW, "header is not valid JSON");
    free(token);
    free(extra);
    free(two);
}

static void duplicate_keys_are_rejected(void **state)
{
    char *token =
        hmac_token("{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                   "{" CLAIMS ",\"exp\":9999999999}", SECRET, strlen(SECRET));

    expect_reject(fx.hs, token, NOW, "header has a duplicate key");
    free(token);
    reject_payload("{" CLAIMS ",\"sub\":\"mallory\",\"exp\":9999999999}",
                   "payload has a duplicate key");
    reject_payload("{" CLAIMS ",\"exp\":1,\"exp\":9999999999}",
                   "payload has a duplicate key");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[{\"pattern\":"
                   "\"x\",\"role\":\"viewer\",\"role\":\"admin\"}],"
                   "\"exp\":9999999999}",
                   "payload has a duplicate key");
}

static void oversize_token_is_rejected(void **state)
{
    static char pad[JWT_TOKEN_MAX];
    char *fits = NULL, *token;
    size_t n;

    /* Grow a padding claim until the token passes JWT_TOKEN_MAX. The last
     * token at or under the limit must verify. */
    memset(pad, 'x', sizeof(pad) - 1);
    for (n = 5800; n < sizeof(pad); n++) {
        token = hs256("{" CLAIMS ",\"exp\":9999999999,\"pad\":\"%.*s\"}",
                      (int)n, pad);
        if (strlen(token) > JWT_TOKEN_MAX)
            break;
        free(fits);
        fits = token;
    }
    assert_non_null(fits);
    assert_true(strlen(fits) >= JWT_TOKEN_MAX - 2);
    expect_accept(fx.hs, fits, NOW);
    expect_reject(fx.hs, token, NOW, "over the maximum of 8192");
    free(fits);
    free(token);
}

/* ---- claims ---- */

static void bad_role_is_rejected(void **state)
{
    reject_payload("{\"sub\":\"a\",\"role\":\"superuser\",\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "role \"superuser\" is not viewer, annotator, reviewer, "
                   "bot or admin");
    reject_payload("{\"sub\":\"a\",\"role\":\"Admin\",\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "role \"Admin\" is not");
    reject_payload("{\"sub\":\"a\",\"role\":3,\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "role is not a string");
    reject_payload("{\"sub\":\"a\",\"rooms\":[],\"exp\":9999999999}",
                   "role is missing");
}

static void bad_sub_or_name_is_rejected(void **state)
{
    char payload[512];

    reject_payload("{\"role\":\"viewer\",\"rooms\":[],\"exp\":9999999999}",
                   "sub is missing");
    reject_payload("{\"sub\":\"\",\"role\":\"viewer\",\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "sub is not 1..128 bytes of printable ASCII");
    reject_payload("{\"sub\":\"al ice\",\"role\":\"viewer\",\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "sub is not");
    reject_payload("{\"sub\":7,\"role\":\"viewer\",\"rooms\":[],"
                   "\"exp\":9999999999}",
                   "sub is not");
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"%0129d\",\"role\":\"viewer\",\"rooms\":[],"
             "\"exp\":9999999999}",
             0);
    reject_payload(payload, "sub is not");

    reject_payload("{" CLAIMS ",\"name\":\"bell\\u0007\",\"exp\":9999999999}",
                   "name is not 1..128 bytes without control characters");
    reject_payload("{" CLAIMS ",\"name\":\"\",\"exp\":9999999999}",
                   "name is not");
    reject_payload("{" CLAIMS ",\"name\":[],\"exp\":9999999999}",
                   "name is not");
}

static void bad_rooms_are_rejected(void **state)
{
    char payload[JWT_TOKEN_MAX];
    size_t i, len;

    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9999999999}",
                   "rooms is missing");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":\"x\","
                   "\"exp\":9999999999}",
                   "rooms is not an array");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"ok\","
                   "\"a*b\"],\"exp\":9999999999}",
                   "rooms[1] is not 1..128 bytes");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"a b\"],"
                   "\"exp\":9999999999}",
                   "rooms[0] is not");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"\"],"
                   "\"exp\":9999999999}",
                   "rooms[0] is not");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"**\"],"
                   "\"exp\":9999999999}",
                   "rooms[0] is not");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[5],"
                   "\"exp\":9999999999}",
                   "rooms[0] is not");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"x\","
                   "{\"pattern\":\"x\",\"role\":\"admin\"}],"
                   "\"exp\":9999999999}",
                   "rooms[1] repeats the pattern of rooms[0]");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":["
                   "{\"pattern\":\"x\"}],\"exp\":9999999999}",
                   "rooms[0] must have exactly the members pattern and role");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":["
                   "{\"pattern\":\"x\",\"role\":\"admin\",\"extra\":1}],"
                   "\"exp\":9999999999}",
                   "rooms[0] must have exactly");
    reject_payload("{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":["
                   "{\"pattern\":\"x\",\"role\":\"god\"}],"
                   "\"exp\":9999999999}",
                   "rooms[0].role \"god\" is not");

    /* A pattern of 129 bytes, then 257 entries. */
    len = (size_t)snprintf(payload, sizeof(payload),
                           "{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"");
    memset(payload + len, 'p', 129);
    snprintf(payload + len + 129, sizeof(payload) - len - 129,
             "\"],\"exp\":9999999999}");
    reject_payload(payload, "rooms[0] is not");
    len = (size_t)snprintf(payload, sizeof(payload),
                           "{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[");
    for (i = 0; i < JWT_ROOMS_MAX + 1; i++)
        len += (size_t)snprintf(payload + len, sizeof(payload) - len,
                                "%s\"r%zu\"", i ? "," : "", i);
    snprintf(payload + len, sizeof(payload) - len, "],\"exp\":9999999999}");
    reject_payload(payload, "rooms has 257 entries, over the maximum of 256");
}

static void longest_pattern_is_accepted(void **state)
{
    char payload[512], pattern[JWT_PATTERN_MAX + 1];
    char err[ERR_LEN] = "", *token;
    jwt_claims_t c;

    memset(pattern, 'p', JWT_PATTERN_MAX - 1);
    pattern[JWT_PATTERN_MAX - 1] = '*';
    pattern[JWT_PATTERN_MAX] = '\0';
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"a\",\"role\":\"viewer\",\"rooms\":[\"%s\"],"
             "\"exp\":9999999999}",
             pattern);
    token = hmac_token(HS256_HEADER, payload, SECRET, strlen(SECRET));
    assert_int_equal(
        jwt_verify(fx.hs, token, strlen(token), NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.rooms[0].pattern, pattern);
    jwt_claims_clear(&c);
    free(token);
}

/* ---- room patterns ---- */

/* Verifies a token with the given rooms JSON and token role. */
static void claims_with_rooms(const char *role, const char *rooms,
                              jwt_claims_t *c)
{
    char err[ERR_LEN] = "";
    char *token = hs256("{\"sub\":\"a\",\"role\":\"%s\",\"rooms\":%s,"
                        "\"exp\":9999999999}",
                        role, rooms);
    int rc = jwt_verify(fx.hs, token, strlen(token), NOW, c, err, sizeof(err));

    if (rc != 0)
        fail_msg("rejected with %d: %s", rc, err);
    free(token);
}

static void room_role_follows_most_specific_pattern(void **state)
{
    static const struct {
        const char *room;
        int rc;
        jwt_role_t role;
    } cases[] = {
        /* exact beats the wildcards project:4* and project:* */
        {"project:42", 0, JWT_ROLE_ANNOTATOR},
        /* project:42:* (11 bytes) beats project:4* (9) and project:* (8) */
        {"project:42:doc1", 0, JWT_ROLE_VIEWER},
        {"project:42:", 0, JWT_ROLE_VIEWER},
        /* project:4* beats project:* */
        {"project:43", 0, JWT_ROLE_REVIEWER},
        {"project:4", 0, JWT_ROLE_REVIEWER},
        {"project:7", 0, JWT_ROLE_ANNOTATOR},
        {"project:", 0, JWT_ROLE_ANNOTATOR},
        {"team:7", 0, JWT_ROLE_ADMIN},
        {"team:70", -EACCES, 0},
        {"team:", -EACCES, 0},
        {"project", -EACCES, 0},
        {"", -EACCES, 0},
    };
    jwt_claims_t c;
    size_t i;

    claims_with_rooms("annotator",
                      "[\"project:42\","
                      "{\"pattern\":\"project:42:*\",\"role\":\"viewer\"},"
                      "\"project:*\","
                      "{\"pattern\":\"project:4*\",\"role\":\"reviewer\"},"
                      "{\"pattern\":\"team:7\",\"role\":\"admin\"}]",
                      &c);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jwt_role_t role = JWT_ROLE_COUNT;
        int rc = jwt_room_role(&c, cases[i].room, &role);

        if (rc != cases[i].rc)
            fail_msg("room \"%s\": rc %d, expected %d", cases[i].room, rc,
                     cases[i].rc);
        if (rc == 0 && role != cases[i].role)
            fail_msg("room \"%s\": role %s, expected %s", cases[i].room,
                     jwt_role_name(role), jwt_role_name(cases[i].role));
    }
    jwt_claims_clear(&c);
}

static void star_pattern_matches_every_room(void **state)
{
    jwt_role_t role = JWT_ROLE_COUNT;
    jwt_claims_t c;

    claims_with_rooms("bot", "[\"*\",{\"pattern\":\"x\",\"role\":\"viewer\"}]",
                      &c);
    assert_int_equal(jwt_room_role(&c, "anything:at:all", &role), 0);
    assert_int_equal(role, JWT_ROLE_BOT);
    assert_int_equal(jwt_room_role(&c, "x", &role), 0);
    assert_int_equal(role, JWT_ROLE_VIEWER);
    assert_int_equal(jwt_room_role(&c, "xy", &role), 0);
    assert_int_equal(role, JWT_ROLE_BOT);
    jwt_claims_clear(&c);
}

static void empty_rooms_match_nothing(void **state)
{
    jwt_role_t role = JWT_ROLE_COUNT;
    jwt_claims_t c;

    claims_with_rooms("admin", "[]", &c);
    assert_int_equal(jwt_room_role(&c, "project:42", &role), -EACCES);
    assert_int_equal(role, JWT_ROLE_COUNT);
    jwt_claims_clear(&c);
}

/* ---- RS256 and ES256 ---- */

static void rs256_token_verifies(void **state)
{
    jwt_verifier_t *v = key_verifier("RS256", fx.rsa_pem);
    char *token =
        pkey_token(fx.rsa, RS256_HEADER, "{" CLAIMS ",\"exp\":9999999999}", 0);
    char err[ERR_LEN] = "";
    jwt_claims_t c;

    assert_int_equal(
        jwt_verify(v, token, strlen(token), NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.role, JWT_ROLE_ANNOTATOR);
    jwt_claims_clear(&c);
    free(token);
    jwt_verifier_free(v);
}

static void rs256_forgeries_are_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    jwt_verifier_t *v = key_verifier("RS256", fx.rsa_pem);
    char *other_key = pkey_token(fx.rsa_other, RS256_HEADER, payload, 0);
    char *flipped = pkey_token(fx.rsa, RS256_HEADER, payload, SIG_FLIP_BIT);
    char *good = pkey_token(fx.rsa, RS256_HEADER, payload, 0);
    char *truncated = strdup(good);

    assert_non_null(truncated);
    /* 342 characters encode 256 bytes, and 340 encode 255. */
    truncated[strlen(truncated) - 2] = '\0';
    expect_reject(v, other_key, NOW, "signature does not match");
    expect_reject(v, flipped, NOW, "signature does not match");
    expect_reject(v, truncated, NOW,
                  "signature is 255 bytes, the RS256 key needs 256");
    free(other_key);
    free(flipped);
    free(good);
    free(truncated);
    jwt_verifier_free(v);
}

static void es256_token_verifies(void **state)
{
    jwt_verifier_t *v = key_verifier("ES256", fx.ec_pem);
    char *token = pkey_token(fx.ec, ES256_HEADER,
                             "{" CLAIMS ",\"exp\":9999999999}", SIG_RAW_ECDSA);
    char err[ERR_LEN] = "";
    jwt_claims_t c;

    assert_int_equal(
        jwt_verify(v, token, strlen(token), NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.rooms[0].pattern, "project:42");
    jwt_claims_clear(&c);
    free(token);
    jwt_verifier_free(v);
}

static void es256_forgeries_are_rejected(void **state)
{
    const char *payload = "{" CLAIMS ",\"exp\":9999999999}";
    unsigned char ones[64];
    jwt_verifier_t *v = key_verifier("ES256", fx.ec_pem);
    char *other_key =
        pkey_token(fx.ec_other, ES256_HEADER, payload, SIG_RAW_ECDSA);
    char *flipped =
        pkey_token(fx.ec, ES256_HEADER, payload, SIG_RAW_ECDSA | SIG_FLIP_BIT);
    char *der = pkey_token(fx.ec, ES256_HEADER, payload, 0);
    char *over_order;

    /* r and s of all one bits are above the group order. */
    memset(ones, 0xff, sizeof(ones));
    over_order =
        append_sig(signing_input(ES256_HEADER, payload), ones, sizeof(ones));
    expect_reject(v, other_key, NOW, "signature does not match");
    expect_reject(v, flipped, NOW, "signature does not match");
    expect_reject(v, der, NOW, "ES256 needs 64 (r || s)");
    expect_reject(v, over_order, NOW, "signature does not match");
    free(other_key);
    free(flipped);
    free(der);
    free(over_order);
    jwt_verifier_free(v);
}

/* ---- verifier settings ---- */

/* Checks that jwt_verifier_new() fails on cfg with code and a message
 * containing want. */
static void expect_bad_config(const jwt_config_t *cfg, int code,
                              const char *want)
{
    jwt_verifier_t *v = (jwt_verifier_t *)&v; /* must be reset to NULL */
    char err[ERR_LEN] = "";
    int rc = jwt_verifier_new(&v, cfg, err, sizeof(err));

    if (rc != code)
        fail_msg("expected %d with \"%s\", got %d: %s", code, want, rc, err);
    if (!strstr(err, want))
        fail_msg("message \"%s\" does not contain \"%s\"", err, want);
    assert_null(v);
}

static void short_secret_is_rejected(void **state)
{
    static const char short_secret[] = "0123456789abcdef0123456789abcde";
    jwt_verifier_t *v = NULL;
    jwt_config_t cfg;
    char err[ERR_LEN] = "";

    jwt_config_init(&cfg);
    cfg.alg = "HS256";
    cfg.secret = (const unsigned char *)short_secret;
    cfg.secret_len = strlen(short_secret);
    expect_bad_config(&cfg, -EINVAL,
                      "HS256 secret is 31 bytes, it must be at least 32");
    cfg.secret = NULL;
    cfg.secret_len = 0;
    expect_bad_config(&cfg, -EINVAL, "at least 32");

    cfg.secret = (const unsigned char *)short_secret;
    cfg.secret_len = strlen(short_secret);
    assert_int_equal(jwt_verifier_new(&v, &cfg, err, sizeof(err)), -EINVAL);
    assert_null(strstr(err, short_secret));
}

static void unknown_alg_is_rejected(void **state)
{
    jwt_config_t cfg;

    jwt_config_init(&cfg);
    cfg.secret = (const unsigned char *)SECRET;
    cfg.secret_len = strlen(SECRET);
    expect_bad_config(&cfg, -EINVAL, "alg is missing");
    cfg.alg = "none";
    expect_bad_config(&cfg, -EINVAL, "alg \"none\" is not supported");
    cfg.alg = "HS512";
    expect_bad_config(&cfg, -EINVAL, "alg \"HS512\" is not supported");
    cfg.alg = "hs256";
    expect_bad_config(&cfg, -EINVAL, "is not supported");
}

static void config_rejects_bad_skew_aud_iss(void **state)
{
    jwt_config_t cfg;

    jwt_config_init(&cfg);
    assert_int_equal(cfg.skew_s, 60);
    cfg.alg = "HS256";
    cfg.secret = (const unsigned char *)SECRET;
    cfg.secret_len = strlen(SECRET);
    cfg.skew_s = -1;
    expect_bad_config(&cfg, -EINVAL, "clock skew -1 s is outside 0..3600 s");
    cfg.skew_s = JWT_SKEW_MAX + 1;
    expect_bad_config(&cfg, -EINVAL, "clock skew 3601 s");
    cfg.skew_s = 0;
    cfg.audience = "";
    expect_bad_config(&cfg, -EINVAL, "audience is empty");
    cfg.audience = NULL;
    cfg.issuer = "";
    expect_bad_config(&cfg, -EINVAL, "issuer is empty");
}

static void key_file_problems_are_rejected(void **state)
{
    char missing[400];
    jwt_config_t cfg;

    snprintf(missing, sizeof(missing), "%s/missing.pem", fx.dir);
    jwt_config_init(&cfg);
    cfg.alg = "RS256";
    expect_bad_config(&cfg, -EINVAL, "RS256 needs a key file");
    cfg.key_file = missing;
    expect_bad_config(&cfg, -ENOENT, "cannot open key file");
    cfg.key_file = fx.junk_pem;
    expect_bad_config(&cfg, -EINVAL, "has no PEM public key");
    cfg.key_file = fx.ec_pem;
    expect_bad_config(&cfg, -EINVAL, "has no RSA key, which RS256 needs");
    cfg.key_file = fx.rsa_small_pem;
    expect_bad_config(&cfg, -EINVAL, "has 1024 bits, RS256 needs 2048 to 8192");
    cfg.alg = "ES256";
    cfg.key_file = fx.rsa_pem;
    expect_bad_config(&cfg, -EINVAL, "has no P-256 EC key");
}

static void mixed_key_material_is_rejected(void **state)
{
    jwt_config_t cfg;

    jwt_config_init(&cfg);
    cfg.alg = "RS256";
    cfg.key_file = fx.rsa_pem;
    cfg.secret = (const unsigned char *)SECRET;
    cfg.secret_len = strlen(SECRET);
    expect_bad_config(&cfg, -EINVAL, "a secret is for HS256, not RS256");
    cfg.alg = "HS256";
    expect_bad_config(&cfg, -EINVAL, "a key file is for RS256 and ES256");
}

/* ---- minting ---- */

/* Checks that jwt_mint_hs256() of in with SECRET fails with code and a
 * message containing want. */
static void expect_bad_mint(const jwt_mint_t *in, int code, const char *want)
{
    char err[ERR_LEN] = "", *token = (char *)"unset";
    int rc = jwt_mint_hs256((const unsigned char *)SECRET, strlen(SECRET), in,
                            &token, err, sizeof(err));

    if (rc != code)
        fail_msg("expected %d with \"%s\", got %d: %s", code, want, rc, err);
    if (!strstr(err, want))
        fail_msg("message \"%s\" does not contain \"%s\"", err, want);
    assert_null(token);
}

static void mint_rejects_invalid_claims(void **state)
{
    const char *rooms[] = {"project:42", "bad room"};
    const char *twice[] = {"x", "x"};
    const jwt_mint_t good = {
        .sub = "alice", .role = JWT_ROLE_VIEWER, .ttl_s = 60, .now = NOW};
    jwt_mint_t in;
    char err[ERR_LEN] = "", *token = NULL;

    assert_int_equal(jwt_mint_hs256((const unsigned char *)SECRET, 31, &good,
                                    &token, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "at least 32"));
    assert_null(token);

    in = good;
    in.sub = NULL;
    expect_bad_mint(&in, -EINVAL, "sub is not");
    in.sub = "al ice";
    expect_bad_mint(&in, -EINVAL, "sub is not");
    in = good;
    in.name = "line\nbreak";
    expect_bad_mint(&in, -EINVAL, "name is not");
    in.name = "bad \xc3 utf-8";
    expect_bad_mint(&in, -EINVAL, "name is not");
    in = good;
    in.role = JWT_ROLE_COUNT;
    expect_bad_mint(&in, -EINVAL, "role 5 is not a jwt_role_t");
    in = good;
    in.rooms = rooms;
    in.nrooms = 2;
    expect_bad_mint(&in, -EINVAL, "rooms[1] is not");
    in.rooms = twice;
    expect_bad_mint(&in, -EINVAL, "rooms[1] repeats the pattern of rooms[0]");
    in = good;
    in.ttl_s = 0;
    expect_bad_mint(&in, -EINVAL, "ttl 0 s");
    in.ttl_s = JWT_TIME_MAX;
    expect_bad_mint(&in, -EINVAL, "ends after year 9999");
    in = good;
    in.audience = "";
    expect_bad_mint(&in, -EINVAL, "audience is empty");
}

static void mint_rejects_oversize_token(void **state)
{
    static char patterns[JWT_ROOMS_MAX][JWT_PATTERN_MAX + 1];
    const char *rooms[JWT_ROOMS_MAX];
    jwt_mint_t in = {.sub = "alice",
                     .role = JWT_ROLE_VIEWER,
                     .rooms = rooms,
                     .nrooms = JWT_ROOMS_MAX,
                     .ttl_s = 60,
                     .now = NOW};
    size_t i;

    for (i = 0; i < JWT_ROOMS_MAX; i++) {
        snprintf(patterns[i], sizeof(patterns[i]), "project:%zu:%0100d", i, 0);
        rooms[i] = patterns[i];
    }
    expect_bad_mint(&in, -E2BIG, "over the maximum of 8192");
}

/* ---- roles ---- */

static void role_names_round_trip(void **state)
{
    static const char *const names[] = {"viewer", "annotator", "reviewer",
                                        "bot", "admin"};
    jwt_role_t role;
    int i;

    for (i = 0; i < JWT_ROLE_COUNT; i++) {
        assert_string_equal(jwt_role_name((jwt_role_t)i), names[i]);
        assert_int_equal(jwt_role_parse(names[i], &role), 0);
        assert_int_equal(role, i);
    }
    assert_null(jwt_role_name(JWT_ROLE_COUNT));
    assert_int_equal(jwt_role_parse("Admin", &role), -EINVAL);
    assert_int_equal(jwt_role_parse("", &role), -EINVAL);
    assert_int_equal(jwt_role_parse(NULL, &role), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minted_token_verifies_with_claims),
        cmocka_unit_test(mint_without_name_or_rooms),
        cmocka_unit_test(minted_audience_and_issuer_verify),
        cmocka_unit_test(tampered_payload_is_rejected),
        cmocka_unit_test(tampered_signature_is_rejected),
        cmocka_unit_test(wrong_secret_is_rejected),
        cmocka_unit_test(alg_none_is_rejected),
        cmocka_unit_test(key_confusion_hs256_is_rejected),
        cmocka_unit_test(token_of_other_alg_is_rejected),
        cmocka_unit_test(crit_header_is_rejected),
        cmocka_unit_test(expired_beyond_skew_is_rejected),
        cmocka_unit_test(expired_within_skew_is_accepted),
        cmocka_unit_test(nbf_in_future_is_rejected),
        cmocka_unit_test(iat_in_future_is_rejected),
        cmocka_unit_test(missing_or_bad_exp_is_rejected),
        cmocka_unit_test(now_out_of_range_is_invalid),
        cmocka_unit_test(audience_is_checked),
        cmocka_unit_test(issuer_is_checked),
        cmocka_unit_test(malformed_base64_is_rejected),
        cmocka_unit_test(padding_free_lengths_all_verify),
        cmocka_unit_test(malformed_json_is_rejected),
        cmocka_unit_test(wrong_segment_count_is_rejected),
        cmocka_unit_test(duplicate_keys_are_rejected),
        cmocka_unit_test(oversize_token_is_rejected),
        cmocka_unit_test(bad_role_is_rejected),
        cmocka_unit_test(bad_sub_or_name_is_rejected),
        cmocka_unit_test(bad_rooms_are_rejected),
        cmocka_unit_test(longest_pattern_is_accepted),
        cmocka_unit_test(room_role_follows_most_specific_pattern),
        cmocka_unit_test(star_pattern_matches_every_room),
        cmocka_unit_test(empty_rooms_match_nothing),
        cmocka_unit_test(rs256_token_verifies),
        cmocka_unit_test(rs256_forgeries_are_rejected),
        cmocka_unit_test(es256_token_verifies),
        cmocka_unit_test(es256_forgeries_are_rejected),
        cmocka_unit_test(short_secret_is_rejected),
        cmocka_unit_test(unknown_alg_is_rejected),
        cmocka_unit_test(config_rejects_bad_skew_aud_iss),
        cmocka_unit_test(key_file_problems_are_rejected),
        cmocka_unit_test(mixed_key_material_is_rejected),
        cmocka_unit_test(mint_rejects_invalid_claims),
        cmocka_unit_test(mint_rejects_oversize_token),
        cmocka_unit_test(role_names_round_trip),
    };

    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
