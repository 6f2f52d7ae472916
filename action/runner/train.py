"""The Action's ``mode: release-train``: promote after the tests passed, by running a release
train into an environment (or every member of an environment group)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from action import client
from action.client import Connection
from action.client import RequestFailed
from action.runner import github
from action.runner.github import ActionFailure


def run(environ: Mapping[str, str], connection: Connection, ci_link: str | None) -> None:
    """Run the train; outputs ``response-status``, ``train-commit`` and ``deployed``."""
    target = github.read_input(environ, "release-train-target")
    if not target:
        raise ActionFailure("mode release-train needs the input release-train-target")
    group = github.read_input(environ, "release-train-group", "false").lower()
    if group not in ("true", "false"):
        raise ActionFailure(f"input release-train-group must be true or false, got {group!r}")
    team = github.read_input(environ, "team") or None
    with github.group(f"Release train into {target}"):
        try:
            answer = client.release_train(
                connection, target, group=group == "true", team=team, ci_link=ci_link, log=print
            )
        except RequestFailed as error:
            status = str(error.answer.status) if error.answer else "none"
            github.set_output("response-status", status, environ)
            raise ActionFailure(f"the release train was not accepted: {error}") from None
    body = answer.json()
    if not isinstance(body, dict):
        raise ActionFailure(f"the server's answer is not a train result: {answer.body[:200]!r}")
    deployed: list[dict[str, Any]] = body.get("deployed") or []
    skipped: list[dict[str, Any]] = body.get("skipped") or []
    github.set_output("response-status", str(answer.status), environ)
    github.set_output("train-commit", str(body.get("commit_sha") or ""), environ)
    github.set_output("deployed", json.dumps(deployed), environ)
    _summary(environ, target, deployed, skipped, body.get("commit_sha"))
    print(f"release train into {target}: {len(deployed)} deployed, {len(skipped)} skipped")


def _summary(
    environ: Mapping[str, str],
    target: str,
    deployed: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    commit: str | None,
) -> None:
    def cell(value: object) -> str:
        return str(value if value is not None else "-").replace("|", "&#124;").replace("\n", " ")

    rows = [
        f"| {cell(d.get('environment'))} | {cell(d.get('application'))} | deployed "
        f"{cell(d.get('version'))} |"
        for d in deployed
    ] + [
        f"| {cell(s.get('environment'))} | {cell(s.get('application'))} | skipped: "
        f"{cell(s.get('reason'))[:200]} |"
        for s in skipped
    ]
    where = f"manifest-repo commit `{commit}`" if commit else "nothing to move"
    table = "\n".join(rows) or "| - | - | nothing to do |"
    github.append_summary(
        f"### kuberpult-lite release train into {cell(target)}\n\n{where}\n\n"
        f"| environment | application | outcome |\n|---|---|---|\n{table}\n",
        environ,
    )
