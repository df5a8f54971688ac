"""A small PyTorch MLP whose module maps raw features to a probability (classification) or a value.

The module carries its own preprocessing as buffers: feature standardization (training mean/std,
missing values imputed with the mean) and, for regression, the target's scale. So the logged model
needs nothing but the raw feature matrix as float32, shape (n, n_features), and returns shape (n,).

Batches are tensor slices of a once-per-epoch shuffled copy (a DataLoader is several times slower
for in-memory tabular data). The weights of the epoch with the lowest validation loss are kept.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from include.errors import TrainingError

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "hidden": [64, 32],
    "epochs": 20,
    "lr": 1e-3,
    "batch_size": 256,
    "weight_decay": 0.0,
    "patience": 5,
    "seed": 0,
}


class TabularMLP(nn.Module):
    """Standardize -> [Linear -> ReLU]* -> Linear -> sigmoid (classification) or rescale (regression)."""

    def __init__(
        self,
        n_features: int,
        hidden: list[int],
        classification: bool,
        *,
        mean: np.ndarray,
        std: np.ndarray,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ):
        super().__init__()
        self.classification = classification
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or the standardized value (regression), shape (n,)."""
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0)
        return self.net(z).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.raw(x)
        if self.classification:
            return torch.sigmoid(out)
        return out * self.y_std + self.y_mean


def resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown pytorch param(s) {unknown}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **params}
    hidden = merged["hidden"]
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise TrainingError(f"pytorch param 'hidden' must be a list of positive integers, got {hidden!r}")
    for name in ("epochs", "batch_size"):
        if not isinstance(merged[name], int) or merged[name] < 1:
            raise TrainingError(f"pytorch param {name!r} must be a positive integer, got {merged[name]!r}")
    return merged


def _column_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        mean = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
        std = np.nanstd(X, axis=0) if len(X) else np.ones(X.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def build_model(X_train: np.ndarray, y_train: np.ndarray, task: str, hidden: list[int]) -> TabularMLP:
    mean, std = _column_stats(X_train)
    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean = float(np.mean(y_train))
        y_std = float(np.std(y_train)) or 1.0
    return TabularMLP(
        X_train.shape[1], hidden, task == "classification", mean=mean, std=std, y_mean=y_mean, y_std=y_std
    )


def _loss_fn(model: TabularMLP):
    if model.classification:
        bce = nn.BCEWithLogitsLoss()
        return lambda x, y: bce(model.raw(x), y)
    mse = nn.MSELoss()
    return lambda x, y: mse(model.raw(x), (y - model.y_mean) / model.y_std)


def _run_epoch(model, loss_fn, optimizer, X: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> float:
    model.train()
    order = torch.randperm(len(X), device=X.device)
    X, y = X[order], y[order]
    total = 0.0
    for start in range(0, len(X), batch_size):
        xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(xb, yb)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(xb)
    return total / max(len(X), 1)


def _valid_loss(model, loss_fn, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(X), batch_size * 16):
            xb, yb = X[start : start + batch_size * 16], y[start : start + batch_size * 16]
            total += float(loss_fn(xb, yb)) * len(xb)
    return total / len(X) if len(X) else math.nan


def train(  # noqa: PLR0917 (the trainer interface: train(X_train, y_train, X_valid, y_valid, task, params, device))
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    params: dict[str, Any],
    device: str,
) -> TabularMLP:
    """Train the MLP on `device`; returns it in eval mode with the best validation weights, on the CPU."""
    p = resolve_params(params)
    torch.manual_seed(int(p["seed"]))
    model = build_model(X_train, y_train, task, p["hidden"]).to(device)
    loss_fn = _loss_fn(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    Xt, yt = _tensor(X_train, device), _tensor(y_train, device)
    Xv, yv = _tensor(X_valid, device), _tensor(y_valid, device)
    best, best_state, stale = math.inf, copy.deepcopy(model.state_dict()), 0
    for epoch in range(int(p["epochs"])):
        train_loss = _run_epoch(model, loss_fn, optimizer, Xt, yt, batch_size=int(p["batch_size"]))
        valid_loss = _valid_loss(model, loss_fn, Xv, yv, int(p["batch_size"]))
        log.info("epoch %d: train loss %.5f, valid loss %.5f", epoch + 1, train_loss, valid_loss)
        if not valid_loss < best:  # also true for NaN: count it as no improvement
            stale += 1
            if p["patience"] and stale >= int(p["patience"]):
                log.info("early stop after epoch %d (best valid loss %.5f)", epoch + 1, best)
                break
            continue
        best, best_state, stale = valid_loss, copy.deepcopy(model.state_dict()), 0
    model.load_state_dict(best_state)
    return model.cpu().eval()


def _tensor(values: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32), device=device)


def predict(model: TabularMLP, X: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Probabilities or values, shape (n,), computed on the CPU."""
    model = model.cpu().eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            out.append(model(_tensor(X[start : start + batch_size], "cpu")).numpy())
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)
