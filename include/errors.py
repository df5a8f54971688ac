"""Skylift's one family of errors. Configuration and data errors are also `ValueError`s."""

from __future__ import annotations


class SkyliftError(Exception):
    """Base of every error Skylift raises on purpose."""


class SpecError(SkyliftError, ValueError):
    """A pipeline spec (or a file it names) is wrong; the message names the file, line and key."""


class ContractError(SkyliftError, ValueError):
    """A source drop breaks its declared schema; the message names the file, column and rows."""


class IncompleteDrop(ContractError):
    """A source drop is not whole yet (no completion marker, files missing or still changing);
    the message names the folder and what is missing. Re-running once the upload is done helps."""


class ValidationFailed(SkyliftError):
    """A validation suite failed under the `fail` policy (or quarantined too many rows)."""


class FeatureJobError(SkyliftError):
    """A feature job returned no Spark DataFrame, or one without rows; the message names the job
    and the date."""


class LakeError(SkyliftError):
    """A lake operation failed: bad address, missing partition, broken manifest."""


class PartitionNotFound(LakeError):
    """The partition a stage needs was never published."""


class StalePartition(LakeError):
    """A partition was built from inputs that were withdrawn or rebuilt since."""


class DamagedPartition(LakeError):
    """A published partition no longer matches its manifest (a file rewritten, truncated or deleted in
    place), or its manifest is unreadable. Carries the partition and each problem found."""

    def __init__(self, partition: str, problems: tuple[str, ...] | list[str]) -> None:
        self.partition = partition
        self.problems = tuple(problems)
        super().__init__(f"{partition} is damaged: {'; '.join(self.problems)}; re-run the stage that writes it "
                         "for this date: a retry rebuilds damaged outputs")

    def __reduce__(self):  # keep it picklable (Airflow ships exceptions between processes)
        return type(self), (self.partition, self.problems)


class PublishConflict(LakeError):
    """Another writer published the same partition while this attempt was writing it; this attempt
    published nothing."""


class TrainingError(SkyliftError):
    """The training entrypoint failed or returned no result."""


class RegistryError(SkyliftError):
    """The model registry is missing a model, version or alias a stage needs."""


class LabelError(SkyliftError, ValueError):
    """Label rows cannot be joined to features: duplicates, a label inside the features, bad dates."""


class SampleDataError(SkyliftError, ValueError):
    """A sample-data generator was asked for data it does not have (a missing package, a day outside it)."""


class RegistryUnavailable(RegistryError):
    """The model registry could not be read or written (server down, database locked); retry later."""


class ModelVersionMissing(RegistryError):
    """An alias or a record names a model version that no longer exists."""


class ChampionMoved(RegistryError):
    """The champion is no longer the version a compare-and-set expected; nothing was written."""

    def __init__(self, model: str, expected: str | None, current: str | None, seq: int) -> None:
        self.model, self.expected, self.current, self.seq = model, expected, current, seq
        super().__init__(f"the champion of model {model!r} is version {current or 'none'} (audit event {seq}), "
                         f"not version {expected or 'none'} as expected")

    def __reduce__(self):  # picklable across processes, like DamagedPartition
        return type(self), (self.model, self.expected, self.current, self.seq)


class PromotionConflict(RegistryError):
    """Another promotion or rollback moved the champion first; this one changed nothing but its audit record."""


class SmokeTestFailed(RegistryError):
    """Scores through the champion alias were not finite or not the promoted version's own."""


class PayloadError(SkyliftError, ValueError):
    """A prediction request the serving app cannot score (unknown format key, missing columns, wrong
    types, empty body); the message names the problem. Answered with HTTP `status` (4xx)."""

    status = 400

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # a short label for the errors-by-kind metric

    def __reduce__(self):
        return type(self), (str(self), self.kind)


class UnsupportedContentType(PayloadError):
    """A prediction request in a content type the serving app does not read."""

    status = 415


class RolloutFailed(SkyliftError):
    """A deploy target's objects could not be applied, did not become ready, or failed the smoke test."""
