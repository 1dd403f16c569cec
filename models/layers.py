"""Name registries for the layers a spec may name (in the style of timm's ``get_act_layer``).

A study names an activation as a string; these tables turn the string into a module class.
Unknown names raise ``ValueError`` listing the valid ones, so the API can reject a spec early.
"""

from collections.abc import Callable

from torch import nn

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # swish(x) = x * sigmoid(x) is SiLU
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


def list_activations() -> list[str]:
    """Names accepted by :func:`create_act_layer`."""
    return sorted(_ACTIVATIONS)


def create_act_layer(name: str) -> nn.Module:
    """Build the activation module registered under ``name``.

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names.
    """
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid: {', '.join(list_activations())}"
        ) from None
