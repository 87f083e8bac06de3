"""The code location for a Kubernetes deployment (deploy/multi-machine/): the project's definitions with
each step of a run in a Kubernetes Job of its own, so the steps of a run spread over the cluster's nodes.

Needs the `k8s` extra (`pip install .[k8s]`). Image, namespace, secrets and service account of the step
Jobs come from the instance's K8sRunLauncher; a run may override these settings under `execution: config:`.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from stratum_pipeline.definitions import defs as project_defs

STEP_EXECUTOR_CONFIG = {
    # Steps of one run at once; the queued run coordinator bounds the runs.
    "max_concurrent": 4,
    "retries": {"enabled": {}},
    "step_k8s_config": {
        "container_config": {
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
        },
    },
}

defs = dg.Definitions.merge(
    project_defs, dg.Definitions(executor=k8s_job_executor.configured(STEP_EXECUTOR_CONFIG))
)
