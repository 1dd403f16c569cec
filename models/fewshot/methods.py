"""The two ways an embedding learns from episodes: prototypical networks and MAML.

Each method maps an episode to the query set's logits (ways columns) with gradients to the
meta-parameters; the meta-loss is their cross-entropy with the query labels.

- Prototypical networks (Snell et al., 2017): a class's prototype is the mean embedding of its
  support samples; a query's logits are minus its squared distances to the prototypes.
- MAML (Finn et al., 2017): the embedding with a linear head of ``ways`` units (zero at the
  start of every episode, so no class order is learnt) takes ``inner_steps`` gradient steps on
  the support set, through :func:`torch.func.functional_call`; the query loss of the adapted
  weights is differentiated through those steps (second order, ``create_graph``) or, with
  ``first_order``, with the inner gradients treated as constants.
"""

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from models.fewshot.config import FewShotConfig
from models.fewshot.episodes import Episode


class MetaModel(nn.Module):
    """The embedding network (any catalog family, its head of ``embedding_dim`` units) and,
    for MAML, a linear head of ``ways`` units."""

    def __init__(self, embedding: nn.Module, cfg: FewShotConfig) -> None:
        super().__init__()
        self.embedding = embedding
        self.cfg = cfg
        # MAML's head: (ways, embedding_dim) weights, adapted per episode from zero.
        self.head = nn.Linear(cfg.embedding_dim, cfg.ways) if cfg.method == "maml" else None
        if self.head is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)  # (B, embedding_dim)
        return h if self.head is None else self.head(h)  # type: ignore[no-any-return]


def episode_logits(model: MetaModel, ep: Episode, meta_train: bool) -> torch.Tensor:
    """The query set's logits (ways*queries, ways) after the method's use of the support set.

    Args:
        meta_train: whether the meta-gradient is needed (MAML then keeps the inner loop's
            graph, unless first order).
    """
    if model.cfg.method == "protonet":
        return _protonet(model, ep)
    return _maml(model, ep, meta_train)


def _protonet(model: MetaModel, ep: Episode) -> torch.Tensor:
    ways = model.cfg.ways
    z = model(torch.cat([ep.x_support, ep.x_query]))
    z_s, z_q = z[: len(ep.x_support)], z[len(ep.x_support) :]
    # Support labels are 0..ways-1 repeated shots times each, in order: a reshape groups them.
    prototypes = z_s.reshape(ways, -1, z_s.shape[-1]).mean(dim=1)  # (ways, D)
    return -torch.cdist(z_q, prototypes).pow(2)  # (Q, ways)


def _maml(model: MetaModel, ep: Episode, meta_train: bool) -> torch.Tensor:
    cfg = model.cfg
    params: dict[str, torch.Tensor] = {k: p for k, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    second_order = meta_train and not cfg.first_order
    with torch.enable_grad():  # adaptation needs gradients, in evaluation too
        fast: dict[str, torch.Tensor] = (
            params if meta_train else {k: p.detach().requires_grad_() for k, p in params.items()}
        )
        for _ in range(cfg.inner_steps):
            out = functional_call(model, [fast, buffers], (ep.x_support,))
            loss = F.cross_entropy(out, ep.y_support)
            names = list(fast)
            grads = torch.autograd.grad(
                loss, [fast[n] for n in names], create_graph=second_order, allow_unused=True
            )
            fast = {
                n: fast[n] if g is None else fast[n] - cfg.inner_lr * g
                for n, g in zip(names, grads, strict=True)
            }
            if not meta_train:
                fast = {n: v.detach().requires_grad_() for n, v in fast.items()}
    logits: torch.Tensor = functional_call(model, [fast, buffers], (ep.x_query,))
    return logits if meta_train else logits.detach()
