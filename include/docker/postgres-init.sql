-- Runs once, when the postgres service's volume is first initialised
-- (mounted into /docker-entrypoint-initdb.d; the image runs it with psql as the superuser).
-- One PostgreSQL instance, two databases, each owned by its own login role:
--   airflow  - Airflow's metadata database
--   mlflow   - the MLflow tracking server's backend store
-- The passwords come from the container's environment (AIRFLOW_DB_PASSWORD, MLFLOW_DB_PASSWORD, set
-- from .env by docker-compose.yaml) through psql's \getenv (psql 15+); an unset variable leaves the
-- :'...' reference unexpanded, which is a syntax error, so initialisation fails instead of creating a
-- role without a password.
-- Changing a password in .env later does not re-run this script: ALTER ROLE by hand, or remove the
-- volume (`docker compose down -v`, which deletes all data).

\set ON_ERROR_STOP on
\getenv airflow_db_password AIRFLOW_DB_PASSWORD
\getenv mlflow_db_password MLFLOW_DB_PASSWORD

CREATE ROLE airflow LOGIN PASSWORD :'airflow_db_password';
CREATE DATABASE airflow OWNER airflow;

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_db_password';
CREATE DATABASE mlflow OWNER mlflow;
