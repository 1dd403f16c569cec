"""What leaves a training: the input scaling fitted on the training split, the exported module
(weights and TorchScript), the metrics of the final weights, and a trainer's state as bytes."""

import io
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from models.data import DatasetInfo, Kind
from models.graph_data import feature_scaling
from models.layers import DropConnectLinear
from models.metrics import expected_calibration_error
from models.training.config import TrainConfig

State = dict[str, Any]


class Standardize(nn.Module):
    """Input scaling fitted on the training split, kept as buffers so exports carry it."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class Exported(nn.Module):
    """What a user downloads: raw inputs in, predictions out (logits for classification,
    targets in their original units for regression)."""

    def __init__(self, pre: Standardize, net: nn.Module, post: Standardize | None) -> None:
        super().__init__()
        self.pre, self.net = pre, net
        self.post = post or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.pre(x))
        if isinstance(self.post, Standardize):  # undo target scaling: y = out * std + mean
            out = out * self.post.scale + self.post.shift
        return out  # type: ignore[no-any-return]


def fit_scaler(x: np.ndarray, how: str, kind: Kind = "tabular") -> Standardize:
    """Scaling fitted on ``x`` per input element; graphs scale their node features only."""
    if kind == "graph":
        shift, scale = feature_scaling(x, how)
    elif how == "standardize":
        shift, scale = x.mean(axis=0), x.std(axis=0)
    elif how == "minmax":
        shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    else:
        shift, scale = np.zeros(x.shape[1:], np.float32), np.ones(x.shape[1:], np.float32)
    scale = np.where(scale == 0, 1.0, scale)  # constant features (digits' borders)
    return Standardize(
        torch.tensor(shift, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)
    )


def predict(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def save_state(state: State) -> bytes:
    """A trainer state as bytes (``torch.save``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state(raw: bytes) -> State:
    """A state written by :func:`save_state`; only tensors and plain values are accepted."""
    state: State = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return state


def latency_ms(net: nn.Module, x: torch.Tensor) -> float:
    """Inference time per sample of ``net`` on the batch ``x`` (ms): the best of three timed
    passes after one warm-up (first calls allocate). The weights do not change it: timed on a
    freshly built network it is the trained one's."""
    net.train(False)
    with torch.no_grad():
        predict(net, x, 4096)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            predict(net, x, 4096)
            if x.is_cuda:
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
    return 1000 * min(runs) / len(x)


def final_metrics(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    info: DatasetInfo,
    loss: str,
    latency: float | None = None,
) -> dict[str, float]:
    """The metrics of the final weights that no epoch measures (``latency``: timed already,
    before training)."""
    out = {"param_count": float(sum(p.numel() for p in net.parameters() if p.requires_grad))}
    out["latency_ms"] = latency_ms(net, x) if latency is None else latency
    if info.task != "regression":
        out.update(_mc_dropout(net, x, y, cfg.mc_samples, loss))
    return out


def _mc_dropout(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int, loss: str
) -> dict[str, float]:
    """Predictive NLL and ECE of the MC-dropout ensemble: dropout stays on at test time while
    batch norm uses its running statistics."""
    net.train(False)
    for m in net.modules():
        if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d | DropConnectLinear):
            m.train()
    with torch.no_grad():
        probs = torch.zeros(len(x), 2 if loss == "bce" else int(y.max()) + 1, device=x.device)
        for _ in range(samples):
            out = predict(net, x, 4096).float()
            if loss == "bce":
                p1 = torch.sigmoid(out.squeeze(1))
                p = torch.stack([1 - p1, p1], dim=1)
            else:
                p = torch.softmax(out, dim=1)
            probs[:, : p.shape[1]] += p
        probs /= samples
    net.train(False)
    nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp(min=1e-12)).mean())
    return {"mc_nll": nll, "mc_ece": expected_calibration_error(probs, y)}


def weights_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated upstream, still what users load
        warnings.simplefilter("ignore")
        # No trace check: attention's fused fast path records a different (equivalent) graph
        # on each call; tests compare the exported outputs with the eager model instead.
        with torch.no_grad():
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                model.cpu().train(False), example.cpu(), check_trace=False
            )
        torch.jit.save(traced, buf)
    return buf.getvalue()
