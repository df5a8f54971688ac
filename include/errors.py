"""Skylift's one family of errors. Configuration and data errors are also `ValueError`s."""

from __future__ import annotations


class SkyliftError(Exception):
    """Base of every error Skylift raises on purpose."""


class SpecError(SkyliftError, ValueError):
    """A pipeline spec (or a file it names) is wrong; the message names the file, line and key."""


class ContractError(SkyliftError, ValueError):
    """A source drop breaks its declared schema; the message names the file, column and rows."""


class ValidationFailed(SkyliftError):
    """A validation suite failed under the `fail` policy (or quarantined too many rows)."""


class LakeError(SkyliftError):
    """A lake operation failed: bad address, missing partition, broken manifest."""


class PartitionNotFound(LakeError):
    """The partition a stage needs was never published."""


class StalePartition(LakeError):
    """A partition was built from inputs that were withdrawn or rebuilt since."""


class TrainingError(SkyliftError):
    """The training entrypoint failed or returned no result."""


class RegistryError(SkyliftError):
    """The model registry is missing a model, version or alias a stage needs."""


class LabelError(SkyliftError, ValueError):
    """Label rows cannot be joined to features: duplicates, a label inside the features, bad dates."""
