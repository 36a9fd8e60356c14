/*
 * JWT verification and HS256 minting on OpenSSL 3 and jansson: strict
 * base64url, one pinned algorithm per verifier, and the claims that
 * annolive reads. jwt.h describes the accepted tokens.
 */
#include "jwt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define HS256_LEN 32  /* bytes in an HMAC-SHA-256 */
#define ES256_HALF 32 /* bytes in each of r and s of a JOSE ES256 signature */
#define SIG_MAX 1024  /* bytes in an RS256 signature with an 8192-bit key */
#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 8192
#define QUOTE_MAX 16              /* bytes of a token value in a message */
#define QUOTE_BUF (QUOTE_MAX + 6) /* quotes, "..." and NUL */

/* Unpadded base64url length of n bytes. */
#define B64URL_LEN(n) (((n)*4 + 2) / 3)

typedef enum { ALG_HS256, ALG_RS256, ALG_ES256, ALG_COUNT } alg_t;

static const char *const alg_names[ALG_COUNT] = {"HS256", "RS256", "ES256"};

static const char *const role_names[JWT_ROLE_COUNT] = {
    "viewer", "annotator", "reviewer", "bot", "admin"};

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct jwt_verifier {
    alg_t alg;
    unsigned char *secret; /* HS256 only, wiped before it is freed */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 and ES256 only */
    char *audience; /* NULL: tokens must carry no aud */
    char *issuer;   /* NULL: iss is not checked */
    int64_t skew;
};

/* The three segments of a token, pointing into it. */
typedef struct {
    const char *header;
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
    size_t signed_len; /* bytes of header '.' payload: the signing input */
} segments_t;

__attribute__((format(printf, 4, 5))) static int
fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Writes s (len bytes) into buf in double quotes for a message: at most
 * QUOTE_MAX bytes followed by "..." when cut, with bytes outside 0x20-0x7e
 * and '"' replaced by '?'. Returns buf. */
static const char *quote(const char *s, size_t len, char buf[QUOTE_BUF])
{
    size_t i, n = len < QUOTE_MAX ? len : QUOTE_MAX;
    char *p = buf;

    *p++ = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        *p++ = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    if (len > n) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p++ = '"';
    *p = '\0';
    return buf;
}

static const char *quote_json(const json_t *s, char buf[QUOTE_BUF])
{
    return quote(json_string_value(s), json_string_length(s), buf);
}

/* Returns 1 when the JSON string j equals the C string s. */
static int string_equals(const json_t *j, const char *s)
{
    size_t len = strlen(s);

    return json_string_length(j) == len &&
           memcmp(json_string_value(j), s, len) == 0;
}

int jwt_role_parse(const char *name, jwt_role_t *out)
{
    int i;

    if (!name)
        return -EINVAL;
    for (i = 0; i < JWT_ROLE_COUNT; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *out = (jwt_role_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *jwt_role_name(jwt_role_t role)
{
    if ((int)role < 0 || role >= JWT_ROLE_COUNT)
        return NULL;
    return role_names[role];
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes len characters of unpadded base64url into out, which has room
 * for len * 3 / 4 bytes. Returns 0 with *outlen set, or -1 for a character
 * outside the alphabet ('=' included), a length of 4k + 1 or unused low
 * bits that are not zero. */
static int b64url_decode(const char *in, size_t len, unsigned char *out,
                         size_t *outlen)
{
    uint32_t acc = 0;
    size_t i, n = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int value = b64url_value((unsigned char)in[i]);

        if (value < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)value;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    /* acc now holds only the unused bits of the last character. */
    if (acc != 0)
        return -1;
    *outlen = n;
    return 0;
}

/* Encodes n bytes as unpadded base64url into out, which has room for
 * B64URL_LEN(n) + 1 bytes, and NUL-terminates it. Returns the length. */
static size_t b64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *bytes = in;
    uint32_t acc = 0;
    size_t i, o = 0;
    int bits = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64url_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Returns the length of the UTF-8 sequence at s (len > 0 bytes), or 0 when
 * it is invalid: overlong, a surrogate, past U+10FFFF or cut short. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(p + i, len - i);

        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Returns 1 when s is 1..JWT_SUB_MAX bytes of 0x21-0x7e. */
static int sub_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > JWT_SUB_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* Returns 1 when s is 1..JWT_NAME_MAX bytes of UTF-8 without ASCII
 * control characters. */
static int name_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > JWT_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    }
    return utf8_valid(s, len);
}

static int room_char_valid(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '-';
}

/* Returns 1 when s is 1..JWT_PATTERN_MAX bytes of [A-Za-z0-9._:-] with an
 * optional final '*'. */
static int pattern_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > JWT_PATTERN_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if (!room_char_valid(s[i]) && !(s[i] == '*' && i == len - 1))
            return 0;
    }
    return 1;
}

/* Computes HMAC-SHA-256 of data with key into out. Returns 0 or -ENOMEM
 * when OpenSSL fails. */
static int hmac_sha256(const unsigned char *key, size_t keylen,
                       const void *data, size_t len,
                       unsigned char out[HS256_LEN])
{
    size_t outlen = 0;

    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len,
                   out, HS256_LEN, &outlen) ||
        outlen != HS256_LEN) {
        ERR_clear_error();
        return -ENOMEM;
    }
    return 0;
}

void jwt_config_init(jwt_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->skew_s = JWT_SKEW_DEFAULT;
}

static int alg_parse(const char *name, alg_t *out)
{
    int i;

    for (i = 0; i < ALG_COUNT; i++) {
        if (strcmp(name, alg_names[i]) == 0) {
            *out = (alg_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Checks the alg, skew, audience and issuer of cfg and that the key
 * material fits the alg. Returns 0 with *alg set, or -EINVAL. */
static int check_config(const jwt_config_t *cfg, alg_t *alg, char *err,
                        size_t errlen)
{
    char q[QUOTE_BUF];

    if (!cfg->alg)
        return fail(err, errlen, -EINVAL,
                    "alg is missing: set HS256, RS256 or ES256");
    if (alg_parse(cfg->alg, alg) != 0)
        return fail(err, errlen, -EINVAL,
                    "alg %s is not supported: use HS256, RS256 or ES256",
                    quote(cfg->alg, strlen(cfg->alg), q));
    if (cfg->skew_s < 0 || cfg->skew_s > JWT_SKEW_MAX)
        return fail(err, errlen, -EINVAL, "clock skew %d s is outside 0..%d s",
                    cfg->skew_s, JWT_SKEW_MAX);
    if (cfg->audience && !*cfg->audience)
        return fail(err, errlen, -EINVAL, "audience is empty");
    if (cfg->issuer && !*cfg->issuer)
        return fail(err, errlen, -EINVAL, "issuer is empty");

    if (*alg == ALG_HS256 && cfg->key_file)
        return fail(err, errlen, -EINVAL,
                    "a key file is for RS256 and ES256, not HS256");
    if (*alg != ALG_HS256 && cfg->secret)
        return fail(err, errlen, -EINVAL, "a secret is for HS256, not %s",
                    alg_names[*alg]);
    if (*alg == ALG_HS256 && (!cfg->secret || cfg->secret_len < JWT_SECRET_MIN))
        return fail(err, errlen, -EINVAL,
                    "HS256 secret is %zu bytes, it must be at least %d",
                    cfg->secret ? cfg->secret_len : 0, JWT_SECRET_MIN);
    return 0;
}

/* Returns 0 when pkey suits alg, or -EINVAL with a message naming path. */
static int check_key(EVP_PKEY *pkey, alg_t alg, const char *path, char *err,
                     size_t errlen)
{
    char group[64];
    int bits;

    if (alg == ALG_RS256) {
        if (!EVP_PKEY_is_a(pkey, "RSA"))
            return fail(err, errlen, -EINVAL,
                        "key file %s has no RSA key, which RS256 needs", path);
        bits = EVP_PKEY_get_bits(pkey);
        if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX)
            return fail(err, errlen, -EINVAL,
                        "RSA key in %s has %d bits, RS256 needs %d to %d", path,
                        bits, RSA_BITS_MIN, RSA_BITS_MAX);
        return 0;
    }

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                        sizeof(group), NULL) ||
        strcmp(group, SN_X9_62_prime256v1) != 0) {
        ERR_clear_error();
        return fail(err, errlen, -EINVAL,
                    "key file %s has no P-256 EC key, which ES256 needs", path);
    }
    return 0;
}

/* A PEM password callback that supplies none, so that an encrypted PEM
 * block fails to load instead of prompting on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *arg)
{
    return -1;
}

static int load_key(jwt_verifier_t *v, const char *path, char *err,
                    size_t errlen)
{
    EVP_PKEY *pkey;
    FILE *f;
    int rc;

    if (!path || !*path)
        return fail(err, errlen, -EINVAL,
                    "%s needs a key file with a PEM public key",
                    alg_names[v->alg]);
    f = fopen(path, "r");
    if (!f) {
        rc = -errno;
        return fail(err, errlen, rc, "cannot open key file %s: %s", path,
                    strerror(-rc));
    }
    pkey = PEM_read_PUBKEY(f, NULL, no_password, NULL);
    fclose(f);
    if (!pkey) {
        ERR_clear_error();
        return fail(err, errlen, -EINVAL,
                    "key file %s has no PEM public key (BEGIN PUBLIC KEY)",
                    path);
    }

    rc = check_key(pkey, v->alg, path, err, errlen);
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        return rc;
    }
    v->pkey = pkey;
    return 0;
}

static int copy_string(char **dst, const char *src, char *err, size_t errlen)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : fail(err, errlen, -ENOMEM, "out of memory");
}

/* Fills the calloc'ed v from cfg. On failure v may be partly filled. */
static int setup(jwt_verifier_t *v, const jwt_config_t *cfg, char *err,
                 size_t errlen)
{
    int rc;

    rc = check_config(cfg, &v->alg, err, errlen);
    if (rc != 0)
        return rc;
    v->skew = cfg->skew_s;
    rc = copy_string(&v->audience, cfg->audience, err, errlen);
    if (rc == 0)
        rc = copy_string(&v->issuer, cfg->issuer, err, errlen);
    if (rc != 0)
        return rc;

    if (v->alg != ALG_HS256)
        return load_key(v, cfg->key_file, err, errlen);
    v->secret = malloc(cfg->secret_len);
    if (!v->secret)
        return fail(err, errlen, -ENOMEM, "out of memory");
    memcpy(v->secret, cfg->secret, cfg->secret_len);
    v->secret_len = cfg->secret_len;
    return 0;
}

int jwt_verifier_new(jwt_verifier_t **out, const jwt_config_t *cfg, char *err,
                     size_t errlen)
{
    jwt_verifier_t *v;
    int rc;

    *out = NULL;
    v = calloc(1, sizeof(*v));
    if (!v)
        return fail(err, errlen, -ENOMEM, "out of memory");
    rc = setup(v, cfg, err, errlen);
    if (rc != 0) {
        jwt_verifier_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void jwt_verifier_free(jwt_verifier_t *v)
{
    if (!v)
        return;
    if (v->secret) {
        OPENSSL_cleanse(v->secret, v->secret_len);
        free(v->secret);
    }
    EVP_PKEY_free(v->pkey);
    free(v->audience);
    free(v->issuer);
    free(v);
}

/* Splits token into its three segments after checking its length. */
static int split_token(const char *token, size_t len, segments_t *seg,
                       char *err, size_t errlen)
{
    const char *dot1, *dot2, *end = token + len;
    size_t i, dots = 0;

    if (len == 0)
        return fail(err, errlen, -EACCES, "token is empty");
    if (len > JWT_TOKEN_MAX)
        return fail(err, errlen, -EACCES,
                    "token is %zu bytes, over the maximum of %d", len,
                    JWT_TOKEN_MAX);
    for (i = 0; i < len; i++)
        dots += token[i] == '.';
    if (dots != 2)
        return fail(err, errlen, -EACCES,
                    "expected 3 segments separated by '.', found %zu",
                    dots + 1);

    dot1 = memchr(token, '.', len);
    dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    seg->header = token;
    seg->header_len = (size_t)(dot1 - token);
    seg->payload = dot1 + 1;
    seg->payload_len = (size_t)(dot2 - dot1 - 1);
    seg->sig = dot2 + 1;
    seg->sig_len = (size_t)(end - dot2 - 1);
    seg->signed_len = (size_t)(dot2 - token);
    return 0;
}

/* Decodes the base64url segment what and parses it as a JSON object
 * without duplicate keys. Returns 0 with *out set (the caller releases
 * it), -EACCES or -ENOMEM. */
static int load_segment(const char *b64, size_t len, const char *what,
                        json_t **out, char *err, size_t errlen)
{
    unsigned char *buf;
    json_error_t jerr;
    json_t *j;
    size_t n;

    buf = malloc(len * 3 / 4 + 1);
    if (!buf)
        return fail(err, errlen, -ENOMEM, "out of memory");
    if (b64url_decode(b64, len, buf, &n) != 0) {
        free(buf);
        return fail(err, errlen, -EACCES, "%s is not valid base64url", what);
    }
    j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);

    if (!j && json_error_code(&jerr) == json_error_out_of_memory)
        return fail(err, errlen, -ENOMEM, "out of memory");
    if (!j && json_error_code(&jerr) == json_error_duplicate_key)
        return fail(err, errlen, -EACCES, "%s has a duplicate key", what);
    if (!j)
        return fail(err, errlen, -EACCES,
                    "%s is not valid JSON (error at byte %d)", what,
                    jerr.position);
    if (!json_is_object(j)) {
        json_decref(j);
        return fail(err, errlen, -EACCES, "%s is not a JSON object", what);
    }
    *out = j;
    return 0;
}

static int check_header(const jwt_verifier_t *v, const segments_t *seg,
                        char *err, size_t errlen)
{
    json_t *header, *alg;
    char q[QUOTE_BUF];
    int rc;

    rc = load_segment(seg->header, seg->header_len, "header", &header, err,
                      errlen);
    if (rc != 0)
        return rc;

    alg = json_object_get(header, "alg");
    if (!json_is_string(alg))
        rc = fail(err, errlen, -EACCES, "header alg is missing or invalid");
    else if (!string_equals(alg, alg_names[v->alg]))
        rc = fail(err, errlen, -EACCES, "alg %s is not the configured %s",
                  quote_json(alg, q), alg_names[v->alg]);
    else if (json_object_get(header, "crit"))
        rc = fail(err, errlen, -EACCES,
                  "header crit is present, but no extension is supported");
    json_decref(header);
    return rc;
}

/* Verifies sig over data with the SHA-256 digest and pkey. Returns 0,
 * -EACCES when it does not match, or -ENOMEM when OpenSSL fails. */
static int digest_verify(EVP_PKEY *pkey, const void *data, size_t len,
                         const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc;

    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1)
        rc = -ENOMEM;
    else if (EVP_DigestVerify(ctx, sig, siglen, data, len) != 1)
        rc = -EACCES;
    else
        rc = 0;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* Converts a JOSE ES256 signature r || s (2 * ES256_HALF bytes) into the
 * DER ECDSA-Sig-Value that OpenSSL verifies. Returns 0 with *der set (free
 * it with OPENSSL_free()), or -ENOMEM. */
static int es256_to_der(const unsigned char *sig, unsigned char **der,
                        int *derlen)
{
    BIGNUM *r = BN_bin2bn(sig, ES256_HALF, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
    ECDSA_SIG *ecsig = ECDSA_SIG_new();

    if (!r || !s || !ecsig) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(ecsig);
        return -ENOMEM;
    }
    ECDSA_SIG_set0(ecsig, r, s); /* ecsig now owns r and s */
    *der = NULL;
    *derlen = i2d_ECDSA_SIG(ecsig, der);
    ECDSA_SIG_free(ecsig);
    return *derlen > 0 ? 0 : -ENOMEM;
}

static int verify_hs256(const jwt_verifier_t *v, const char *data, size_t len,
                        const unsigned char *sig, size_t siglen, char *err,
                        size_t errlen)
{
    unsigned char mac[HS256_LEN];
    int match;

    if (siglen != HS256_LEN)
        return fail(err, errlen, -EACCES,
                    "signature is %zu bytes, HS256 needs %d", siglen,
                    HS256_LEN);
    if (hmac_sha256(v->secret, v->secret_len, data, len, mac) != 0)
        return fail(err, errlen, -ENOMEM, "HMAC-SHA-256 failed in OpenSSL");

    /* mac is the valid signature of this input, so it is wiped too. */
    match = CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return match ? 0 : fail(err, errlen, -EACCES, "signature does not match");
}

static int verify_rs256(const jwt_verifier_t *v, const char *data, size_t len,
                        const unsigned char *sig, size_t siglen, char *err,
                        size_t errlen)
{
    int keylen = EVP_PKEY_get_size(v->pkey);
    int rc;

    if (keylen <= 0 || siglen != (size_t)keylen)
        return fail(err, errlen, -EACCES,
                    "signature is %zu bytes, the RS256 key needs %d", siglen,
                    keylen);
    rc = digest_verify(v->pkey, data, len, sig, siglen);
    if (rc == -ENOMEM)
        return fail(err, errlen, rc, "RS256 verification failed in OpenSSL");
    return rc ? fail(err, errlen, rc, "signature does not match") : 0;
}

static int verify_es256(const jwt_verifier_t *v, const char *data, size_t len,
                        const unsigned char *sig, size_t siglen, char *err,
                        size_t errlen)
{
    unsigned char *der;
    int derlen, rc;

    if (siglen != 2 * ES256_HALF)
        return fail(err, errlen, -EACCES,
                    "signature is %zu bytes, ES256 needs %d (r || s)", siglen,
                    2 * ES256_HALF);
    if (es256_to_der(sig, &der, &derlen) != 0)
        return fail(err, errlen, -ENOMEM, "out of memory");
    rc = digest_verify(v->pkey, data, len, der, (size_t)derlen);
    OPENSSL_free(der);
    if (rc == -ENOMEM)
        return fail(err, errlen, rc, "ES256 verification failed in OpenSSL");
    return rc ? fail(err, errlen, rc, "signature does not match") : 0;
}

static int check_signature(const jwt_verifier_t *v, const segments_t *seg,
                           char *err, size_t errlen)
{
    unsigned char sig[SIG_MAX];
    size_t n;

    if (seg->sig_len > B64URL_LEN(SIG_MAX))
        return fail(err, errlen, -EACCES,
                    "signature is over the maximum of %d bytes", SIG_MAX);
    if (b64url_decode(seg->sig, seg->sig_len, sig, &n) != 0)
        return fail(err, errlen, -EACCES, "signature is not valid base64url");

    switch (v->alg) {
    case ALG_HS256:
        return verify_hs256(v, seg->header, seg->signed_len, sig, n, err,
                            errlen);
    case ALG_RS256:
        return verify_rs256(v, seg->header, seg->signed_len, sig, n, err,
                            errlen);
    default:
        return verify_es256(v, seg->header, seg->signed_len, sig, n, err,
                            errlen);
    }
}

/* Reads the NumericDate claim key. Returns 0 with *out set, 1 when the
 * claim is absent, or -EACCES. */
static int read_time(const json_t *payload, const char *key, int64_t *out,
                     char *err, size_t errlen)
{
    json_t *j = json_object_get(payload, key);
    json_int_t t;

    if (!j)
        return 1;
    if (!json_is_integer(j))
        return fail(err, errlen, -EACCES, "%s is not an integer", key);
    t = json_integer_value(j);
    if (t < 0 || t > JWT_TIME_MAX)
        return fail(err, errlen, -EACCES, "%s %lld is outside 0..%lld", key,
                    (long long)t, (long long)JWT_TIME_MAX);
    *out = t;
    return 0;
}

/* Checks exp, nbf and iat against now with the verifier's skew. Returns 0
 * with *exp set, or -EACCES. */
static int check_times(const jwt_verifier_t *v, const json_t *payload,
                       int64_t now, int64_t *exp, char *err, size_t errlen)
{
    int64_t t;
    int rc;

    rc = read_time(payload, "exp", exp, err, errlen);
    if (rc > 0)
        return fail(err, errlen, -EACCES, "exp is missing");
    if (rc < 0)
        return rc;
    if (now - v->skew >= *exp)
        return fail(err, errlen, -EACCES, "token expired %lld s ago",
                    (long long)(now - *exp));

    rc = read_time(payload, "nbf", &t, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 0 && now + v->skew < t)
        return fail(err, errlen, -EACCES,
                    "token is not valid for another %lld s",
                    (long long)(t - now));

    rc = read_time(payload, "iat", &t, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 0 && now + v->skew < t)
        return fail(err, errlen, -EACCES,
                    "token was issued %lld s in the future",
                    (long long)(t - now));
    return 0;
}

static int check_audience(const jwt_verifier_t *v, const json_t *payload,
                          char *err, size_t errlen)
{
    json_t *aud = json_object_get(payload, "aud"), *item;
    size_t i;
    int found = 0;

    if (!aud && !v->audience)
        return 0;
    if (!aud)
        return fail(err, errlen, -EACCES, "aud is missing");
    if (!v->audience)
        return fail(err, errlen, -EACCES,
                    "token has aud, but no audience is configured");
    if (json_is_string(aud))
        return string_equals(aud, v->audience)
                   ? 0
                   : fail(err, errlen, -EACCES,
                          "aud does not match the configured audience");
    if (!json_is_array(aud))
        return fail(err, errlen, -EACCES,
                    "aud is not a string or an array of strings");

    json_array_foreach(aud, i, item)
    {
        if (!json_is_string(item))
            return fail(err, errlen, -EACCES, "aud[%zu] is not a string", i);
        found |= string_equals(item, v->audience);
    }
    return found ? 0
                 : fail(err, errlen, -EACCES,
                        "aud does not contain the configured audience");
}

static int check_issuer(const jwt_verifier_t *v, const json_t *payload,
                        char *err, size_t errlen)
{
    json_t *iss = json_object_get(payload, "iss");

    if (iss && !json_is_string(iss))
        return fail(err, errlen, -EACCES, "iss is not a string");
    if (!v->issuer)
        return 0;
    if (!iss)
        return fail(err, errlen, -EACCES, "iss is missing");
    if (!string_equals(iss, v->issuer))
        return fail(err, errlen, -EACCES,
                    "iss does not match the configured issuer");
    return 0;
}

/* Reads the role string j, named what in messages. */
static int read_role(const json_t *j, const char *what, jwt_role_t *out,
                     char *err, size_t errlen)
{
    char q[QUOTE_BUF];

    if (!j)
        return fail(err, errlen, -EACCES, "%s is missing", what);
    if (!json_is_string(j))
        return fail(err, errlen, -EACCES, "%s is not a string", what);
    if (jwt_role_parse(json_string_value(j), out) != 0)
        return fail(err, errlen, -EACCES,
                    "%s %s is not viewer, annotator, reviewer, bot or admin",
                    what, quote_json(j, q));
    return 0;
}

static int read_sub_name(const json_t *payload, jwt_claims_t *c, char *err,
                         size_t errlen)
{
    json_t *sub = json_object_get(payload, "sub");
    json_t *name = json_object_get(payload, "name");

    if (!sub)
        return fail(err, errlen, -EACCES, "sub is missing");
    if (!json_is_string(sub) ||
        !sub_valid(json_string_value(sub), json_string_length(sub)))
        return fail(err, errlen, -EACCES,
                    "sub is not 1..%d bytes of printable ASCII", JWT_SUB_MAX);
    memcpy(c->sub, json_string_value(sub), json_string_length(sub) + 1);

    if (!name)
        return 0;
    if (!json_is_string(name) ||
        !name_valid(json_string_value(name), json_string_length(name)))
        return fail(err, errlen, -EACCES,
                    "name is not 1..%d bytes without control characters",
                    JWT_NAME_MAX);
    memcpy(c->name, json_string_value(name), json_string_length(name) + 1);
    return 0;
}

/* Reads rooms[i], which is a pattern string or an object with exactly the
 * members pattern and role. */
static int read_room(const json_t *entry, size_t i, jwt_room_t *room, char *err,
                     size_t errlen)
{
    const json_t *pattern = entry, *role = NULL;
    char what[48];

    if (json_is_object(entry)) {
        pattern = json_object_get(entry, "pattern");
        role = json_object_get(entry, "role");
        if (!pattern || !role || json_object_size(entry) != 2)
            return fail(err, errlen, -EACCES,
                        "rooms[%zu] must have exactly the members pattern "
                        "and role",
                        i);
    }
    if (!json_is_string(pattern) ||
        !pattern_valid(json_string_value(pattern), json_string_length(pattern)))
        return fail(err, errlen, -EACCES,
                    "rooms[%zu] is not 1..%d bytes of [A-Za-z0-9._:-] with "
                    "an optional final '*'",
                    i, JWT_PATTERN_MAX);
    memcpy(room->pattern, json_string_value(pattern),
           json_string_length(pattern) + 1);
    if (!role)
        return 0;

    snprintf(what, sizeof(what), "rooms[%zu].role", i);
    room->has_role = 1;
    return read_role(role, what, &room->role, err, errlen);
}

static int read_rooms(const json_t *payload, jwt_claims_t *c, char *err,
                      size_t errlen)
{
    json_t *rooms = json_object_get(payload, "rooms"), *entry;
    size_t i, j, n;
    int rc;

    if (!rooms)
        return fail(err, errlen, -EACCES, "rooms is missing");
    if (!json_is_array(rooms))
        return fail(err, errlen, -EACCES, "rooms is not an array");
    n = json_array_size(rooms);
    if (n > JWT_ROOMS_MAX)
        return fail(err, errlen, -EACCES,
                    "rooms has %zu entries, over the maximum of %d", n,
                    JWT_ROOMS_MAX);
    c->rooms = calloc(n ? n : 1, sizeof(*c->rooms));
    if (!c->rooms)
        return fail(err, errlen, -ENOMEM, "out of memory");

    json_array_foreach(rooms, i, entry)
    {
        rc = read_room(entry, i, &c->rooms[i], err, errlen);
        if (rc != 0)
            return rc;
        for (j = 0; j < i; j++) {
            if (strcmp(c->rooms[j].pattern, c->rooms[i].pattern) == 0)
                return fail(err, errlen, -EACCES,
                            "rooms[%zu] repeats the pattern of rooms[%zu]", i,
                            j);
        }
        c->nrooms = i + 1;
    }
    return 0;
}

/* Checks the claims of the verified payload and copies them into c. */
static int read_claims(const jwt_verifier_t *v, const json_t *payload,
                       int64_t now, jwt_claims_t *c, char *err, size_t errlen)
{
    int rc;

    rc = check_times(v, payload, now, &c->exp, err, errlen);
    if (rc == 0)
        rc = check_audience(v, payload, err, errlen);
    if (rc == 0)
        rc = check_issuer(v, payload, err, errlen);
    if (rc == 0)
        rc = read_sub_name(payload, c, err, errlen);
    if (rc == 0)
        rc = read_role(json_object_get(payload, "role"), "role", &c->role, err,
                       errlen);
    if (rc == 0)
        rc = read_rooms(payload, c, err, errlen);
    return rc;
}

int jwt_verify(const jwt_verifier_t *v, const char *token, size_t len,
               int64_t now, jwt_claims_t *claims, char *err, size_t errlen)
{
    json_t *payload;
    segments_t seg;
    int rc;

    memset(claims, 0, sizeof(*claims));
    if (now < 0 || now > JWT_TIME_MAX)
        return fail(err, errlen, -EINVAL, "now %lld is outside 0..%lld",
                    (long long)now, (long long)JWT_TIME_MAX);

    /* The payload is parsed only once the signature matches. */
    rc = split_token(token, len, &seg, err, errlen);
    if (rc == 0)
        rc = check_header(v, &seg, err, errlen);
    if (rc == 0)
        rc = check_signature(v, &seg, err, errlen);
    if (rc != 0)
        return rc;

    rc = load_segment(seg.payload, seg.payload_len, "payload", &payload, err,
                      errlen);
    if (rc != 0)
        return rc;
    rc = read_claims(v, payload, now, claims, err, errlen);
    json_decref(payload);
    if (rc != 0)
        jwt_claims_clear(claims);
    return rc;
}

void jwt_claims_clear(jwt_claims_t *c)
{
    free(c->rooms);
    memset(c, 0, sizeof(*c));
}

/* Returns 1 when pattern matches room, with *rank set higher the more
 * specific the pattern is: SIZE_MAX for an exact pattern, else the length
 * of the prefix before the '*'. */
static int pattern_match(const char *pattern, const char *room, size_t *rank)
{
    size_t len = strlen(pattern);

    if (len > 0 && pattern[len - 1] == '*') {
        *rank = len - 1;
        return strncmp(pattern, room, len - 1) == 0;
    }
    *rank = SIZE_MAX;
    return strcmp(pattern, room) == 0;
}

int jwt_room_role(const jwt_claims_t *c, const char *room, jwt_role_t *role)
{
    const jwt_room_t *best = NULL;
    size_t i, rank, best_rank = 0;

    for (i = 0; i < c->nrooms; i++) {
        if (!pattern_match(c->rooms[i].pattern, room, &rank))
            continue;
        if (!best || rank > best_rank) {
            best = &c->rooms[i];
            best_rank = rank;
        }
    }
    if (!best)
        return -EACCES;
    *role = best->has_role ? best->role : c->role;
    return 0;
}

static int check_mint_rooms(const jwt_mint_t *in, char *err, size_t errlen)
{
    size_t i, j;

    if (in->nrooms > JWT_ROOMS_MAX)
        return fail(err, errlen, -EINVAL, "%zu rooms is over the maximum of %d",
                    in->nrooms, JWT_ROOMS_MAX);
    if (in->nrooms > 0 && !in->rooms)
        return fail(err, errlen, -EINVAL, "rooms is NULL");
    for (i = 0; i < in->nrooms; i++) {
        if (!in->rooms[i] || !pattern_valid(in->rooms[i], strlen(in->rooms[i])))
            return fail(err, errlen, -EINVAL,
                        "rooms[%zu] is not 1..%d bytes of [A-Za-z0-9._:-] "
                        "with an optional final '*'",
                        i, JWT_PATTERN_MAX);
        for (j = 0; j < i; j++) {
            if (strcmp(in->rooms[j], in->rooms[i]) == 0)
                return fail(err, errlen, -EINVAL,
                            "rooms[%zu] repeats the pattern of rooms[%zu]", i,
                            j);
        }
    }
    return 0;
}

/* Checks that jwt_verify() would accept the claims of in, times aside. */
static int check_mint(const jwt_mint_t *in, char *err, size_t errlen)
{
    if (!in->sub || !sub_valid(in->sub, strlen(in->sub)))
        return fail(err, errlen, -EINVAL,
                    "sub is not 1..%d bytes of printable ASCII", JWT_SUB_MAX);
    if (in->name && !name_valid(in->name, strlen(in->name)))
        return fail(err, errlen, -EINVAL,
                    "name is not 1..%d bytes of UTF-8 without control "
                    "characters",
                    JWT_NAME_MAX);
    if (!jwt_role_name(in->role))
        return fail(err, errlen, -EINVAL, "role %d is not a jwt_role_t",
                    (int)in->role);
    if (in->audience &&
        (!*in->audience || !utf8_valid(in->audience, strlen(in->audience))))
        return fail(err, errlen, -EINVAL, "audience is empty or not UTF-8");
    if (in->issuer &&
        (!*in->issuer || !utf8_valid(in->issuer, strlen(in->issuer))))
        return fail(err, errlen, -EINVAL, "issuer is empty or not UTF-8");
    if (in->now < 0 || in->now > JWT_TIME_MAX)
        return fail(err, errlen, -EINVAL, "now %lld is outside 0..%lld",
                    (long long)in->now, (long long)JWT_TIME_MAX);
    if (in->ttl_s < 1 || in->ttl_s > JWT_TIME_MAX - in->now)
        return fail(err, errlen, -EINVAL,
                    "ttl %lld s is not positive or ends after year 9999",
                    (long long)in->ttl_s);
    return check_mint_rooms(in, err, errlen);
}

static int set_member(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value);
}

/* Returns the payload object of in, or NULL when out of memory. */
static json_t *build_payload(const jwt_mint_t *in)
{
    json_t *p = json_object(), *rooms = json_array();
    int bad = !p || !rooms;
    size_t i;

    for (i = 0; !bad && i < in->nrooms; i++)
        bad |= json_array_append_new(rooms, json_string(in->rooms[i]));
    if (!bad) {
        bad |= set_member(p, "sub", json_string(in->sub));
        if (in->name)
            bad |= set_member(p, "name", json_string(in->name));
        bad |= set_member(p, "role", json_string(jwt_role_name(in->role)));
        bad |= json_object_set(p, "rooms", rooms);
        if (in->issuer)
            bad |= set_member(p, "iss", json_string(in->issuer));
        if (in->audience)
            bad |= set_member(p, "aud", json_string(in->audience));
        bad |= set_member(p, "iat", json_integer(in->now));
        bad |= set_member(p, "exp", json_integer(in->now + in->ttl_s));
    }
    json_decref(rooms);
    if (bad) {
        json_decref(p);
        return NULL;
    }
    return p;
}

/* Encodes header and payload, signs them and stores the token in *out. */
static int sign_hs256(const unsigned char *secret, size_t secret_len,
                      const char *payload, char **out, char *err, size_t errlen)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t plen = strlen(payload), total, n;
    unsigned char mac[HS256_LEN];
    char *token;

    total = B64URL_LEN(sizeof(header) - 1) + 1 + B64URL_LEN(plen) + 1 +
            B64URL_LEN(HS256_LEN);
    if (total > JWT_TOKEN_MAX)
        return fail(err, errlen, -E2BIG,
                    "token would be %zu bytes, over the maximum of %d", total,
                    JWT_TOKEN_MAX);
    token = malloc(total + 1);
    if (!token)
        return fail(err, errlen, -ENOMEM, "out of memory");

    n = b64url_encode(header, sizeof(header) - 1, token);
    token[n++] = '.';
    n += b64url_encode(payload, plen, token + n);
    if (hmac_sha256(secret, secret_len, token, n, mac) != 0) {
        free(token);
        return fail(err, errlen, -ENOMEM, "HMAC-SHA-256 failed in OpenSSL");
    }
    token[n++] = '.';
    b64url_encode(mac, HS256_LEN, token + n);
    *out = token;
    return 0;
}

int jwt_mint_hs256(const unsigned char *secret, size_t secret_len,
                   const jwt_mint_t *in, char **out, char *err, size_t errlen)
{
    json_t *payload;
    char *text;
    int rc;

    *out = NULL;
    if (!secret || secret_len < JWT_SECRET_MIN)
        return fail(err, errlen, -EINVAL,
                    "HS256 secret is %zu bytes, it must be at least %d",
                    secret ? secret_len : 0, JWT_SECRET_MIN);
    rc = check_mint(in, err, errlen);
    if (rc != 0)
        return rc;

    payload = build_payload(in);
    text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (!text)
        return fail(err, errlen, -ENOMEM, "out of memory");
    rc = sign_hs256(secret, secret_len, text, out, err, errlen);
    free(text);
    return rc;
}
