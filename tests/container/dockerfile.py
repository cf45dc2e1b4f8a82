"""container/Dockerfile read without Docker: its stages, ENV, exec forms, COPYs; and which paths
its ignore file (container/Dockerfile.dockerignore) keeps out of the build context."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from tests.helpers import REPO

CONTAINER = REPO / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
DOCKERIGNORE = CONTAINER / "Dockerfile.dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by build stage; continued lines joined, comments dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not buffer and not stripped):
            continue  # comments (also inside a continued instruction) and blank lines
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(part for part in buffer if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [word for word in ins.args.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif ins.keyword == "ARG" and not stages:
            continue  # global ARGs (the base image)
        else:
            assert stages, f"line {ins.line}: {ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    return stages


def env_pairs(args: str) -> dict[str, str]:
    """``ENV A=1 B="two words"`` (or the legacy ``ENV A value``) as a dict."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def stage_env(stages: list[Stage], index: int) -> dict[str, str]:
    """The ENV a stage ends with, including a parent stage's (``FROM builder``)."""
    stage = stages[index]
    env: dict[str, str] = {}
    for parent_index, parent in enumerate(stages[:index]):
        if parent.name == stage.base:
            env.update(stage_env(stages, parent_index))
    for ins in stage.all("ENV"):
        env.update(env_pairs(ins.args))
    return env


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        value = None
    assert isinstance(value, list) and value, f"not exec form (a JSON array): {args}"
    assert all(isinstance(word, str) for word in value), args
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", stage.last("HEALTHCHECK").args, re.S)
    assert match, "HEALTHCHECK must be HEALTHCHECK [OPTIONS] CMD [...]"
    return exec_form(match.group(2))


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """``COPY`` instructions as (``--from`` stage or None, sources, destination)."""
    found = []
    for ins in stage.all("COPY"):
        words = shlex.split(ins.args)
        options = [word for word in words if word.startswith("--")]
        paths = [word for word in words if not word.startswith("--")]
        source_stage = next(
            (option.split("=", 1)[1] for option in options if option.startswith("--from=")), None
        )
        found.append((source_stage, paths[:-1], paths[-1]))
    return found


STAGES = parse_dockerfile(DOCKERFILE.read_text())
FINAL = STAGES[-1]
IMAGE_ENV = stage_env(STAGES, len(STAGES) - 1)


def image_user() -> str:
    return FINAL.last("USER").args.split(":")[0]


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """The ignore file's patterns in order, each as (negated with ``!``, regex of the path)."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def context_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    excluded = False
    for negated, regex in ignore_patterns():
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded
