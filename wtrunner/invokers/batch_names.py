"""Names Cloud Batch accepts, made from whatever a client sent as ``workflow_run_id``.

A job id must be 1-63 characters of ``a-z``, ``0-9`` and ``-``, start with a letter and not end
with ``-``; it is also unique within its project and region for as long as the job exists, so a
run that is submitted again needs a new id. :func:`job_id` keeps as much of the run id as fits
(lower-cased, accents folded, every other character run turned into one ``-``, ``wt-`` in front
when it would not start with a letter) and ends with a random suffix. Label values (the run id
and workflow name on the job, so strays can be found) follow the label rules instead.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

JOB_ID_MAX = 63
SUFFIX_LENGTH = 8
LABEL_VALUE_MAX = 63
JOB_ID_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

_NOT_ID = re.compile(r"[^a-z0-9]+")
_NOT_LABEL = re.compile(r"[^a-z0-9_-]+")


def _ascii_lower(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded.lower()


def job_id(workflow_run_id: str, suffix: str) -> str:
    """A valid Batch job id: the readable part of ``workflow_run_id``, ``-``, ``suffix``.

    ``suffix`` must be 1-16 characters of ``a-z0-9`` (it keeps ids of the same run apart).
    """
    if not re.fullmatch(r"[a-z0-9]{1,16}", suffix):
        raise ValueError(f"a job id suffix must be 1-16 characters of a-z0-9, not {suffix!r}")
    base = _NOT_ID.sub("-", _ascii_lower(workflow_run_id)).strip("-")
    if not base[:1].isalpha():
        base = f"wt-{base}".rstrip("-")
    base = base[: JOB_ID_MAX - 1 - len(suffix)].rstrip("-")
    return f"{base}-{suffix}"


def new_job_id(workflow_run_id: str) -> str:
    """:func:`job_id` with a fresh random suffix: every submission gets its own job."""
    return job_id(workflow_run_id, secrets.token_hex(SUFFIX_LENGTH // 2))


def label_value(text: str) -> str:
    """``text`` as a Google Cloud label value (``a-z0-9_-``, at most 63 characters)."""
    return _NOT_LABEL.sub("-", _ascii_lower(text))[:LABEL_VALUE_MAX]
