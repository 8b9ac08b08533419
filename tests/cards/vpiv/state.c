/* The state folder: what a real card keeps in its EEPROM.
 *
 *   DIR/card.conf        serial, PIN, PUK, retry counters and limits,
 *                        management key and algorithm, one line per key slot
 *   DIR/keys/SLOT.pem    private key of slot SLOT (9a, 9c, 82, f9 ...), PKCS#8
 *   DIR/objects/TAG      data object TAG (5fc102, 7e ...): the value inside
 *                        its 53 (or 7E) template, raw bytes
 *
 * Each file is replaced atomically (temporary file, fsync, rename), so a
 * card killed at any moment leaves a consistent file. A key file is
 * written before the card.conf line naming it, and removed after it.
 */
#include "card.h"
#include "crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#define CONF "card.conf"

const uint8_t vpiv_default_mgmt_key[24] = { 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                                            5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8 };

int slot_index(uint8_t slot)
{
    switch (slot) {
    case SLOT_AUTH: return 0;
    case SLOT_SIGN: return 1;
    case SLOT_KEYMGMT: return 2;
    case SLOT_CARDAUTH: return 3;
    case SLOT_ATTEST: return 24;
    default:
        if (slot >= SLOT_RETIRED1 && slot <= SLOT_RETIRED20)
            return 4 + (slot - SLOT_RETIRED1);
        return -1;
    }
}

uint8_t slot_of_index(int i)
{
    static const uint8_t first[4] = { SLOT_AUTH, SLOT_SIGN, SLOT_KEYMGMT, SLOT_CARDAUTH };

    if (i < 4)
        return first[i];
    if (i == 24)
        return SLOT_ATTEST;
    return (uint8_t)(SLOT_RETIRED1 + (i - 4));
}

struct vpiv_key *state_key(struct vpiv_state *st, uint8_t slot)
{
    int i = slot_index(slot);

    return i < 0 ? NULL : &st->keys[i];
}

uint8_t slot_default_pin_policy(uint8_t slot)
{
    if (slot == SLOT_SIGN)
        return PIN_POLICY_ALWAYS;
    if (slot == SLOT_CARDAUTH || slot == SLOT_ATTEST)
        return PIN_POLICY_NEVER;
    return PIN_POLICY_ONCE;
}

struct vpiv_obj *state_obj(struct vpiv_state *st, uint32_t tag)
{
    struct vpiv_obj *o;

    for (o = st->objs; o; o = o->next)
        if (o->tag == tag)
            return o;
    return NULL;
}

static void obj_free(struct vpiv_obj *o)
{
    if (!o)
        return;
    OPENSSL_cleanse(o->data, o->len);
    free(o->data);
    free(o);
}

int state_obj_set(struct vpiv_state *st, uint32_t tag, const uint8_t *d, size_t n)
{
    int rc = -1;
    struct vpiv_obj **pp, *o = NULL;
    uint8_t *copy = NULL;

    if (n) {
        copy = malloc(n);
        if (!copy)
            goto out;
        memcpy(copy, d, n);
    }
    for (pp = &st->objs; *pp; pp = &(*pp)->next)
        if ((*pp)->tag == tag)
            break;
    if (!n) {
        if (*pp) {
            o = *pp;
            *pp = o->next;
            obj_free(o);
        }
        rc = 0;
        goto out;
    }
    if (*pp) {
        o = *pp;
        OPENSSL_cleanse(o->data, o->len);
        free(o->data);
    } else {
        o = calloc(1, sizeof(*o));
        if (!o)
            goto out;
        o->tag = tag;
        *pp = o;
    }
    o->data = copy;
    o->len = n;
    copy = NULL;
    rc = 0;
out:
    free(copy);
    return rc;
}

void state_free(struct vpiv_state *st)
{
    int i;
    struct vpiv_obj *o, *next;

    for (i = 0; i < VPIV_NSLOTS; i++)
        EVP_PKEY_free(st->keys[i].pkey);
    for (o = st->objs; o; o = next) {
        next = o->next;
        obj_free(o);
    }
    OPENSSL_cleanse(st, sizeof(*st));
}

/* ---- files ---- */

static int path_of(char *buf, size_t n, const char *dir, const char *name)
{
    int l = snprintf(buf, n, "%s/%s", dir, name);

    return l < 0 || (size_t)l >= n ? -1 : 0;
}

static int ensure_dir(const char *dir, const char *sub)
{
    char p[4096];

    if (path_of(p, sizeof(p), dir, sub) < 0)
        return -1;
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int write_atomic(const char *dir, const char *name, const void *data, size_t n)
{
    int rc = -1, fd = -1, dfd = -1;
    size_t off = 0;
    ssize_t w;
    char path[4096], tmp[4200];

    if (path_of(path, sizeof(path), dir, name) < 0)
        goto out;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    while (off < n) {
        w = write(fd, (const uint8_t *)data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto out;
    /* Make the rename itself durable. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static int remove_file(const char *dir, const char *name)
{
    char path[4096];

    if (path_of(path, sizeof(path), dir, name) < 0)
        return -1;
    if (unlink(path) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

static const char *policy_name(uint8_t p, int touch)
{
    if (touch)
        return p == 2 ? "always" : p == 3 ? "cached" : "never";
    return p == PIN_POLICY_NEVER ? "never" : p == PIN_POLICY_ALWAYS ? "always" : "once";
}

static int policy_value(const char *s, int touch)
{
    if (touch)
        return !strcmp(s, "always") ? 2 : !strcmp(s, "cached") ? 3 : !strcmp(s, "never") ? 1 : -1;
    return !strcmp(s, "never") ? 1 : !strcmp(s, "once") ? 2 : !strcmp(s, "always") ? 3 : -1;
}

static int put_hex(struct vbuf *b, const uint8_t *d, size_t n)
{
    char h[3];
    size_t i;

    for (i = 0; i < n; i++) {
        snprintf(h, sizeof(h), "%02x", d[i]);
        if (vbuf_put(b, h, 2) < 0)
            return -1;
    }
    return 0;
}

static int put_fmt(struct vbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put_fmt(struct vbuf *b, const char *fmt, ...)
{
    char line[256];
    int n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return vbuf_put(b, line, (size_t)n);
}

int state_save_conf(const char *dir, const struct vpiv_state *st)
{
    int rc = -1, i;
    struct vbuf b = { 0 };
    const struct vpiv_key *k;

    if (put_fmt(&b, "# Tessera virtual PIV card state (tests/cards/README.md)\nformat 1\n"
                    "serial %u\npin ", (unsigned)st->serial) < 0 ||
        put_hex(&b, st->pin, 8) < 0 ||
        put_fmt(&b, "\npin-retries %u %u\npuk ", st->pin_left, st->pin_max) < 0 ||
        put_hex(&b, st->puk, 8) < 0 ||
        put_fmt(&b, "\npuk-retries %u %u\nmgmt-key %02x ", st->puk_left, st->puk_max,
                st->mgmt_alg) < 0 ||
        put_hex(&b, st->mgmt_key, vc_sym_keylen(st->mgmt_alg)) < 0 || vbuf_put(&b, "\n", 1) < 0)
        goto out;
    for (i = 0; i < VPIV_NSLOTS; i++) {
        k = &st->keys[i];
        if (!k->pkey)
            continue;
        if (put_fmt(&b, "key %02x alg %02x origin %s pin-policy %s touch-policy %s\n",
                    slot_of_index(i), k->alg,
                    k->origin == ORIGIN_IMPORTED ? "imported" : "generated",
                    policy_name(k->pin_policy, 0), policy_name(k->touch_policy, 1)) < 0)
            goto out;
    }
    rc = write_atomic(dir, CONF, b.data, b.len);
out:
    vbuf_free(&b);
    return rc;
}

static int save_key_file(const char *dir, uint8_t slot, EVP_PKEY *k)
{
    int rc = -1;
    long n;
    char name[32], *pem = NULL;
    BIO *bio = BIO_new(BIO_s_secmem());

    snprintf(name, sizeof(name), "keys/%02x.pem", slot);
    if (!bio || ensure_dir(dir, "keys") < 0 ||
        !PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL))
        goto out;
    n = BIO_get_mem_data(bio, &pem);
    if (n <= 0)
        goto out;
    rc = write_atomic(dir, name, pem, (size_t)n);
out:
    BIO_free(bio); /* a secure-memory BIO clears what it held */
    return rc;
}

int state_save_key(const char *dir, const struct vpiv_state *st, uint8_t slot)
{
    int i = slot_index(slot);
    char name[32];

    if (i < 0)
        return -1;
    if (st->keys[i].pkey)
        return save_key_file(dir, slot, st->keys[i].pkey) < 0 ? -1 : state_save_conf(dir, st);
    snprintf(name, sizeof(name), "keys/%02x.pem", slot);
    if (state_save_conf(dir, st) < 0)
        return -1;
    return remove_file(dir, name);
}

int state_save_obj(const char *dir, const struct vpiv_state *st, uint32_t tag)
{
    char name[32];
    const struct vpiv_obj *o;

    snprintf(name, sizeof(name), "objects/%x", (unsigned)tag);
    for (o = st->objs; o; o = o->next)
        if (o->tag == tag)
            break;
    if (!o)
        return remove_file(dir, name);
    if (ensure_dir(dir, "objects") < 0)
        return -1;
    return write_atomic(dir, name, o->data, o->len);
}

/* Removes every regular file in dir/sub (keys or objects of an old card). */
static int clear_subdir(const char *dir, const char *sub)
{
    int rc = -1;
    char p[4096], f[4400];
    DIR *d = NULL;
    struct dirent *e;

    if (path_of(p, sizeof(p), dir, sub) < 0)
        goto out;
    d = opendir(p);
    if (!d) {
        rc = errno == ENOENT ? 0 : -1;
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(f, sizeof(f), "%s/%s", p, e->d_name);
        if (unlink(f) < 0 && errno != ENOENT)
            goto out;
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    return rc;
}

int state_factory(const char *dir, struct vpiv_state *st, const struct factory_opts *o)
{
    int rc = -1, i;
    uint32_t serial = st->serial;
    const char *pin = o && o->pin ? o->pin : "123456";
    const char *puk = o && o->puk ? o->puk : "12345678";

    state_free(st);
    if (o && o->have_serial) {
        serial = o->serial;
    } else if (!serial) {
        uint8_t r[4];
        if (vc_random(r, 4) < 0)
            goto out;
        /* Eight decimal digits, like a printed card serial number. */
        serial = 10000000u + (((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 |
                               (uint32_t)r[2] << 8 | r[3]) % 90000000u);
    }
    st->serial = serial;
    if (pin_normalize((const uint8_t *)pin, strlen(pin), 6, st->pin) < 0 ||
        pin_normalize((const uint8_t *)puk, strlen(puk), 6, st->puk) < 0)
        goto out;
    st->pin_max = st->pin_left = 3;
    st->puk_max = st->puk_left = 3;
    st->mgmt_alg = o && o->mgmt_alg >= 0 ? (uint8_t)o->mgmt_alg : ALG_3DES;
    if (o && o->mgmt_key) {
        if (o->mgmt_len != vc_sym_keylen(st->mgmt_alg))
            goto out;
        memcpy(st->mgmt_key, o->mgmt_key, o->mgmt_len);
    } else if (st->mgmt_alg == ALG_3DES) {
        memcpy(st->mgmt_key, vpiv_default_mgmt_key, sizeof(vpiv_default_mgmt_key));
    } else {
        goto out; /* an AES management key has no factory default */
    }
    if (piv_factory_objects(st) < 0 || piv_factory_attestation(st) < 0)
        goto out;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        goto out;
    /* Forget the old card: its conf first, then its keys and objects. */
    if (remove_file(dir, CONF) < 0 || clear_subdir(dir, "keys") < 0 ||
        clear_subdir(dir, "objects") < 0)
        goto out;
    for (i = 0; i < VPIV_NSLOTS; i++)
        if (st->keys[i].pkey && save_key_file(dir, slot_of_index(i), st->keys[i].pkey) < 0)
            goto out;
    for (const struct vpiv_obj *ob = st->objs; ob; ob = ob->next)
        if (state_save_obj(dir, st, ob->tag) < 0)
            goto out;
    rc = state_save_conf(dir, st);
out:
    return rc;
}

/* ---- loading ---- */

static int parse_hex(const char *s, uint8_t *out, size_t n)
{
    size_t i;
    unsigned v;

    if (strlen(s) != 2 * n)
        return -1;
    for (i = 0; i < n; i++) {
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int load_key(const char *dir, struct vpiv_state *st, const char *line)
{
    int rc = -1, pp, tp, i;
    unsigned slot, alg;
    char origin[16], pin[16], touch[16], name[32], path[4096];
    FILE *f = NULL;
    EVP_PKEY *k = NULL;

    if (sscanf(line, "key %2x alg %2x origin %15s pin-policy %15s touch-policy %15s", &slot, &alg,
               origin, pin, touch) != 5)
        goto out;
    i = slot_index((uint8_t)slot);
    pp = policy_value(pin, 0);
    tp = policy_value(touch, 1);
    if (i < 0 || pp < 0 || tp < 0)
        goto out;
    snprintf(name, sizeof(name), "keys/%02x.pem", slot);
    if (path_of(path, sizeof(path), dir, name) < 0)
        goto out;
    f = fopen(path, "re");
    if (!f)
        goto out;
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (!k || vc_key_alg(k) != (int)alg) {
        fprintf(stderr, "vpiv: %s: not a key of algorithm %02x\n", path, alg);
        goto out;
    }
    EVP_PKEY_free(st->keys[i].pkey);
    st->keys[i].pkey = k;
    k = NULL;
    st->keys[i].alg = (uint8_t)alg;
    st->keys[i].origin = strcmp(origin, "imported") ? ORIGIN_GENERATED : ORIGIN_IMPORTED;
    st->keys[i].pin_policy = (uint8_t)pp;
    st->keys[i].touch_policy = (uint8_t)tp;
    rc = 0;
out:
    if (f)
        fclose(f);
    EVP_PKEY_free(k);
    return rc;
}

int object_tag_valid(uint32_t tag)
{
    return tag == 0x7E || tag == 0x7F61 || (tag >= 0x5FC101 && tag <= 0x5FC123) ||
           (tag >= 0x5FFF00 && tag <= 0x5FFFFF);
}

static int load_objects(const char *dir, struct vpiv_state *st)
{
    int rc = -1;
    char p[4096], f[4400], *end;
    unsigned long tag;
    DIR *d = NULL;
    FILE *fp = NULL;
    struct dirent *e;
    uint8_t *buf = NULL;
    size_t n;

    if (path_of(p, sizeof(p), dir, "objects") < 0)
        goto out;
    d = opendir(p);
    if (!d) {
        rc = errno == ENOENT ? 0 : -1;
        goto out;
    }
    buf = malloc(VPIV_MAX_OBJECT + 1);
    if (!buf)
        goto out;
    while ((e = readdir(d)) != NULL) {
        tag = strtoul(e->d_name, &end, 16);
        if (e->d_name[0] == '.' || *end || !object_tag_valid((uint32_t)tag))
            continue; /* temporary files and strangers */
        snprintf(f, sizeof(f), "%s/%s", p, e->d_name);
        fp = fopen(f, "re");
        if (!fp)
            goto out;
        n = fread(buf, 1, VPIV_MAX_OBJECT + 1, fp);
        fclose(fp);
        fp = NULL;
        if (n > VPIV_MAX_OBJECT || (n && state_obj_set(st, (uint32_t)tag, buf, n) < 0))
            goto out;
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    if (buf) {
        OPENSSL_cleanse(buf, VPIV_MAX_OBJECT + 1);
        free(buf);
    }
    return rc;
}

int state_load(const char *dir, struct vpiv_state *st)
{
    int rc = -1, seen = 0;
    unsigned a, b;
    char path[4096], line[512], val[128];
    FILE *f = NULL;

    state_free(st);
    if (path_of(path, sizeof(path), dir, CONF) < 0)
        goto out;
    f = fopen(path, "re");
    if (!f) {
        rc = errno == ENOENT ? 1 : -1;
        goto out;
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0])
            continue;
        if (sscanf(line, "serial %u", &a) == 1) {
            st->serial = a;
        } else if (sscanf(line, "pin %127s", val) == 1 && !strncmp(line, "pin ", 4)) {
            if (parse_hex(val, st->pin, 8) < 0)
                goto bad;
            seen |= 1;
        } else if (sscanf(line, "puk %127s", val) == 1 && !strncmp(line, "puk ", 4)) {
            if (parse_hex(val, st->puk, 8) < 0)
                goto bad;
            seen |= 2;
        } else if (sscanf(line, "pin-retries %u %u", &a, &b) == 2) {
            if (b < 1 || b > 255 || a > b)
                goto bad;
            st->pin_left = (uint8_t)a;
            st->pin_max = (uint8_t)b;
            seen |= 4;
        } else if (sscanf(line, "puk-retries %u %u", &a, &b) == 2) {
            if (b < 1 || b > 255 || a > b)
                goto bad;
            st->puk_left = (uint8_t)a;
            st->puk_max = (uint8_t)b;
            seen |= 8;
        } else if (sscanf(line, "mgmt-key %2x %127s", &a, val) == 2) {
            if (!vc_sym_keylen((uint8_t)a) || parse_hex(val, st->mgmt_key, vc_sym_keylen((uint8_t)a)) < 0)
                goto bad;
            st->mgmt_alg = (uint8_t)a;
            seen |= 16;
        } else if (!strncmp(line, "key ", 4)) {
            if (load_key(dir, st, line) < 0)
                goto bad;
        } else if (strncmp(line, "format ", 7)) {
            goto bad;
        }
    }
    if (seen != 31) {
        fprintf(stderr, "vpiv: %s: incomplete\n", path);
        goto out;
    }
    rc = load_objects(dir, st);
    goto out;
bad:
    /* Only the name: the value may be a PIN or key. */
    fprintf(stderr, "vpiv: %s: bad line \"%.*s\"\n", path, (int)strcspn(line, " "), line);
out:
    OPENSSL_cleanse(line, sizeof(line));
    OPENSSL_cleanse(val, sizeof(val));
    if (f)
        fclose(f);
    return rc;
}
