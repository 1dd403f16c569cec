"""What a pre-flight check reports: measurements per section and findings in plain sentences."""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "ok"]


@dataclass(frozen=True)
class Finding:
    """One conclusion: ``code`` names it for scripts, ``message`` says what was seen and what
    to change, ``field`` is the spec setting to change (``""``: none in particular)."""

    code: str
    severity: Severity
    message: str
    field: str = ""


@dataclass
class PreflightReport:
    """A pre-flight check of one point of the search space (``params``)."""

    params: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    initial_loss: dict[str, float] = field(default_factory=dict)
    step: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    overfit: dict[str, Any] = field(default_factory=dict)
    short_fit: dict[str, Any] = field(default_factory=dict)
    lr_range: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def codes(self) -> set[str]:
        """The codes of every finding that is not ``ok``."""
        return {f.code for f in self.findings if f.severity != "ok"}

    @property
    def passed(self) -> bool:
        """No error found (warnings are advice)."""
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (non-finite numbers become strings: JSON has none)."""
        out: dict[str, Any] = _finite({**asdict(self), "passed": self.passed})
        return out


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
