"""jaxopt_edu: optimizers for JAX as composable `(init, update)` gradient transformations.

Every optimizer reads like its equations, keeps its hyperparameters in its state
(`jaxopt_edu.tree.get` / `jaxopt_edu.tree.set`), and uses optax's names, arguments
and defaults, so `import jaxopt_edu as optax` works in a training loop.
"""

from jaxopt_edu import flat, schedules, testing, tree
from jaxopt_edu.base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    apply_updates,
    apply_updates_stochastic,
    identity,
    incremental_update,
    periodic_update,
    set_to_zero,
    stateless,
    with_extra_args_support,
)
from jaxopt_edu.combine import chain, named_chain
from jaxopt_edu.flat import FlattenState, flatten
from jaxopt_edu.hyper import HyperParams
from jaxopt_edu.optimizers.adafactor import adafactor
from jaxopt_edu.optimizers.adam import adam, adamax, adamaxw, adamw, amsgrad, nadam, nadamw
from jaxopt_edu.optimizers.adaptive import adadelta, adagrad, rmsprop
from jaxopt_edu.optimizers.lion import lion
from jaxopt_edu.optimizers.muon import muon
from jaxopt_edu.optimizers.sgd import sgd
from jaxopt_edu.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from jaxopt_edu.transforms.adam import (
    ScaleByAdamState,
    ScaleByAmsgradState,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
)
from jaxopt_edu.transforms.clipping import ClipState, clip, clip_by_global_norm
from jaxopt_edu.transforms.factored import (
    BlockRmsState,
    FactoredState,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from jaxopt_edu.transforms.lion import ScaleByLionState, scale_by_lion
from jaxopt_edu.transforms.momentum import EmaState, TraceState, ema, trace
from jaxopt_edu.transforms.muon import (
    ScaleByMuonState,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
)
from jaxopt_edu.transforms.regularization import (
    RegularizationState,
    add_decayed_weights,
    add_l1_subgradient,
    proximal_l1,
)
from jaxopt_edu.transforms.rms import (
    ScaleByAdaDeltaState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByRStdDevState,
    scale_by_adadelta,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from jaxopt_edu.transforms.scaling import (
    ScaleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    scale_by_sign,
)
from jaxopt_edu.transforms.trust_ratio import ScaleByTrustRatioState, scale_by_trust_ratio

__version__ = "0.1.0"

__all__ = [
    # core
    "EmptyState",
    "FlattenState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "HyperParams",
    "OptState",
    "Params",
    "ScalarOrSchedule",
    "Schedule",
    "Updates",
    "apply_updates",
    "apply_updates_stochastic",
    "chain",
    "flatten",
    "identity",
    "incremental_update",
    "named_chain",
    "periodic_update",
    "set_to_zero",
    "stateless",
    "with_extra_args_support",
    # modules
    "flat",
    "schedules",
    "testing",
    "tree",
    # transforms
    "BlockRmsState",
    "ClipState",
    "FactoredState",
    "ScaleByLionState",
    "ScaleByMuonState",
    "clip_by_block_rms",
    "scale_by_factored_rms",
    "orthogonalize_via_newton_schulz",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_param_block_rms",
    "EmaState",
    "RegularizationState",
    "ScaleByAdaDeltaState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "ScaleByTrustRatioState",
    "ScaleState",
    "TraceState",
    "add_decayed_weights",
    "add_l1_subgradient",
    "clip",
    "clip_by_global_norm",
    "ema",
    "proximal_l1",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_sign",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "trace",
    # optimizers
    "adadelta",
    "adafactor",
    "lion",
    "muon",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "amsgrad",
    "nadam",
    "nadamw",
    "rmsprop",
    "sgd",
    # schedules
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
