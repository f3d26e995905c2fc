"""The demos' model family: an MLP on scikit-learn's handwritten digits, searched jointly over
architecture and training hyperparameters.

Nothing here depends on Ray Tune or Optuna (``ray`` is imported only inside :func:`ray_param_space`),
so both demos, their worker processes and the tests share exactly this code:

* :data:`SPACE` declares the joint search space once; :func:`suggest_config` turns it into Optuna
  define-by-run suggestions (conditional widths and momentum), :func:`ray_param_space` into a Ray
  Tune ``param_space`` (Ray has no conditionals: every parameter is sampled and the inactive ones
  are ignored), and :data:`SPACE_DOC` into text.
* :class:`TrialConfig` is one point of that space, typed.
* :class:`Trainer` trains a configuration one epoch at a time, returns the validation error after
  every epoch, and checkpoints all of its state (model, optimizer, learning-rate schedule, epoch
  counter, random generators) so that a paused and resumed trial continues exactly where it stopped.

The data are the 1797 8x8 digit images that ship with scikit-learn (no download), standardised
with training-set statistics and split once, stratified, into training and validation sets.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

if TYPE_CHECKING:
    import optuna

# ---------------------------------------------------------------------------------------------
# Search space
# ---------------------------------------------------------------------------------------------

MAX_LAYERS = 4
ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
NORMS = ("none", "batch", "layer")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
BATCH_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Condition:
    """A parameter is active only when ``parent`` took one of ``values``."""

    parent: str
    values: tuple[Any, ...]

    def holds(self, params: Mapping[str, Any]) -> bool:
        return params[self.parent] in self.values

    def __str__(self) -> str:
        return f"if {self.parent} in {{{', '.join(map(str, self.values))}}}"


@dataclass(frozen=True)
class IntParam:
    name: str
    low: int
    high: int  # inclusive
    log: bool = False
    condition: Condition | None = None

    def suggest(self, trial: optuna.Trial) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log)

    def ray_domain(self) -> Any:
        from ray import tune

        sample = tune.lograndint if self.log else tune.randint
        return sample(self.low, self.high + 1)  # Ray's upper bound is exclusive

    def __str__(self) -> str:
        return f"integer {self.low}..{self.high}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class FloatParam:
    name: str
    low: float
    high: float
    log: bool = False
    condition: Condition | None = None

    def suggest(self, trial: optuna.Trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def ray_domain(self) -> Any:
        from ray import tune

        return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)

    def __str__(self) -> str:
        return f"real {self.low:g}..{self.high:g}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class ChoiceParam:
    name: str
    choices: tuple[Any, ...]
    condition: Condition | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        return trial.suggest_categorical(self.name, self.choices)

    def ray_domain(self) -> Any:
        from ray import tune

        return tune.choice(list(self.choices))

    def __str__(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))


Param = Union[IntParam, FloatParam, ChoiceParam]

#: The joint space, parents before the parameters that depend on them.
SPACE: tuple[Param, ...] = (
    # architecture
    IntParam("n_layers", 1, MAX_LAYERS),
    IntParam("width_1", 16, 512, log=True),
    *(
        IntParam(f"width_{i}", 16, 512, log=True, condition=Condition("n_layers", tuple(range(i, MAX_LAYERS + 1))))
        for i in range(2, MAX_LAYERS + 1)
    ),
    ChoiceParam("activation", ACTIVATIONS),
    ChoiceParam("residual", (False, True)),
    ChoiceParam("norm", NORMS),
    FloatParam("dropout", 0.0, 0.5),
    # training
    ChoiceParam("optimizer", OPTIMIZERS),
    FloatParam("lr", 1e-4, 0.3, log=True),
    FloatParam("momentum", 0.5, 0.99, condition=Condition("optimizer", ("sgd",))),
    ChoiceParam("lr_schedule", LR_SCHEDULES),
    FloatParam("weight_decay", 1e-6, 1e-2, log=True),
    ChoiceParam("batch_size", BATCH_SIZES),
    FloatParam("label_smoothing", 0.0, 0.2),
)


def _describe_space(space: tuple[Param, ...]) -> str:
    width = max(len(p.name) for p in space)
    return "\n".join(
        f"  {p.name:<{width}}  {p}{'  ' + str(p.condition) if p.condition else ''}" for p in space
    )


SPACE_DOC = (
    f"{len(SPACE)} parameters (architecture, then training):\n"
    + _describe_space(SPACE)
    + "\nResource: epochs; metric: validation error (1 - accuracy) after every epoch."
)


def suggest_config(trial: optuna.Trial) -> TrialConfig:
    """Sample a configuration define-by-run: inactive parameters are never suggested."""
    params: dict[str, Any] = {}
    for param in SPACE:
        if param.condition is None or param.condition.holds(params):
            params[param.name] = param.suggest(trial)
    return TrialConfig.from_params(params)


def ray_param_space() -> dict[str, Any]:
    """The same space as a Ray Tune ``param_space``; requires ``ray[tune]``."""
    return {param.name: param.ray_domain() for param in SPACE}


@dataclass(frozen=True)
class TrialConfig:
    """One configuration of the joint space, with the inactive parameters dropped."""

    widths: tuple[int, ...]
    activation: str
    residual: bool
    norm: str
    dropout: float
    optimizer: str
    lr: float
    momentum: float  # used by SGD only
    lr_schedule: str
    weight_decay: float
    batch_size: int
    label_smoothing: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialConfig:
        """Build from flat parameters as Optuna or Ray Tune return them (extra keys are ignored)."""
        n_layers = int(params["n_layers"])
        return cls(
            widths=tuple(int(params[f"width_{i}"]) for i in range(1, n_layers + 1)),
            activation=str(params["activation"]),
            residual=bool(params["residual"]),
            norm=str(params["norm"]),
            dropout=float(params["dropout"]),
            optimizer=str(params["optimizer"]),
            lr=float(params["lr"]),
            momentum=float(params.get("momentum", 0.0)) if params["optimizer"] == "sgd" else 0.0,
            lr_schedule=str(params["lr_schedule"]),
            weight_decay=float(params["weight_decay"]),
            batch_size=int(params["batch_size"]),
            label_smoothing=float(params["label_smoothing"]),
        )

    def describe(self) -> str:
        """A compact one-line description for summaries."""
        arch = "x".join(map(str, self.widths))
        extras = [self.activation, self.norm + "-norm" if self.norm != "none" else "no-norm"]
        if self.residual:
            extras.append("residual")
        optimizer = f"{self.optimizer}(lr={self.lr:.2g}"
        optimizer += f", momentum={self.momentum:.2f}" if self.optimizer == "sgd" else ""
        optimizer += f", wd={self.weight_decay:.1e}) {self.lr_schedule} schedule"
        return (
            f"MLP {arch} [{', '.join(extras)}, dropout={self.dropout:.2f}]; {optimizer}, "
            f"batch={self.batch_size}, label_smoothing={self.label_smoothing:.2f}"
        )


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsSplit:
    """Standardised 8x8 digit images (64 features, 10 classes), fixed training/validation split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max()) + 1

    def to(self, device: torch.device) -> DigitsSplit:
        return DigitsSplit(*(t.to(device) for t in (self.x_train, self.y_train, self.x_val, self.y_val)))


@functools.lru_cache(maxsize=None)
def load_digits_split(validation_fraction: float = 1 / 3, seed: int = 0) -> DigitsSplit:
    """The digits data split once per process; the split does not depend on the trial seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=validation_fraction, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)  # validation statistics must not leak into training
    return DigitsSplit(
        torch.as_tensor(scaler.transform(x_train), dtype=torch.float32),
        torch.as_tensor(y_train, dtype=torch.long),
        torch.as_tensor(scaler.transform(x_val), dtype=torch.float32),
        torch.as_tensor(y_val, dtype=torch.long),
    )


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


class SeededDropout(nn.Module):
    """Dropout whose masks come from a private generator.

    ``nn.Dropout`` draws from torch's global generator, which Optuna's ``n_jobs`` threads share,
    so trials would not be reproducible; a private generator also goes into the checkpoint.
    """

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        return x * torch.empty_like(x).bernoulli_(keep, generator=self.generator) / keep


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[name]()


def _normalisation(name: str, width: int) -> nn.Module:
    if name == "none":
        return nn.Identity()
    return {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[name](width)


class HiddenBlock(nn.Module):
    """Linear -> normalisation -> activation -> dropout, optionally plus a skip connection."""

    def __init__(self, n_in: int, n_out: int, config: TrialConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, n_out),
            _normalisation(config.norm, n_out),
            _activation(config.activation),
            SeededDropout(config.dropout, generator),
        )
        self.skip: nn.Module | None = None
        if config.residual:
            # A bias-free projection where the width changes, the identity where it does not.
            self.skip = nn.Identity() if n_in == n_out else nn.Linear(n_in, n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.skip(x) if self.skip is not None else out


class MLP(nn.Module):
    """A stack of :class:`HiddenBlock` of the configured widths, then a linear classifier."""

    def __init__(self, n_features: int, n_classes: int, config: TrialConfig, generator: torch.Generator) -> None:
        super().__init__()
        widths = (n_features, *config.widths)
        self.blocks = nn.Sequential(*(HiddenBlock(a, b, config, generator) for a, b in zip(widths, widths[1:])))
        self.head = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


# Weight initialisation uses torch's global generator; seeding it must not interleave between threads.
_INIT_LOCK = threading.Lock()


def _build_optimizer(config: TrialConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True)
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay)


def _build_lr_schedule(config: TrialConfig, optimizer: torch.optim.Optimizer, max_epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedules laid out over the full budget, so a resumed trial keeps its schedule."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    if config.lr_schedule == "step":
        milestones = [max(1, round(max_epochs * 0.5)), max(1, round(max_epochs * 0.75))]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class Trainer:
    """Trains one configuration epoch by epoch; everything needed to resume is in :meth:`state_dict`.

    ``max_epochs`` is the largest resource a scheduler may grant; the cosine and step schedules are
    laid out over it. The same ``seed`` gives the same learning curve, whether or not training was
    interrupted and resumed from a checkpoint.
    """

    def __init__(
        self,
        config: TrialConfig,
        max_epochs: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
        data: DigitsSplit | None = None,
    ) -> None:
        self.config = config
        self.max_epochs = max_epochs
        self.device = torch.device(device)
        self.data = (data if data is not None else load_digits_split()).to(self.device)
        self.epoch = 0  # epochs completed
        self._shuffle_generator = torch.Generator().manual_seed(seed)
        self._dropout_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MLP(self.data.n_features, self.data.n_classes, config, self._dropout_generator)
        self.model = model.to(self.device)
        self.optimizer = _build_optimizer(config, self.model.parameters())
        self.lr_schedule = _build_lr_schedule(config, self.optimizer, max_epochs)
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def train_one_epoch(self) -> float:
        """One pass over the training set in shuffled minibatches; returns the validation error."""
        self.model.train()
        x, y = self.data.x_train, self.data.y_train
        order = torch.randperm(len(x), generator=self._shuffle_generator).to(self.device)
        # Drop the last partial batch: a batch of one breaks batch normalisation.
        n_batches = max(1, len(x) // self.config.batch_size)
        for batch in order[: n_batches * self.config.batch_size].view(n_batches, -1):
            self.optimizer.zero_grad(set_to_none=True)
            self.loss(self.model(x[batch]), y[batch]).backward()
            self.optimizer.step()
        self.lr_schedule.step()
        self.epoch += 1
        return self.validation_error()

    @torch.no_grad()
    def validation_error(self) -> float:
        """Fraction of misclassified validation images (a diverged network counts as wrong)."""
        self.model.eval()
        logits = self.model(self.data.x_val)
        correct = (logits.argmax(dim=1) == self.data.y_val) & torch.isfinite(logits).all(dim=1)
        return 1.0 - correct.float().mean().item()

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "shuffle_generator": self._shuffle_generator.get_state(),
            "dropout_generator": self._dropout_generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; tensors may be on any device (they are moved where needed)."""
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        # Generator states must be CPU byte tensors, even for a CUDA generator.
        self._shuffle_generator.set_state(state["shuffle_generator"].cpu())
        self._dropout_generator.set_state(state["dropout_generator"].cpu())

    @property
    def finished(self) -> bool:
        return self.epoch >= self.max_epochs
