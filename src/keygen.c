/* Defaults for a freshly generated key pair that depend on its public key. */
#include "config.h"

#include <openssl/evp.h>

#include "mech.h"
#include "token.h"

CK_RV tess_keygen_complete(struct tess_object *pub, struct tess_object *priv)
{
    const CK_ATTRIBUTE *id_pub = tess_attrs_get(&pub->attrs, CKA_ID);
    const CK_ATTRIBUTE *id_priv = tess_attrs_get(&priv->attrs, CKA_ID);
    const CK_ATTRIBUTE *material = tess_attrs_get(&pub->attrs, CKA_MODULUS);
    uint8_t id[EVP_MAX_MD_SIZE];
    unsigned int idlen = 0;
    CK_RV rv = CKR_OK;

    if (!material)
        material = tess_attrs_get(&pub->attrs, CKA_EC_POINT);
    /* The caller named the pair on one half only: give the other the same. */
    if (id_pub && id_pub->ulValueLen && !(id_priv && id_priv->ulValueLen))
        return tess_attrs_set(&priv->attrs, CKA_ID, id_pub->pValue, id_pub->ulValueLen);
    if (id_priv && id_priv->ulValueLen && !(id_pub && id_pub->ulValueLen))
        return tess_attrs_set(&pub->attrs, CKA_ID, id_priv->pValue, id_priv->ulValueLen);
    if (id_pub && id_pub->ulValueLen)
        return CKR_OK;
    /* Neither: SHA-1 of the public key, as OpenSC and most tools do. */
    if (!material || !EVP_Digest(material->pValue, material->ulValueLen, id, &idlen, EVP_sha1(), NULL))
        return CKR_FUNCTION_FAILED;
    rv = tess_attrs_set(&pub->attrs, CKA_ID, id, idlen);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&priv->attrs, CKA_ID, id, idlen);
    return rv;
}
