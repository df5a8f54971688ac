"""Load one registered model version for serving, with explicit MLflow URIs.

`mlflow.pyfunc.load_model("models:/...")` resolves the name through the process-wide registry
URI. The serving app binds its own client instead: it asks that client where the version's
artifacts are, downloads them with the same tracking URI and loads the local copy through
`include.scoring`, the path batch scoring uses, so online and batch answers cannot drift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include import registry
from include.errors import RegistryError
from include.scoring import LoadedModel


@dataclass(frozen=True)
class ServedModel:
    """A model version loaded and ready to score; never changed once built (requests share it)."""

    name: str
    version: str
    scorer: LoadedModel
    loaded_at: datetime
    files: Path  # the downloaded artifacts, removed once this version is replaced

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def load_version(client: Any, tracking_uri: str, name: str, version: str, into: Path) -> ServedModel:
    """Download version `version` of `name` under `into` and load it (once per version)."""
    import mlflow.artifacts

    from include import scoring

    with registry.translated(client, f"locating the artifacts of version {version} of model {name!r}",
                             missing=f"version {version} of model {name!r} no longer exists"):
        source = client.get_model_version_download_uri(name, str(version))
    target = into / f"v{version}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    target.mkdir(parents=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri,
                                                    dst_path=str(target))
    except Exception as exc:  # MLflow raises several unrelated types for unreachable or missing artifacts
        raise RegistryError(f"cannot download version {version} of model {name!r} from {source}: {exc}") from exc
    loaded = scoring.load(local)
    uri = f"models:/{name}/{version}"
    return ServedModel(name=name, version=str(version), scorer=dataclasses.replace(loaded, uri=uri),
                       loaded_at=datetime.now(UTC), files=target)
