"""Every route of the app, walked from `app.routes`, with an owner, an editor, a viewer, a
non-member and no token.

A route that is not in ROUTES fails the walk, so no new route can escape this table. For routes
inside a case, a non-member must get exactly the 404 a missing case gets (no membership oracle).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import pytest
from casekit import CaseKit

from vault.protocol.ids import new_id

ROLES = ("owner", "editor", "viewer", "nonmember", "anonymous")


def _walk(routes, prefix=""):
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's lazily included routers
            sub = getattr(route.include_context, "prefix", "") or ""
            yield from _walk(route.original_router.routes, prefix + sub)
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + route.path


@dataclass
class World:
    kit: CaseKit
    users: dict
    case: object
    file_id: str
    blob: bytes


@pytest.fixture
def world(client, make_user) -> World:
    kit = CaseKit(client)
    owner, editor, viewer, outsider = (make_user(n) for n in ("olive", "eddie", "vera", "nina"))
    case = kit.create_case(owner)
    assert kit.add(owner, case, editor, "editor").status_code == 201
    assert kit.add(owner, case, viewer, "viewer").status_code == 201
    # The outsider is a real user with a case of her own: membership, not existence, decides.
    kit.create_case(outsider)
    blob = secrets.token_bytes(5000)
    file_id, done = kit.upload(owner, case, blob)
    assert done.status_code == 201, done.text
    users = {"owner": owner, "editor": editor, "viewer": viewer, "nonmember": outsider}
    return World(kit=kit, users=users, case=case, file_id=file_id, blob=blob)


def _headers(w: World, role: str) -> dict:
    return {} if role == "anonymous" else w.users[role].headers


def _uploader(w: World, role: str):
    """Whose upload session the route is tried on: one's own where one may upload."""
    return w.users[role] if role in ("owner", "editor") else w.users["owner"]


def _new_upload(w: World, role: str, size: int = 10) -> tuple[str, bytes]:
    data = secrets.token_bytes(size)
    r = w.kit.start_upload(_uploader(w, role), w.case, new_id(), 1, size)
    assert r.status_code == 201, r.text
    return r.json()["upload_id"], data


# Each entry: request builder (world, role, case_id) -> (method, url, kwargs), and the expected
# status for owner, editor, viewer, nonmember, anonymous.
def _case_url(cid, rest=""):
    return f"/v1/cases/{cid}{rest}"


def _membership_post(w, role, cid):
    # Each caller signs the entry itself (an owner's valid role change; others are refused
    # before their signature matters).
    actor = w.users["owner"] if role == "anonymous" else w.users[role]
    entry = w.kit.entry(actor, w.case, "role", w.users["viewer"], "editor")
    return "POST", _case_url(cid, "/membership"), {"json": {"entry": entry, "grants": []}}


def _upload_status(w, role, cid):
    upload_id, _ = _new_upload(w, role)
    return "GET", _case_url(cid, f"/uploads/{upload_id}"), {}


def _upload_abort(w, role, cid):
    upload_id, _ = _new_upload(w, role)
    return "DELETE", _case_url(cid, f"/uploads/{upload_id}"), {}


def _put_part(w, role, cid):
    upload_id, data = _new_upload(w, role)
    sha = hashlib.sha256(data).hexdigest()
    return (
        "PUT",
        _case_url(cid, f"/uploads/{upload_id}/parts/0"),
        {"content": data, "headers": {"X-Part-SHA256": sha}},
    )


def _sync_head(w: World) -> None:
    # An owner's role change earlier in the walk moved the membership head, and a manifest or
    # tombstone must be signed at the head (SPEC 4.4): sign where the server's log now ends.
    case = w.kit.client.get(_case_url(w.case.case_id), headers=w.users["owner"].headers).json()
    w.case.seq, w.case.head = case["membership_seq"], case["membership_head"]


def _complete(w, role, cid):
    _sync_head(w)
    uploader = _uploader(w, role)
    upload_id, data = _new_upload(w, role)
    r = w.kit.put_part(uploader, w.case, upload_id, 0, data)
    assert r.status_code == 200, r.text
    session = w.kit.client.get(
        _case_url(w.case.case_id, f"/uploads/{upload_id}"), headers=uploader.headers
    ).json()
    signer = w.users[role] if role in ("owner", "editor", "viewer", "nonmember") else uploader
    body = w.kit.manifest(signer, w.case, session["file_id"], 1, data)
    return "POST", _case_url(cid, f"/uploads/{upload_id}/complete"), {"json": body}


def _tombstone(w, role, cid):
    _sync_head(w)
    signer = w.users[role] if role != "anonymous" else w.users["owner"]
    body = {"tombstone": w.kit.tombstone(signer, w.case, w.file_id)}
    return "POST", _case_url(cid, f"/files/{w.file_id}/tombstone"), {"json": body}


def _create_case_request(w, role, cid):
    from casekit import CaseState

    actor = w.users["owner"] if role == "anonymous" else w.users[role]
    fresh = CaseState(case_id=new_id(), seq=-1)
    body = {
        "case_id": fresh.case_id,
        "encrypted_info": "AAAA",
        "entry": w.kit.entry(actor, fresh, "create", actor, "owner", seq=0, generation=0),
        "grant": w.kit.grant(actor, fresh, actor, generation=0),
    }
    return "POST", "/v1/cases", {"json": body}


def _simple(method, rest):
    return lambda w, role, cid: (method, _case_url(cid, rest(w) if callable(rest) else rest), {})


READ = (200, 200, 200, 404, 401)
WRITE = (201, 201, 403, 404, 401)

CASE_ROUTES = {
    ("GET", "/v1/cases/{case_id}"): (_simple("GET", ""), READ),
    ("GET", "/v1/cases/{case_id}/membership"): (_simple("GET", "/membership"), READ),
    ("POST", "/v1/cases/{case_id}/membership"): (_membership_post, (201, 403, 403, 404, 401)),
    ("GET", "/v1/cases/{case_id}/grants"): (_simple("GET", "/grants"), READ),
    ("POST", "/v1/cases/{case_id}/uploads"): (
        lambda w, role, cid: (
            "POST",
            _case_url(cid, "/uploads"),
            {"json": {"file_id": new_id(), "version": 1, "total_size": 10, "part_size": 10}},
        ),
        WRITE,
    ),
    ("GET", "/v1/cases/{case_id}/uploads/{upload_id}"): (_upload_status, (200, 200, 403, 404, 401)),
    ("DELETE", "/v1/cases/{case_id}/uploads/{upload_id}"): (
        _upload_abort,
        (204, 204, 403, 404, 401),
    ),
    ("PUT", "/v1/cases/{case_id}/uploads/{upload_id}/parts/{part_number}"): (
        _put_part,
        (200, 200, 403, 404, 401),
    ),
    ("POST", "/v1/cases/{case_id}/uploads/{upload_id}/complete"): (_complete, WRITE),
    ("GET", "/v1/cases/{case_id}/files"): (_simple("GET", "/files"), READ),
    ("GET", "/v1/cases/{case_id}/files/{file_id}/versions/{version}/blob"): (
        _simple("GET", lambda w: f"/files/{w.file_id}/versions/1/blob"),
        READ,
    ),
    ("POST", "/v1/cases/{case_id}/files/{file_id}/tombstone"): (
        _tombstone,
        (200, 200, 403, 404, 401),
    ),
    ("GET", "/v1/log/entries"): (
        lambda w, role, cid: ("GET", "/v1/log/entries", {"params": {"case_id": cid}}),
        READ,
    ),
}

# Routes outside any case: who may call them without a token.
PUBLIC = {
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/v1/accounts/prelogin"),
    ("POST", "/v1/accounts/register"),
    ("POST", "/v1/accounts/activate"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/accounts/recovery/begin"),
    ("GET", "/v1/log/key"),
}
AUTHENTICATED = {
    ("POST", "/v1/cases"): (_create_case_request, (201, 201, 201, 201, 401)),
    ("GET", "/v1/cases"): (lambda w, role, cid: ("GET", "/v1/cases", {}), (200,) * 4 + (401,)),
    ("POST", "/v1/auth/logout"): None,
    ("POST", "/v1/accounts/recovery/complete"): None,
    ("GET", "/v1/log/checkpoint"): None,
    ("GET", "/v1/log/proof/inclusion"): None,
    ("GET", "/v1/log/proof/consistency"): None,
    ("GET", "/v1/log/range"): None,
    ("GET", "/v1/sessions"): None,
    ("DELETE", "/v1/sessions/{session_id}"): None,
    ("DELETE", "/v1/sessions"): None,
    ("GET", "/v1/me"): None,
    ("GET", "/v1/users/{username}/identity"): None,
}


def _concrete(path: str) -> str:
    return (
        path.replace("{session_id}", new_id())
        .replace("{username}", "olive")
        .replace("{case_id}", new_id())
    )


def test_every_route_is_in_the_table(app):
    routes = set(_walk(app.routes))
    known = set(CASE_ROUTES) | PUBLIC | set(AUTHENTICATED)
    missing = routes - known
    assert not missing, f"routes without an authorization expectation: {sorted(missing)}"
    stale = known - routes
    assert not stale, f"table names routes the app does not have: {sorted(stale)}"


def test_every_non_public_route_needs_a_token(app, client):
    for method, path in sorted(set(_walk(app.routes)) - PUBLIC):
        r = client.request(method, _concrete(path), json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("role", ROLES)
def test_case_routes_by_role(world, role):
    client = world.kit.client
    table = {**CASE_ROUTES, **{k: v for k, v in AUTHENTICATED.items() if v is not None}}
    for (method, path), (build, expected) in sorted(table.items()):
        want = expected[ROLES.index(role)]
        m, url, kwargs = build(world, role, world.case.case_id)
        assert m == method
        headers = {**kwargs.pop("headers", {}), **_headers(world, role)}
        r = client.request(m, url, headers=headers, **kwargs)
        assert r.status_code == want, (role, method, path, r.status_code, r.text)
        if role == "nonmember" and ("{case_id}" in path or path == "/v1/log/entries"):
            # The same request on a case that does not exist: indistinguishable.
            m2, url2, kwargs2 = build(world, role, new_id())
            headers2 = {**kwargs2.pop("headers", {}), **_headers(world, role)}
            r2 = client.request(m2, url2, headers=headers2, **kwargs2)
            assert (r2.status_code, r2.json()) == (r.status_code, r.json()), (method, path)


def test_editor_cannot_touch_the_owners_upload(world):
    kit, owner, editor = world.kit, world.users["owner"], world.users["editor"]
    upload_id, data = _new_upload(world, "owner")
    for method, rest, kwargs in (
        ("GET", f"/uploads/{upload_id}", {}),
        ("DELETE", f"/uploads/{upload_id}", {}),
        (
            "PUT",
            f"/uploads/{upload_id}/parts/0",
            {"content": data, "headers": {"X-Part-SHA256": hashlib.sha256(data).hexdigest()}},
        ),
    ):
        headers = {**kwargs.pop("headers", {}), **editor.headers}
        r = kit.client.request(
            method, _case_url(world.case.case_id, rest), headers=headers, **kwargs
        )
        assert r.status_code == 404, (method, rest, r.text)
    status = kit.client.get(
        _case_url(world.case.case_id, f"/uploads/{upload_id}"), headers=owner.headers
    )
    assert status.status_code == 200 and status.json()["parts"] == []
