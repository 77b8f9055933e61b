"""Drives stint's SCIM service with the PyPI `scim2-client`, as an identity provider would.

Run by crates/stint-server/tests/scim_client.rs with SCIM_URL (the /scim/v2 base) and
SCIM_TOKEN in the environment. Every response is validated by the client against the SCIM
models; the script prints one JSON object of what it saw, which the Rust test checks.
"""

import json
import os

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    Email,
    Error,
    Group,
    GroupMember,
    ListResponse,
    PatchOp,
    PatchOperation,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    User,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

http = Client(base_url=os.environ["SCIM_URL"], headers={"Authorization": "Bearer " + os.environ["SCIM_TOKEN"]})
scim = SyncSCIMClient(http, provider=ScimProvider(models=[User, Group]))
scim.discover()
seen = {}

config = scim.query(ServiceProviderConfig)
seen["etag_supported"] = config.etag.supported
seen["patch_supported"] = config.patch.supported


def users(filter=None, start=None, count=None):
    found = scim.query(User, query_parameters=SearchRequest(filter=filter, start_index=start, count=count))
    assert isinstance(found, ListResponse), found
    return found


# Create: a new hire, and the existing local user the provider then finds by userName.
dana = scim.create(
    User(user_name="dana", external_id="00u-dana", emails=[Email(value="Dana@Example.com", primary=True, type="work")])
)
seen["created"] = {"id": dana.id, "userName": dana.user_name, "active": dana.active, "version": dana.meta.version}
seen["created_email"] = dana.emails[0].value
again = scim.create(User(user_name="dana"), raise_scim_errors=False, expected_status_codes=None)
seen["create_taken"] = {"status": again.status, "scimType": again.scim_type} if isinstance(again, Error) else repr(again)

# Filters the providers send, and pagination.
seen["filter_username"] = [u.user_name for u in users('userName eq "BOB"').resources or []]
seen["filter_external"] = [u.user_name for u in users('externalId eq "00u-dana"').resources or []]
seen["filter_and_or"] = sorted(u.user_name for u in users('(userName eq "bob" or userName eq "dana") and active eq true').resources or [])
page = users(start=2, count=1)
seen["page"] = {"total": page.total_results, "start": page.start_index, "per_page": page.items_per_page}

# Read, with its version; a stale If-Match is refused, the current one accepted.
bob = users('userName eq "bob"').resources[0]
got = scim.query(User, bob.id)
seen["read_version"] = {"present": got.meta.version is not None, "same_as_listed": got.meta.version == bob.meta.version}
stale = http.put(
    f"Users/{bob.id}",
    headers={"If-Match": 'W/"stale"', "Content-Type": "application/scim+json"},
    content=json.dumps({"schemas": [USER], "userName": "bob", "externalId": "00u-bob"}),
)
seen["stale_if_match"] = stale.status_code
not_modified = http.get(f"Users/{bob.id}", headers={"If-None-Match": got.meta.version})
seen["if_none_match"] = not_modified.status_code

# PUT takes over the local user: the provider's externalId and email from now on.
got.external_id = "00u-bob"
got.emails = [Email(value="bob@example.com", primary=True)]
replaced = scim.replace(got)
seen["replaced"] = {"externalId": replaced.external_id, "version_changed": replaced.meta.version != got.meta.version}

# Groups: created with a member, patched the Okta and Entra ways, renamed, deleted.
oncall = scim.create(Group(display_name="Engineering On-Call", members=[GroupMember(value=bob.id)]))
seen["group_created"] = {"id": oncall.id, "members": [m.value for m in oncall.members or []]}
seen["bob_groups_after_join"] = [g.value for g in scim.query(User, bob.id).groups or []]
scim.modify(Group, oncall.id, PatchOp[Group](operations=[PatchOperation(op="add", path="members", value=[{"value": dana.id}])]))
seen["members_after_add"] = sorted(m.value for m in scim.query(Group, oncall.id).members or [])
scim.modify(Group, oncall.id, PatchOp[Group](operations=[PatchOperation(op="remove", path=f'members[value eq "{bob.id}"]')]))
seen["members_after_remove"] = [m.value for m in scim.query(Group, oncall.id).members or []]
seen["bob_groups_after_leave"] = [g.value for g in scim.query(User, bob.id).groups or []]
renamed = scim.modify(Group, oncall.id, PatchOp[Group](operations=[PatchOperation(op="replace", path="displayName", value="SRE On-Call")]))
seen["renamed"] = renamed.display_name if renamed is not None else scim.query(Group, oncall.id).display_name
groups = scim.query(Group, query_parameters=SearchRequest(filter='displayName eq "sre on-call"'))
seen["group_filter"] = [g.id for g in groups.resources or []]
scim.delete(Group, oncall.id)
gone = scim.query(Group, oncall.id, raise_scim_errors=False, expected_status_codes=None)
seen["group_deleted"] = gone.status if isinstance(gone, Error) else repr(gone)

# Deactivation (Okta's shape) ends bob's access; DELETE disables dana.
off = PatchOp[User](operations=[PatchOperation(op="replace", value={"active": False})])
patched = scim.modify(User, bob.id, off)
seen["deactivated"] = (patched or scim.query(User, bob.id)).active
scim.delete(User, dana.id)
seen["dana_after_delete"] = scim.query(User, dana.id).active


# Bad input, answered in SCIM's error format (parsed by the client's Error model).
def error_of(response):
    e = Error.model_validate(response.json())
    return {"status": response.status_code, "scimType": e.scim_type, "detail": bool(e.detail)}


headers = {"Content-Type": "application/scim+json"}
seen["bad"] = {
    "malformed_filter": error_of(http.get("Users", params={"filter": 'userName eq "x" and'})),
    "unknown_attribute": error_of(http.get("Users", params={"filter": 'nickName eq "x"'})),
    "wrong_schema": error_of(http.post("Users", headers=headers, content=json.dumps({"schemas": [GROUP], "userName": "x"}))),
    "oversized": error_of(
        http.post("Users", headers=headers, content=json.dumps({"schemas": [USER], "userName": "x", "title": "x" * 70000}))
    ),
    "bad_patch_path": error_of(
        http.patch(
            f"Users/{bob.id}",
            headers=headers,
            content=json.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "a[[", "value": 1}]}),
        )
    ),
    "unknown_group": error_of(
        http.patch(
            "Groups/sg_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            headers=headers,
            content=json.dumps({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "x"}]}]}),
        )
    ),
}
print(json.dumps(seen))
