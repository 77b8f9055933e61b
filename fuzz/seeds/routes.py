#!/usr/bin/env python3
"""Writes the committed seeds of the `routes` fuzz target (fuzz/seeds/routes/), in the layout
its harness reads (fuzz/fuzz_targets/routes.rs): run it after changing either.

    python3 fuzz/seeds/routes.py
"""
import os
import struct

# Indexes into the harness's ROUTES, CONTENT_TYPES and HEADERS.
ROUTE = {
    "token": 0, "sts": 1, "sts/": 2, "introspect": 3, "login": 4, "bootstrap": 5, "enroll": 6,
    "sso/providers": 7, "sso/begin": 8, "sso/device/authorize": 9, "sso/callback": 10,
    "sso/device GET": 11, "sso/device POST": 12, "sso/step-up": 13, "sso/token": 14,
    "discovery": 15, "jwks": 16, "krl": 17, "assume": 18, "lease": 19, "disable": 20,
    "workload/join": 21, "workload/attest": 22, "workload/creds": 23, "workload/status": 24,
    "join-tokens": 25, "scim Users": 26, "scim PATCH User": 27,
}
JSON, FORM = 0, 1
HEADER = {"authorization": 0, "x-forwarded-for": 1, "cookie": 2, "origin": 7, "sec-fetch-site": 8}
ABSENT = None

GITHUB_JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ."
    "eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHVidXNlcmNvbnRlbnQuY29tIiwiYXVkIjoic3RpbnQiLCJzdWIiOiJyZXBvOmFjbWUvaW5mcmE6cmVmOnJlZnMvaGVhZHMvbWFpbiIsInJlcG9zaXRvcnkiOiJhY21lL2luZnJhIiwicmVmIjoicmVmcy9oZWFkcy9tYWluIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAzMDB9."
    "c2ln"
)
ASSERTION = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImF0WlI2M3RORzNXMkdoUHAifQ."
    "eyJpc3MiOiJhcGkiLCJzdWIiOiJhcGkiLCJhdWQiOiJodHRwczovL3N0aW50LmV4YW1wbGUiLCJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTgwMDAwMDA2MCwianRpIjoiYzJWbFpDMXFkR2t0TURBd01EQXdNUSJ9."
    "xMTtlnHGW0fIFQUZmWerK5Z8flUo6vhUQowlJ197_xzySFOUVvfck3zw3djKJ3iQd589K9fqHUPSoobWgHpCAQ"
)
PUBLIC_KEY = "bnoc3Smwt4_ROvTFWY_v9O8qlxZuPKby5Pv8zYBQW_E"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


def field(value):
    if value is None:
        return b"\xff\xff"
    b = value.encode() if isinstance(value, str) else value
    return struct.pack(">H", len(b)) + b


def call(route, *, fields=None, raw=b"", content_type=JSON, query=None, param=None, headers=(), peer=(203, 0, 113, 7)):
    """One input: a body built from `fields` (the route's, in order), or `raw` as it is."""
    flags = (1 if fields is not None else 0) | (2 if query is not None else 0) | (content_type << 3)
    out = bytes([ROUTE[route], flags, len(headers)]) + bytes(peer)
    if param is not None:
        out += field(param)
    if query is not None:
        out += field(query)
    for name, value in headers:
        out += bytes([HEADER[name]]) + field(value)
    if fields is not None:
        return out + b"".join(field(v) for v in fields)
    return out + (raw.encode() if isinstance(raw, str) else raw)


SEEDS = {
    # /v1/token: grant_type, subject_token, subject_token_type, requested_token_type, role, scope, ttl, audience
    "token-exchange": call("token", fields=[TOKEN_EXCHANGE, GITHUB_JWT, JWT_TYPE, ABSENT, "deploy", ABSENT, "15m", "stint"]),
    "token-exchange-raw": call("token", content_type=FORM, raw=f"grant_type={TOKEN_EXCHANGE}&subject_token={GITHUB_JWT}&role=deploy"),
    # /v1/sts: Action, Version, RoleArn, RoleSessionName, WebIdentityToken, DurationSeconds, Policy
    "sts": call("sts", fields=["AssumeRoleWithWebIdentity", "2011-06-15", "arn:aws:iam::123456789012:role/deploy", "ci", GITHUB_JWT, "900", ABSENT]),
    "sts-raw": call("sts/", content_type=FORM, raw="Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdeploy&RoleSessionName=ci&WebIdentityToken=e30.e30.c2ln"),
    "introspect": call("introspect", fields=[GITHUB_JWT, "access_token"]),
    "introspect-stint-token": call("introspect", fields=["stint_s_AAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ABSENT]),
    "login": call("login", fields=["alice", "a long enough passphrase", "123456"]),
    "login-raw": call("login", raw='{"username":"alice","password":"a long enough passphrase","totp":"123456"}'),
    "bootstrap": call("bootstrap", fields=["stint_bt_0123456789abcdef", "root"]),
    "enroll": call("enroll", fields=["stint_en_0123456789abcdef", "a long enough passphrase"]),
    "sso-providers": call("sso/providers"),
    "sso-begin": call("sso/begin", fields=[ABSENT, "http://127.0.0.1:53682/callback", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256"]),
    "sso-device-authorize": call("sso/device/authorize", fields=[ABSENT, "stint-cli"]),
    "sso-callback": call("sso/callback", query="state=s_0123456789abcdef&code=SplxlOBeZQQYbYS6WxSbIA&iss=https%3A%2F%2Fidp.example"),
    "sso-device-page": call("sso/device GET", query="user_code=WDJB-MJHT"),
    "sso-device-confirm": call("sso/device POST", fields=["WDJB-MJHT", "yes"], headers=[("origin", "http://127.0.0.1:7807"), ("sec-fetch-site", "same-origin")]),
    "sso-step-up": call("sso/step-up", fields=["s_0123456789abcdef", "123456"]),
    "sso-token": call("sso/token", fields=[DEVICE_CODE, "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS", ABSENT, ABSENT, "stint-cli"]),
    "discovery": call("discovery"),
    "jwks": call("jwks"),
    "krl": call("krl"),
    "assume": call("assume", fields=["deploy", "1h", ABSENT], headers=[("authorization", "Bearer stint_s_AAAAAAAAAAAAAAAAAAAAAAAAAA.AAAA")]),
    "lease": call("lease", param="l_aaaaaaaaaaaaaaaaaaaaaaaaaa"),
    "disable": call("disable", param="alice", headers=[("x-forwarded-for", "198.51.100.1, 10.0.0.1")]),
    "workload-join": call("workload/join", fields=["stint_join_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", PUBLIC_KEY]),
    "workload-attest": call("workload/attest", fields=["api", GITHUB_JWT, PUBLIC_KEY]),
    "workload-creds": call("workload/creds", fields=[ASSERTION, "readonly", "token", "15m", ABSENT, "l_aaaaaaaaaaaaaaaaaaaaaaaaaa"]),
    "workload-status": call("workload/status", fields=[ASSERTION, "l_aaaaaaaaaaaaaaaaaaaaaaaaaa"]),
    "join-tokens": call("join-tokens", param="api", fields=["1h"], headers=[("authorization", "Bearer x")]),
    "scim-users": call("scim Users", query='filter=userName%20eq%20%22alice%40example.com%22', headers=[("authorization", "Bearer stint_scim_x")]),
    "scim-patch": call("scim PATCH User", param="u_1", content_type=JSON, raw='{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}', headers=[("authorization", "Bearer stint_scim_x")]),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "routes")
    for old in os.listdir(out):
        os.remove(os.path.join(out, old))
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")
