"""The runner's side of a GitHub Action: inputs, outputs, step summary, workflow commands.

Everything goes through the environment and the files the runner names in it; nothing here
talks to GitHub itself.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import NoReturn


def escape_data(value: str) -> str:
    """Escape a workflow-command message (``%``, CR and LF)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow-command property value (also ``:`` and ``,``)."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> None:
    """Print a workflow command (``::name props::message``) to stdout."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    print(f"::{name}{' ' + props if props else ''}::{escape_data(message)}", flush=True)


def mask(value: str | None) -> None:
    """Ask the runner to hide ``value`` (each line of it) in every log from now on."""
    for line in (value or "").splitlines():
        if line.strip():
            command("add-mask", line.strip())


def read_input(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """An input as the step's ``env:`` passed it (``INPUT_<NAME>``, dashes or underscores)."""
    upper = name.upper()
    for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        if key in environ:
            return environ[key].strip()
    return default


def set_output(name: str, value: str, environ: Mapping[str, str] | None = None) -> None:
    """Append an output to ``GITHUB_OUTPUT`` (heredoc form, safe for any value)."""
    path = (environ or os.environ).get("GITHUB_OUTPUT")
    if not path:
        print(f"output {name}={value}", file=sys.stderr)
        return
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(markdown: str, environ: Mapping[str, str] | None = None) -> None:
    """Append Markdown to the job summary (``GITHUB_STEP_SUMMARY``)."""
    path = (environ or os.environ).get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n")


@contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible section of the log."""
    print(f"::group::{escape_data(title)}", flush=True)
    try:
        yield
    finally:
        print("::endgroup::", flush=True)


class ActionFailure(Exception):
    """The action cannot go on; ``message`` says why and what to do."""


def die(message: str, title: str = "kuberpult-lite release") -> NoReturn:
    """Fail the step: an ``::error::`` annotation, the reason in the job summary, exit 1."""
    command("error", message, title=title)
    append_summary(f"### :x: {title} failed\n\n```\n{message}\n```\n")
    sys.exit(1)
