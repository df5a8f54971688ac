"""Deploy targets beyond the MLflow alias, Airflow-free.

`manifests` renders the serving Deployment, Service and HorizontalPodAutoscaler as kubernetes
client models; `kube` applies them, waits for the rollout and puts the previous ones back;
`endpoint` reaches a serving app (a URL, or a Service through the API server's proxy); `smoke`
requires its answers to equal batch scoring; `targets` composes them into the `local` and
`kubernetes` targets the deploy and rollback tasks roll out and undo.
"""
