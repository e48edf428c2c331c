"""The pipeline run kind: a multi-step definition run step by step."""

from __future__ import annotations

from services.core.kinds import RunKind
from services.pipelines import export
from services.pipelines.engine import PipelineBody
from services.pipelines.recovery import recover

PIPELINE = RunKind(name="pipeline", noun="pipeline run", title="Pipelines", icon="account_tree", page="/pipelines",
                   body=PipelineBody, recover=recover, exporter=export,
                   label=lambda run: str(run.config.get("topic") or run.config.get("pipeline") or "Pipeline"))
