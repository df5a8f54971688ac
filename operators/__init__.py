"""Skylift: Airflow operators for each ML lifecycle stage, the pipeline spec and its compiler."""
