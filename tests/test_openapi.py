"""The OpenAPI document, and schemathesis against the live server with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from server.http.openapi import SPEC
from testkit.remote import Remote

SCHEMATHESIS = Path(sys.executable).parent / "st"


#: Examples per operation: 75 in the full suite; the lowest-versions pass, which only needs to
#: show that schemathesis's oldest allowed version runs, sets fewer.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "75"))


def test_every_route_is_documented(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote)
    served = requests.get(server.url + "/api/openapi.json", timeout=10).json()
    assert served == SPEC
    assert served["openapi"] == "3.1.0"
    from server.config import Config
    from server.http.app import create_app  # the routes the app really has

    app = create_app(
        Config.from_env(
            {
                "KUBERPULT_DATA_DIR": str(server.data_dir),
                "KUBERPULT_GIT_URL": bare_remote.url,
                "KUBERPULT_RECOVERY_INTERVAL": "0",
            }
        )
    )
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).replace("{lock_id}", "{lockId}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((path.rstrip("/") or "/", method.lower()))
    documented = {
        (path, method)
        for path, ops in SPEC["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert routes == documented


def test_schemathesis_finds_no_server_error_and_no_schema_break(
    start_server, bare_remote: Remote
) -> None:
    server = start_server(bare_remote, workers=2)
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            server.url + "/api/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261127",
            "--request-timeout",
            "60",
            "--phases",
            "coverage,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = result.stdout[-3000:]
    assert result.returncode == 0, report + "\n" + server.log()[-3000:]
    generated = int(re.search(r"(\d+) generated", result.stdout).group(1))  # type: ignore[union-attr]
    # Every operation gets its examples (28 operations; fewer would mean some were skipped).
    assert generated >= 25 * EXAMPLES, report
