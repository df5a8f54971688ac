"""The pipeline spec: typed models, a safe YAML loader, and the compiler to Airflow DAGs."""
