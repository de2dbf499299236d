"""`gates matrix`: the CI job matrix of a project's pipeline, over its tiers and their shards.

Each phase that runs tests (a gate with `junit = true`) becomes N jobs, one per shard; a phase
with the bench gate gets a job of its own (it runs long and splits no tests); every other phase
— dependencies, static checks, the coverage ratchet, which the merge judges from every job's
data — goes into one `checks` job. Each job runs `gates run --only PHASES --shard I/N`, and one
`gates merge` over all of them gives the run's verdict. The matrix is computed from
`[tool.gates]`, so a project whose pipeline differs (a `--bare` copy, a project that adopted
gates) gets its own without editing the workflow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from gates.engine.pipeline import Phase, Pipeline
from gates.errors import ConfigError


@dataclass(frozen=True)
class Job:
    """One job of the matrix: a name, the phases it selects, and its shard I of N."""

    job: str
    phases: str  # comma-separated, for --only
    shard: int
    shards: int


def _tests(phase: Phase) -> bool:
    return any(gate.junit and gate.every_shard for gate in phase.gates)


def _bench(phase: Phase) -> bool:
    return any(gate.kind == "check" and gate.target == "bench" for gate in phase.gates)


def jobs(pipeline: Pipeline, shards: int) -> list[Job]:
    """The jobs, in pipeline order of their first phase; `checks` first when there is one."""
    if shards < 1:
        raise ConfigError(f"--shards {shards}: give the number of shards per tier, ≥ 1")
    checks = [p.name for p in pipeline.phases if not _tests(p) and not _bench(p)]
    found = [Job("checks", ",".join(checks), 1, 1)] if checks else []
    for phase in pipeline.phases:
        if _tests(phase):
            found += [Job(phase.name, phase.name, i, shards) for i in range(1, shards + 1)]
        elif _bench(phase):
            found.append(Job(phase.name, phase.name, 1, 1))
    return found


def matrix_json(pipeline: Pipeline, shards: int) -> str:
    """GitHub Actions' `strategy.matrix` (`{"include": [...]}`) as one line of JSON."""
    return json.dumps({"include": [asdict(job) for job in jobs(pipeline, shards)]})
