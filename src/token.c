#include "config.h"
#include "token.h"

#include <stdlib.h>

#include "../drivers/driver.h"

/* One counter for every object in the module (called under the module lock),
 * so a handle never names two objects, whatever their token. */
static unsigned long handle_counter;

CK_OBJECT_HANDLE tess_handle_next(void)
{
    if (++handle_counter == 0)   /* CK_INVALID_HANDLE is 0 */
        ++handle_counter;
    return (CK_OBJECT_HANDLE)handle_counter;
}

static CK_RV token_object_handle(struct tess_token *tok, uint64_t uid, CK_OBJECT_HANDLE *out)
{
    for (size_t i = 0; i < tok->nhandles; i++) {
        if (tok->handles[i].uid == uid) {
            *out = tok->handles[i].handle;
            return CKR_OK;
        }
    }
    if (tok->nhandles == tok->caphandles) {
        size_t cap = tok->caphandles ? tok->caphandles * 2 : 32;
        struct tess_handle_map *m = realloc(tok->handles, cap * sizeof(*m));
        if (!m)
            return CKR_HOST_MEMORY;
        tok->handles = m;
        tok->caphandles = cap;
    }
    *out = tess_handle_next();
    tok->handles[tok->nhandles].uid = uid;
    tok->handles[tok->nhandles++].handle = *out;
    return CKR_OK;
}

struct tess_object *tess_object_new(void)
{
    return calloc(1, sizeof(struct tess_object));
}

void tess_object_free(const struct tess_token *tok, struct tess_object *obj)
{
    if (!obj)
        return;
    if (obj->drv && tok && tok->driver && tok->driver->free_object)
        tok->driver->free_object(obj->drv);
    tess_attrs_free(&obj->attrs);
    free(obj);
}

CK_RV tess_token_add_object(struct tess_token *tok, struct tess_object *obj)
{
    if (obj->token_object) {
        CK_RV rv = token_object_handle(tok, obj->uid, &obj->handle);
        if (rv != CKR_OK)
            return rv;
        /* A device that rewrote an object in place (a PIV slot's certificate
         * or key) reports the same uid: the new object takes the old one's
         * handle and place, so one handle never stands for two objects.
         * Operations hold handles, not objects: freeing the old one is safe. */
        struct tess_object *replaced = tess_token_find_uid(tok, obj->uid);
        if (replaced && replaced != obj) {
            tess_token_unlink_object(tok, replaced);
            tess_object_free(tok, replaced);
        }
    } else if (!obj->handle) {
        obj->handle = tess_handle_next();
    }
    obj->next = tok->objects;
    tok->objects = obj;
    return CKR_OK;
}

CK_RV tess_token_add_profile(struct tess_token *tok)
{
    struct tess_object *o = tess_object_new();
    CK_RV rv = o ? CKR_OK : CKR_HOST_MEMORY;
    if (rv != CKR_OK)
        goto out;
    o->uid = TESS_UID_PROFILE;
    o->token_object = true;
    rv = tess_attrs_set_ulong(&o->attrs, CKA_CLASS, CKO_PROFILE);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(&o->attrs, CKA_PROFILE_ID, CKP_PUBLIC_CERTIFICATES_TOKEN);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_TOKEN, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_PRIVATE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_MODIFIABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_COPYABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_DESTROYABLE, false);
    if (rv == CKR_OK)
        rv = tess_token_add_object(tok, o);
    if (rv == CKR_OK)
        o = NULL;
out:
    tess_object_free(tok, o);
    return rv;
}

void tess_token_clear_token_objects(struct tess_token *tok)
{
    struct tess_object **pp = &tok->objects;
    while (*pp) {
        struct tess_object *o = *pp;
        if (o->token_object) {
            *pp = o->next;
            tess_object_free(tok, o);
        } else {
            pp = &o->next;
        }
    }
    tok->generation++;
}

struct tess_object *tess_token_find_handle(struct tess_token *tok, CK_OBJECT_HANDLE h)
{
    for (struct tess_object *o = tok->objects; o; o = o->next)
        if (o->handle == h)
            return o;
    return NULL;
}

struct tess_object *tess_token_find_uid(struct tess_token *tok, uint64_t uid)
{
    for (struct tess_object *o = tok->objects; o; o = o->next)
        if (o->token_object && o->uid == uid)
            return o;
    return NULL;
}

void tess_token_unlink_object(struct tess_token *tok, struct tess_object *obj)
{
    for (struct tess_object **pp = &tok->objects; *pp; pp = &(*pp)->next) {
        if (*pp == obj) {
            *pp = obj->next;
            obj->next = NULL;
            return;
        }
    }
}
