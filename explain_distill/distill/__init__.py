"""``distill()``: a trained teacher and a data set in, explainable surrogates with their fidelity out.

Read as its stages, one module each:

- :mod:`.plan`: check every argument and decide what is fitted (:class:`~.plan.Plan`);
- :mod:`.transfer_set`: the validation rows held out, the transfer set labelled at temperature T,
  the feature columns;
- :mod:`.fitting`: every surrogate fitted (the neural student beside the others);
- :mod:`.ladders`: every readable family at a ladder of sizes, and the smallest faithful one;
- :mod:`.result`: :class:`Distillation` (scores, display, save) and :func:`load`;
- :mod:`.pipeline`: :func:`distill`, the stages in order.
"""

from .pipeline import distill
from .plan import (
    DEFAULT_FEATURE_SURROGATES,
    DEFAULT_QUERIES,
    DEFAULT_SURROGATES,
    EPOCHS_WITH_QUERIES,
    FEATURE_PARAMS,
    VALIDATION_FRACTION,
    _feature_plan,
    readable_families,
    resolve_surrogates,
    split_name,
)
from .result import Distillation, load, model_size

__all__ = [
    "distill",
    "Distillation",
    "load",
    "resolve_surrogates",
    "readable_families",
    "DEFAULT_SURROGATES",
    "DEFAULT_FEATURE_SURROGATES",
    "DEFAULT_QUERIES",
    "VALIDATION_FRACTION",
]
