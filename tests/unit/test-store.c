/* Unit tests for src/store.c: the SQLite token store. Runs on a throwaway
 * database in a mkdtemp folder; a second connection to the same file stands
 * in for another process using the module at the same time. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../src/store.h"
#include "../tap.h"

static char dir[64], sub[96], dbpath[128];

static void card_init(struct tess_card_rec *r, const char *driver, int slot, const char *serial)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->driver, sizeof(r->driver), "%s", driver);
    r->slot_index = slot;
    snprintf(r->label, sizeof(r->label), "card %d", slot);
    snprintf(r->serial, sizeof(r->serial), "%s", serial);
    snprintf(r->policy, sizeof(r->policy), "min=6 max=64 digits=optional uppercase=optional lowercase=optional "
                                           "special=optional");
    r->user_tries_left = r->user_tries_max = 5;
    r->so_tries_left = r->so_tries_max = 3;
}

static int card_eq(const struct tess_card_rec *a, const struct tess_card_rec *b)
{
    return a->id == b->id && !strcmp(a->driver, b->driver) && a->slot_index == b->slot_index &&
           !strcmp(a->label, b->label) && !strcmp(a->serial, b->serial) && !strcmp(a->policy, b->policy) &&
           a->user_tries_left == b->user_tries_left && a->user_tries_max == b->user_tries_max &&
           a->so_tries_left == b->so_tries_left && a->so_tries_max == b->so_tries_max &&
           a->user_pin_set == b->user_pin_set && a->drv_len == b->drv_len &&
           (a->drv_len == 0 || !memcmp(a->drv_data, b->drv_data, a->drv_len));
}

static size_t count_cards(struct tess_store *s, const char *driver)
{
    struct tess_card_rec *recs = NULL;
    size_t n = 0;
    if (tess_store_card_list(s, driver, &recs, &n) != CKR_OK)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        tess_card_rec_clear(&recs[i]);
    free(recs);
    return n;
}

static size_t count_objects(struct tess_store *s, int64_t card_id)
{
    struct tess_object_rec *recs = NULL;
    size_t n = 0;
    if (tess_store_object_list(s, card_id, &recs, &n) != CKR_OK)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        tess_object_rec_clear(&recs[i]);
    free(recs);
    return n;
}

static CK_RV add_object(struct tess_store *s, int64_t card_id, const char *attrs, const char *drv, int64_t *id)
{
    struct tess_object_rec o = { 0 };
    o.card_id = card_id;
    o.attrs = (uint8_t *)attrs;
    o.attrs_len = attrs ? strlen(attrs) : 0;
    o.drv_data = (uint8_t *)drv;
    o.drv_len = drv ? strlen(drv) : 0;
    CK_RV rv = tess_store_object_insert(s, &o);
    if (id)
        *id = o.id;
    return rv;
}

static void test_open(struct tess_store **s1, struct tess_store **s2)
{
    char err[512] = "";
    struct stat st;

    /* A permissive umask must not widen what the store creates. */
    mode_t old = umask(0);
    ok(tess_store_open(dbpath, s1, err, sizeof(err)) == 0, "open a fresh store under a missing folder (%s)", err);
    umask(old);
    /* stat first: the message below prints st, and argument order is unspecified. */
    int got = stat(sub, &st);
    ok(got == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700,
       "missing parent folder created with mode 0700 (got %o)", (unsigned)(st.st_mode & 07777));
    got = stat(dbpath, &st);
    ok(got == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600,
       "database file created with mode 0600 (got %o)", (unsigned)(st.st_mode & 07777));
    /* The WAL holds the same data as the database until a checkpoint. */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    got = stat(wal, &st);
    ok(got == 0 && (st.st_mode & 07777) == 0600, "WAL file exists with mode 0600 (got %o)",
       (unsigned)(st.st_mode & 07777));

    /* A second connection finds the schema in place and does not migrate again. */
    err[0] = '\0';
    ok(tess_store_open(dbpath, s2, err, sizeof(err)) == 0, "open the same store a second time (%s)", err);
    ok(count_cards(*s1, "tpm2") == 0 && count_cards(*s2, "tpm2") == 0, "both connections see an empty store");
}

static void test_cards(struct tess_store *s, int64_t *card_a, int64_t *card_b)
{
    struct tess_card_rec a, got, *recs = NULL;
    size_t n = 0;
    static const uint8_t blob[] = { 0x00, 0x01, 0xfe, 0xff, 0x00, 0x42 };

    card_init(&a, "tpm2", 3, "0000000000000003");
    a.user_pin_set = 1;
    a.drv_data = (uint8_t *)blob;
    a.drv_len = sizeof(blob);
    is_rv(tess_store_card_insert(s, &a), CKR_OK, "insert card");
    ok(a.id > 0, "insert fills in the new id (%lld)", (long long)a.id);

    memset(&got, 0, sizeof(got));
    is_rv(tess_store_card_get(s, a.id, &got), CKR_OK, "get card");
    ok(card_eq(&a, &got), "every field, including a drv_data blob with NUL bytes, reads back");
    tess_card_rec_clear(&got);

    struct tess_card_rec b;
    card_init(&b, "tpm2", 1, "0000000000000001");
    is_rv(tess_store_card_insert(s, &b), CKR_OK, "insert a second card");
    ok(b.id != a.id, "second card gets its own id");

    is_rv(tess_store_card_list(s, "tpm2", &recs, &n), CKR_OK, "list cards of the driver");
    ok(n == 2 && recs[0].slot_index == 1 && recs[1].slot_index == 3,
       "list gives both cards ordered by slot index whatever the insertion order");
    ok(n == 2 && card_eq(&recs[1], &a) && card_eq(&recs[0], &b), "listed records equal the inserted ones");
    for (size_t i = 0; i < n; i++)
        tess_card_rec_clear(&recs[i]);
    free(recs);
    ok(count_cards(s, "other") == 0, "list of another driver is empty");

    /* UNIQUE(driver, slot_index): same driver and slot, fresh serial. */
    struct tess_card_rec dup;
    card_init(&dup, "tpm2", 3, "00000000000000ff");
    ok(tess_store_card_insert(s, &dup) != CKR_OK, "a second card in the same driver slot is refused");
    ok(count_cards(s, "tpm2") == 2, "refused insert left the driver with two cards");
    card_init(&dup, "other", 3, "00000000000000fe");
    is_rv(tess_store_card_insert(s, &dup), CKR_OK, "the same slot number under another driver is fine");
    card_init(&dup, "other", 4, "0000000000000003");
    ok(tess_store_card_insert(s, &dup) != CKR_OK, "a duplicate serial is refused");

    /* Update every mutable field; drop drv_data to NULL. */
    a.slot_index = 7;
    snprintf(a.label, sizeof(a.label), "%s", "renamed");
    snprintf(a.policy, sizeof(a.policy), "%s", "min=8 max=8 digits=mandatory uppercase=optional "
                                                 "lowercase=optional special=forbidden");
    a.user_tries_max = 10;
    a.so_tries_max = 9;
    a.user_pin_set = 0;
    a.drv_data = NULL;
    a.drv_len = 0;
    is_rv(tess_store_card_update(s, &a), CKR_OK, "update card");
    is_rv(tess_store_card_get(s, a.id, &got), CKR_OK, "get updated card");
    ok(card_eq(&a, &got) && got.drv_data == NULL, "update changed every field and cleared drv_data");
    tess_card_rec_clear(&got);

    is_rv(tess_store_card_set_tries(s, a.id, 2, 1), CKR_OK, "set tries");
    is_rv(tess_store_card_get(s, a.id, &got), CKR_OK, "get after set tries");
    ok(got.user_tries_left == 2 && got.so_tries_left == 1 && got.user_tries_max == 10 && got.so_tries_max == 9 &&
           !strcmp(got.label, "renamed"),
       "set_tries changes only the two counters");
    tess_card_rec_clear(&got);

    is_rv(tess_store_card_get(s, 999999, &got), CKR_TOKEN_NOT_PRESENT, "get of a missing id");

    *card_a = a.id;
    *card_b = b.id;
}

static void test_objects(struct tess_store *s, int64_t card_a, int64_t card_b)
{
    struct tess_object_rec *recs = NULL;
    size_t n = 0;
    int64_t o1, o2, o3, o4;

    is_rv(add_object(s, card_a, "attrs-one", "drv-one", &o1), CKR_OK, "insert object 1");
    is_rv(add_object(s, card_a, "attrs-two", NULL, &o2), CKR_OK, "insert object 2 without drv_data");
    is_rv(add_object(s, card_b, "attrs-b", "drv-b", &o3), CKR_OK, "insert an object on the other card");
    is_rv(add_object(s, card_a, NULL, NULL, &o4), CKR_OK, "insert an object with empty attrs");
    ok(o1 > 0 && o2 > o1 && o3 > o2 && o4 > o3, "object ids are assigned and increase");

    is_rv(tess_store_object_list(s, card_a, &recs, &n), CKR_OK, "list objects of card A");
    ok(n == 3, "card A has three objects (%zu)", n);
    if (n == 3) {
        ok(recs[0].id == o1 && recs[0].card_id == card_a && recs[0].attrs_len == 9 &&
               !memcmp(recs[0].attrs, "attrs-one", 9) && recs[0].drv_len == 7 && !memcmp(recs[0].drv_data, "drv-one", 7),
           "object 1 reads back with attrs and drv_data");
        ok(recs[1].id == o2 && recs[1].attrs_len == 9 && !memcmp(recs[1].attrs, "attrs-two", 9) &&
               recs[1].drv_data == NULL && recs[1].drv_len == 0,
           "object 2 reads back with no drv_data");
        ok(recs[2].id == o4 && recs[2].attrs_len == 0 && recs[2].attrs == NULL, "empty attrs read back empty");
    }
    for (size_t i = 0; i < n; i++)
        tess_object_rec_clear(&recs[i]);
    free(recs);

    is_rv(tess_store_object_update_attrs(s, o2, (const uint8_t *)"new-attrs-2!", 12), CKR_OK, "update attrs");
    tess_store_object_list(s, card_a, &recs, &n);
    ok(n == 3 && recs[1].id == o2 && recs[1].attrs_len == 12 && !memcmp(recs[1].attrs, "new-attrs-2!", 12) &&
           recs[0].attrs_len == 9 && !memcmp(recs[0].attrs, "attrs-one", 9),
       "update_attrs changes that object only");
    for (size_t i = 0; i < n; i++)
        tess_object_rec_clear(&recs[i]);
    free(recs);

    is_rv(tess_store_object_delete(s, o4), CKR_OK, "delete object");
    ok(count_objects(s, card_a) == 2, "card A has two objects after the delete");

    /* foreign_keys must be on, or objects could be orphaned. */
    ok(add_object(s, 424242, "orphan", NULL, NULL) != CKR_OK, "an object for a missing card is refused");

    /* A card's admin state: absent, written, read back, replaced. */
    struct tess_admin_rec adm = { 0 }, adm2 = { 0 };
    is_rv(tess_store_admin_get(s, card_a, &adm), CKR_OK, "admin state of a card without one");
    ok(!adm.present, "  is absent");
    uint8_t blob[3] = { 1, 2, 3 };
    adm.card_id = card_a;
    adm.tries_left = 4;
    adm.tries_max = 5;
    adm.data = malloc(3);
    memcpy(adm.data, blob, 3);
    adm.data_len = 3;
    is_rv(tess_store_admin_put(s, &adm), CKR_OK, "admin state written");
    is_rv(tess_store_admin_get(s, card_a, &adm2), CKR_OK, "admin state read");
    ok(adm2.present && adm2.tries_left == 4 && adm2.tries_max == 5 && adm2.data_len == 3 &&
           !memcmp(adm2.data, blob, 3), "  as written");
    tess_admin_rec_clear(&adm2);
    adm.tries_left = 2;
    is_rv(tess_store_admin_put(s, &adm), CKR_OK, "admin state replaced");
    tess_store_admin_get(s, card_a, &adm2);
    ok(adm2.tries_left == 2, "  one row per card");
    tess_admin_rec_clear(&adm2);
    adm.card_id = 424242;
    ok(tess_store_admin_put(s, &adm) != CKR_OK, "admin state for a missing card is refused");
    tess_admin_rec_clear(&adm);

    is_rv(tess_store_card_delete(s, card_a), CKR_OK, "delete card A");
    tess_store_admin_get(s, card_a, &adm2);
    ok(!adm2.present, "deleting a card deletes its admin state");
    tess_admin_rec_clear(&adm2);
    struct tess_card_rec got;
    is_rv(tess_store_card_get(s, card_a, &got), CKR_TOKEN_NOT_PRESENT, "deleted card is gone");
    ok(count_objects(s, card_a) == 0, "deleting a card cascades to its objects");
    ok(count_objects(s, card_b) == 1, "the other card's objects are untouched");

    is_rv(tess_store_objects_delete_card(s, card_b), CKR_OK, "delete all objects of card B");
    ok(count_objects(s, card_b) == 0, "card B has no objects left");
    is_rv(tess_store_card_get(s, card_b, &got), CKR_OK, "card B itself stays");
    tess_card_rec_clear(&got);
}

static void test_transactions(struct tess_store *s)
{
    struct tess_card_rec c, got;
    size_t before = count_cards(s, "tpm2");

    is_rv(tess_store_begin(s), CKR_OK, "begin");
    card_init(&c, "tpm2", 20, "0000000000000020");
    is_rv(tess_store_card_insert(s, &c), CKR_OK, "insert card inside the transaction");
    is_rv(add_object(s, c.id, "in-txn", NULL, NULL), CKR_OK, "insert object inside the transaction");
    ok(count_cards(s, "tpm2") == before + 1, "the transaction sees its own card");
    tess_store_rollback(s);
    ok(count_cards(s, "tpm2") == before, "rollback removes the card");
    is_rv(tess_store_card_get(s, c.id, &got), CKR_TOKEN_NOT_PRESENT, "rolled-back card id is not present");
    ok(count_objects(s, c.id) == 0, "rollback removes the object");

    tess_store_rollback(s); /* outside a transaction: must be a harmless no-op */
    is_rv(tess_store_begin(s), CKR_OK, "begin again after a stray rollback");
    card_init(&c, "tpm2", 21, "0000000000000021");
    is_rv(tess_store_card_insert(s, &c), CKR_OK, "insert card");
    is_rv(tess_store_commit(s), CKR_OK, "commit");
    is_rv(tess_store_card_get(s, c.id, &got), CKR_OK, "committed card is present");
    tess_card_rec_clear(&got);
    ok(tess_store_begin(s) == CKR_OK && tess_store_begin(s) != CKR_OK, "a nested begin is refused");
    tess_store_rollback(s);
}

/* PRAGMA data_version is how a process notices another one's writes. */
static void test_data_version(struct tess_store *s1, struct tess_store *s2, int64_t card)
{
    int64_t v1 = tess_store_data_version(s1), v2 = tess_store_data_version(s2);
    ok(v1 >= 0 && v2 >= 0, "data_version readable on both connections (%lld, %lld)", (long long)v1,
       (long long)v2);
    ok(tess_store_data_version(s1) == v1, "unchanged with no writes");

    is_rv(tess_store_card_set_tries(s1, card, 4, 2), CKR_OK, "connection 1 writes (autocommit)");
    ok(tess_store_data_version(s1) == v1, "connection 1's own commit does not change its data_version");
    int64_t v2b = tess_store_data_version(s2);
    ok(v2b != v2, "connection 2 sees connection 1's commit (%lld -> %lld)", (long long)v2, (long long)v2b);
    struct tess_card_rec got;
    ok(tess_store_card_get(s2, card, &got) == CKR_OK && got.user_tries_left == 4, "and reads the new value");
    tess_card_rec_clear(&got);

    is_rv(tess_store_begin(s2), CKR_OK, "connection 2 begins");
    tess_store_card_set_tries(s2, card, 3, 2);
    ok(tess_store_data_version(s1) == v1, "an uncommitted write is not a change for connection 1");
    is_rv(tess_store_commit(s2), CKR_OK, "connection 2 commits");
    ok(tess_store_data_version(s2) == v2b, "connection 2's own commit does not change its data_version");
    int64_t v1b = tess_store_data_version(s1);
    ok(v1b != v1, "connection 1 sees connection 2's commit (%lld -> %lld)", (long long)v1, (long long)v1b);

    /* A rolled-back transaction commits nothing, so nobody sees a change. */
    tess_store_begin(s2);
    tess_store_card_set_tries(s2, card, 0, 0);
    tess_store_rollback(s2);
    ok(tess_store_data_version(s1) == v1b, "connection 2's rollback is not a change for connection 1");
}

static void test_reopen_and_errors(void)
{
    struct tess_store *s = NULL;
    char err[512] = "", path[160];

    ok(tess_store_open(dbpath, &s, err, sizeof(err)) == 0 && count_cards(s, "tpm2") == 2,
       "reopen after close keeps the data (%s)", err);
    tess_store_close(s);

    /* A schema newer than this build must be refused, not downgraded. */
    snprintf(path, sizeof(path), "%s/newer.db", sub);
    s = NULL;
    ok(tess_store_open(path, &s, err, sizeof(err)) == 0, "create a second store (%s)", err);
    tess_store_close(s);
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    rc = rc == SQLITE_OK ? sqlite3_exec(db, "UPDATE schema SET version = 99", NULL, NULL, NULL) : rc;
    sqlite3_close(db);
    s = NULL;
    err[0] = '\0';
    ok(rc == SQLITE_OK && tess_store_open(path, &s, err, sizeof(err)) == -1 && s == NULL && strstr(err, "newer"),
       "a store with schema 99 is refused with a message (%s)", err);
    unlink(path);

    /* A parent that is a regular file cannot be a folder. */
    snprintf(path, sizeof(path), "%s/plainfile/x/tessera.db", sub);
    char file[160];
    snprintf(file, sizeof(file), "%s/plainfile", sub);
    FILE *f = fopen(file, "w");
    if (f)
        fclose(f);
    err[0] = '\0';
    ok(tess_store_open(path, &s, err, sizeof(err)) == -1 && strstr(err, "cannot create"),
       "an uncreatable folder is reported (%s)", err);
    unlink(file);
}

static void cleanup(void)
{
    static const char *suffix[] = { "", "-wal", "-shm", "-journal" };
    char p[160];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", dbpath, suffix[i]);
        unlink(p);
        snprintf(p, sizeof(p), "%s/newer.db%s", sub, suffix[i]);
        unlink(p);
    }
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    struct tess_store *s1 = NULL, *s2 = NULL;
    int64_t card_a = 0, card_b = 0;

    plan_lazy();
    /* The refusals tested below are logged as errors; keep stderr quiet
     * unless whoever runs the test asked for logging. */
    setenv("TESSERA_LOG", "none", 0);
    snprintf(dir, sizeof(dir), "%s", "/tmp/tessera-test-store-XXXXXX");
    if (!mkdtemp(dir))
        bail_out("mkdtemp failed");
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    snprintf(dbpath, sizeof(dbpath), "%s/tessera.db", sub);

    test_open(&s1, &s2);
    if (!s1 || !s2) {
        cleanup();
        bail_out("cannot open the store");
    }
    test_cards(s1, &card_a, &card_b);
    test_objects(s1, card_a, card_b);
    test_transactions(s1);
    test_data_version(s1, s2, card_b);
    tess_store_close(s1);
    tess_store_close(s2);
    test_reopen_and_errors();
    cleanup();
    return done_testing();
}
