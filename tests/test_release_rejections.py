"""End to end: bad input gets a 4xx naming the field, and nothing changes anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app

GOOD = b"kind: Deployment\n"
BOMB = (
    b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    b"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)

# (case id, application, manifests, extra fields, field named in the error)
CASES = [
    ("app-traversal", "../etc", None, {}, "application"),
    ("app-upper", "App", None, {}, "application"),
    ("app-double-dash", "a--b", None, {}, "application"),
    ("app-newline", "prod\n", None, {}, "application"),
    ("app-40-chars", "a" * 40, None, {}, "application"),
    ("app-dot-git", ".git", None, {}, "application"),
    ("app-empty", "", None, {}, "application"),
    ("env-traversal", None, {"../x": GOOD}, {}, "manifests[../x]"),
    ("env-slash", None, {"a/b": GOOD}, {}, "manifests[a/b]"),
    ("env-empty", None, {"": GOOD}, {}, "manifests[]"),
    ("env-upper", None, {"Prod": GOOD}, {}, "manifests[Prod]"),
    ("env-64-chars", None, {"e" * 64: GOOD}, {}, "manifests[" + "e" * 64 + "]"),
    ("no-manifest", None, {}, {}, "manifests"),
    ("yaml-unclosed-flow", None, {"development": b"key: [unclosed"}, {}, "manifests[development]"),
    ("yaml-tab", None, {"development": b"key:\n\t- value"}, {}, "manifests[development]"),
    ("yaml-indent", None, {"development": b"a:\n  b: 1\n c: 2"}, {}, "manifests[development]"),
    ("yaml-quote", None, {"development": b'key: "unclosed'}, {}, "manifests[development]"),
    ("yaml-bomb", None, {"development": BOMB}, {}, "manifests[development]"),
    ("manifest-not-utf8", None, {"development": b"a: \xff\xfe"}, {}, "manifests[development]"),
    ("manifest-nul", None, {"development": b"a: b\x00"}, {}, "manifests[development]"),
    ("commit-short", None, None, {"source_commit_id": "abc1234"}, "source_commit_id"),
    ("commit-not-hex", None, None, {"source_commit_id": "g" * 40}, "source_commit_id"),
    ("commit-41", None, None, {"source_commit_id": "a" * 41}, "source_commit_id"),
    ("prev-bad", None, None, {"previous_commit_id": "xyz"}, "previous_commit_id"),
    ("team-upper", None, None, {"team": "Team"}, "team"),
    ("team-21", None, None, {"team": "t" * 21}, "team"),
    ("display-16", None, None, {"display_version": "x" * 16}, "display_version"),
    ("display-empty", None, None, {"display_version": ""}, "display_version"),
    ("version-negative", None, None, {"version": "-1"}, "version"),
    ("version-letters", None, None, {"version": "abc"}, "version"),
    ("version-exp", None, None, {"version": "1e3"}, "version"),
    ("version-zero", None, None, {"version": "0"}, "version"),
    ("version-2-64", None, None, {"version": str(2**64)}, "version"),
    ("version-plus", None, None, {"version": "+1"}, "version"),
    ("version-arabic-digits", None, None, {"version": "١٢"}, "version"),
    ("author-shape", None, None, {"source_author": "a <b>"}, "source_author"),
    ("author-newline", None, None, {"source_author": "a\nb"}, "source_author"),
    ("author-1001", None, None, {"source_author": "a" * 1001}, "source_author"),
    ("message-1001", None, None, {"source_message": "m" * 1001}, "source_message"),
    ("ci-link-1001", None, None, {"ci_link": "https://x.io/" + "a" * 990}, "ci_link"),
    ("ci-link-not-url", None, None, {"ci_link": "not a url"}, "ci_link"),
    ("unknown-field", None, None, {"colour": "red"}, "colour"),
    ("prepublish", None, None, {"is_prepublish": "true"}, "is_prepublish"),
]


@pytest.mark.parametrize(
    ("application", "manifests", "fields", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_field_is_400_naming_it_and_nothing_changes(
    shared: tuple[Server, Remote],
    application: str | None,
    manifests: dict[str, bytes] | None,
    fields: dict[str, str],
    field: str,
) -> None:
    server, remote = shared
    app = application if application is not None else unique_app()
    head, files = remote.head(), remote.files()
    response = server.release(app, manifests, fields={"version": "1", **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"]
    assert remote.head() == head
    assert remote.files() == files
    if application is None:
        receipt = requests.get(f"{server.url}/api/applications/{app}/releases/1", timeout=10)
        assert receipt.status_code == 404


def test_bad_application_answers_kuberpults_too_long(shared: tuple[Server, Remote]) -> None:
    server, _ = shared
    response = server.release("my-app-is-way-too-long-dont-you-think-so-too")
    assert response.status_code == 400
    assert response.json()["TooLong"] == {
        "app_name": "my-app-is-way-too-long-dont-you-think-so-too",
        "reg_exp": r"\A[a-z0-9]+(?:-[a-z0-9]+)*\z",
        "max_len": 39,
    }


@pytest.mark.parametrize("field", ["application", "team", "version", "source_message"])
def test_a_field_given_twice_is_400(shared: tuple[Server, Remote], field: str) -> None:
    server, remote = shared
    head = remote.head()
    values = {"application": "x", "team": "t", "version": "3", "source_message": "m"}
    fields = [(field, values[field]), (field, values[field])]
    app = None if field == "application" else unique_app()
    response = server.release(app, fields=fields)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"Exactly one '{field}' parameter should be provided, 2 are given"
    )
    assert remote.head() == head


def test_two_manifests_for_one_environment_is_400(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    head = remote.head()
    response = requests.post(
        server.url + "/api/release",
        data={"application": unique_app()},
        files=[
            ("manifests[development]", ("a", b"a: 1")),
            ("manifests[development]", ("b", b"a: 2")),
        ],
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == 'multiple manifests submitted for "development"'
    assert remote.head() == head


def test_unknown_file_part_is_400(shared: tuple[Server, Remote]) -> None:
    server, _ = shared
    response = requests.post(
        server.url + "/api/release",
        data={"application": unique_app()},
        files=[("manifests[development]", ("a", b"a: 1")), ("notes", ("n", b"hello"))],
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "notes"


def test_invalid_base64_author_header_is_400(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    head = remote.head()
    response = server.release(unique_app(), headers={"author-name": "not base64!!"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "author-name"
    assert remote.head() == head


def test_not_multipart_is_400(shared: tuple[Server, Remote]) -> None:
    server, _ = shared
    response = requests.post(server.url + "/api/release", data={"application": "x"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Invalid body: request Content-Type isn't multipart/form-data"
    )
    no_boundary = requests.post(
        server.url + "/release",
        data=b"",
        headers={"Content-Type": "multipart/form-data;"},
        timeout=10,
    )
    assert no_boundary.status_code == 400
    assert "no multipart boundary" in no_boundary.json()["error"]["message"]


def test_body_over_12_mib_is_413_json(shared: tuple[Server, Remote], tmp_path: Path) -> None:
    server, remote = shared
    head = remote.head()
    big = b"a: " + b"x" * (12 * 1024 * 1024) + b"\n"
    response = server.release(unique_app(), {"development": big})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert remote.head() == head


def test_manifest_sent_as_text_part_is_accepted(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    response = requests.post(
        server.url + "/api/release",
        files=[("application", (None, app)), ("manifests[development]", (None, "kind: X\n"))],
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert (
        remote.read(f"applications/{app}/releases/1/environments/development/manifests.yaml")
        == b"kind: X\n"
    )
