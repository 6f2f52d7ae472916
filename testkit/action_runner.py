"""Runs the composite steps of action.yml the way the GitHub runner does, on this machine.

It reads the YAML, evaluates the expressions the action uses (``inputs.*``,
``github.action_path``, ``steps.<id>.outputs.*``; anything else is an error, so nothing is
evaluated silently wrong), gives every step the runner's files and variables
(``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_EVENT_PATH``, ``RUNNER_TEMP``, ...) and
runs each ``run:`` with its ``shell:``. GitHub itself is the only part that is not real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
SHELLS = {"bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"]}


@dataclass
class Run:
    """What one run of the action left behind."""

    outcome: str
    outputs: dict[str, str]
    summary: str
    log: str
    step_outputs: dict[str, dict[str, str]] = field(default_factory=dict)


def parse_file_command(text: str) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT file (``name=value`` and ``name<<DELIMITER`` forms)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            while lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            index += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


class CompositeAction:
    """The action at ``path``, run like ``uses: ./path`` in a job."""

    def __init__(self, path: Path, runner_temp: Path) -> None:
        self.path = path
        self.definition = yaml.safe_load((path / "action.yml").read_text())
        assert self.definition["runs"]["using"] == "composite"
        self.runner_temp = runner_temp

    def run(
        self,
        inputs: dict[str, str],
        *,
        workspace: Path,
        event_name: str = "push",
        event: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        """Run every step in order until one fails."""
        declared = self.definition["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs not declared in action.yml: {unknown}"
        values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        values.update(inputs)
        for name, spec in declared.items():
            assert not spec.get("required") or values[name], f"required input {name} missing"
        work = self.runner_temp / f"run-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        event_path = work / "event.json"
        event_path.write_text(json.dumps(event or {}))
        summary = work / "summary.md"
        summary.touch()
        base_env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", str(work)),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(self.path),
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_TEMP": str(self.runner_temp),
            "RUNNER_OS": "Linux",
            **(env or {}),
        }
        steps: dict[str, dict[str, dict[str, str]]] = {}
        context = {"inputs": values, "github": {"action_path": str(self.path)}, "steps": steps}
        log = []
        outcome = "success"
        for number, step in enumerate(self.definition["runs"]["steps"]):
            output_file = work / f"output-{number}"
            output_file.touch()
            script = work / f"step-{number}.sh"
            script.write_text(evaluate(step["run"], context))
            shell = [part.replace("{0}", str(script)) for part in SHELLS[step["shell"]]]
            step_env = {
                name: evaluate(str(value), context)
                for name, value in (step.get("env") or {}).items()
            }
            result = subprocess.run(
                shell,
                cwd=workspace,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                env={**base_env, **step_env, "GITHUB_OUTPUT": str(output_file)},
            )
            log.append(f"## {step.get('name')}\n{result.stdout}{result.stderr}")
            if "id" in step:
                steps[step["id"]] = {"outputs": parse_file_command(output_file.read_text())}
            if result.returncode != 0:
                outcome = "failure"
                break
        outputs = {}
        for name, spec in self.definition.get("outputs", {}).items():
            try:
                outputs[name] = evaluate(spec["value"], context)
            except KeyError:
                outputs[name] = ""
        return Run(
            outcome,
            outputs,
            summary.read_text(),
            "\n".join(log),
            {key: value["outputs"] for key, value in steps.items()},
        )


def evaluate(text: str, context: dict[str, Any]) -> str:
    """Replace each ``${{ a.b.c }}`` by the value at that path of ``context``."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+", expression):
            raise ValueError(f"the harness does not evaluate {expression!r}")
        current: Any = context
        for part in expression.split("."):
            current = current[part]
        return str(current)

    return EXPRESSION.sub(value, text)
