"""Browser tests: drive the real Airflow UI in Chromium against the production stack."""
