#include "config.h"
#include "token.h"

#include <stdlib.h>

#include "../drivers/driver.h"

/* Token object handles are (slot << 24 | uid): a reload, or another process
 * that reads the same store, gives the same object the same handle. Session
 * objects take handles above bit 31 so the two never meet. */
#define SESSION_HANDLE_BIT 0x80000000UL

static unsigned long session_handle_counter = 1;

CK_OBJECT_HANDLE tess_handle_for_uid(const struct tess_token *tok, uint64_t uid)
{
    return (CK_OBJECT_HANDLE)((((unsigned long)tok->slot_id & 0x7f) << 24) | (uid & 0xffffff));
}

CK_OBJECT_HANDLE tess_handle_next_session(void)
{
    /* Called under the module lock. */
    unsigned long h = session_handle_counter++;
    return (CK_OBJECT_HANDLE)(SESSION_HANDLE_BIT | (h & 0x7fffffffUL));
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

void tess_token_add_object(struct tess_token *tok, struct tess_object *obj)
{
    if (obj->token_object)
        obj->handle = tess_handle_for_uid(tok, obj->uid);
    else if (!obj->handle)
        obj->handle = tess_handle_next_session();
    obj->next = tok->objects;
    tok->objects = obj;
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
