"""Verifies a stint token the way any OIDC-aware service would: discovery, JWKS, PyJWT.

usage: verify_jwt.py ISSUER AUDIENCE TOKEN   -> prints the verified claims as JSON
"""
import json
import sys
import urllib.request

import jwt

issuer, audience, token = sys.argv[1], sys.argv[2], sys.argv[3]
with urllib.request.urlopen(issuer + "/.well-known/openid-configuration") as r:
    conf = json.load(r)
assert conf["issuer"] == issuer, conf
key = jwt.PyJWKClient(conf["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    key,
    algorithms=["EdDSA"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
)
print(json.dumps(claims))
