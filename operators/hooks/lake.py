"""The lake and the drop landing area, reached through an Airflow connection when on S3."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from include.lake import Lake


class LakeHook(BaseHook):
    """Builds `include.lake.Lake` objects; credentials come from an `aws` connection.

    The connection's login/password are the access key pair and its extra may hold
    `endpoint_url` (MinIO, moto) and `region_name`. Without the connection, the usual AWS
    credential chain applies (instance role, environment).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "Skylift lake"

    def __init__(self, root: str, conn_id: str = default_conn_name, verify_checksums: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.conn_id = conn_id
        self.verify_checksums = verify_checksums

    @property
    def is_s3(self) -> bool:
        return self.root.startswith(("s3://", "s3a://"))

    @cached_property
    def _connection(self) -> Any | None:
        if not self.is_s3:
            return None
        try:
            return self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            self.log.info("no connection %r: using the default AWS credential chain", self.conn_id)
            return None

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for this root (empty for a local root)."""
        conn = self._connection
        if conn is None:
            return {}
        extra = conn.extra_dejson
        options: dict[str, Any] = {}
        if conn.login:
            options.update(key=conn.login, secret=conn.password)
        client_kwargs = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return options

    def environment(self) -> dict[str, str]:
        """The same credentials as AWS_* variables, for a training subprocess or pod."""
        conn = self._connection
        if conn is None:
            return {}
        extra = conn.extra_dejson
        env = {}
        if conn.login:
            env.update(AWS_ACCESS_KEY_ID=conn.login, AWS_SECRET_ACCESS_KEY=conn.password or "")
        if extra.get("endpoint_url"):
            env["AWS_ENDPOINT_URL"] = extra["endpoint_url"]
        if extra.get("region_name"):
            env["AWS_DEFAULT_REGION"] = extra["region_name"]
        return env

    def get_lake(self, root: str | None = None) -> Lake:
        from include.lake import Lake

        return Lake(root or self.root, storage_options=self.storage_options(), verify_checksums=self.verify_checksums)

    def get_conn(self) -> Lake:
        return self.get_lake()
