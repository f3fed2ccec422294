"""Evaluation: zero-shot classification, image-text retrieval, grounding, linear probe and
embedding geometry, chosen by name.

``clipforge eval NAME`` runs one through :func:`run_evaluation` (its flags come from the
registry entry); the trainer calls :func:`evaluate` for both at once on its validation source,
and the entries of a config's ``evals:`` section through :func:`run_scheduled`. A new evaluator
is one file plus one line in :data:`EVALUATORS` (``docs/extending.md``).
"""

from __future__ import annotations

from ..registry import Registry
from . import geometry as geometry_task
from . import grounding as grounding_task
from . import linear_probe as linear_probe_task
from . import retrieval as retrieval_task
from . import robustness as robustness_task
from . import zeroshot as zeroshot_task
from .embedding import EncodeConfig, EncodedImages, encode_images, encode_texts
from .geometry import GeometryConfig, geometry
from .linear_probe import LinearProbeConfig, linear_probe
from .retrieval import RetrievalConfig, retrieval
from .runner import Evaluator, open_classification_data, open_data, run_evaluation, write_json
from .scheduled import EvalSpec, run_scheduled
from .suite import evaluate
from .zeroshot import ZeroShotConfig, build_classifier, zeroshot_classification

EVALUATORS: Registry[Evaluator] = Registry(
    "evaluator",
    {
        "zeroshot": Evaluator(
            zeroshot_classification,
            ZeroShotConfig,
            open_classification_data,
            "zero-shot classification with prompt ensembles",
            "image folder (one sub-folder per class) or a labelled data spec, e.g. "
            "builtin:emoji?split=val",
            zeroshot_task.add_arguments,
            zeroshot_task.config_from_args,
            task_name=zeroshot_task.TASK,
        ),
        "retrieval": Evaluator(
            retrieval,
            RetrievalConfig,
            open_data,
            "image-to-text and text-to-image recall@k",
            add_arguments=retrieval_task.add_arguments,
            config_from_args=retrieval_task.config_from_args,
            task_name=retrieval_task.TASK,
        ),
        "grounding": Evaluator(
            grounding_task.grounding,
            grounding_task.GroundingConfig,
            grounding_task.open_grounding_data,
            "phrase grounding from patch-text maps: pointing game and box IoU",
            "data with region boxes and captions, e.g. builtin:emoji-scenes?split=val",
            grounding_task.add_arguments,
            grounding_task.config_from_args,
        ),
        "linear-probe": Evaluator(
            linear_probe,
            LinearProbeConfig,
            linear_probe_task.open_labelled,
            "logistic-regression probe on cached image features, L2 swept on validation data",
            "labelled test data: an image folder (one sub-folder per class) or a data spec, "
            "e.g. builtin:emoji?split=val",
            linear_probe_task.add_arguments,
            linear_probe_task.config_from_args,
            data_flag="--test",
        ),
        "geometry": Evaluator(
            geometry,
            GeometryConfig,
            open_data,
            "modality gap, alignment, uniformity and effective rank of the embeddings",
            "image-caption data spec, e.g. builtin:emoji?split=val",
            geometry_task.add_arguments,
            geometry_task.config_from_args,
        ),
        "robustness": Evaluator(
            robustness_task.robustness,
            robustness_task.RobustnessConfig,
            robustness_task.open_robustness_data,
            "adversarial robustness (pgd, uap, sga) and view invariance: clean vs adversarial",
            "labelled and/or captioned data, e.g. builtin:emoji?split=val",
            robustness_task.add_arguments,
            robustness_task.config_from_args,
        ),
    },
)

__all__ = [
    "EVALUATORS",
    "EncodeConfig",
    "EncodedImages",
    "EvalSpec",
    "Evaluator",
    "GeometryConfig",
    "LinearProbeConfig",
    "RetrievalConfig",
    "ZeroShotConfig",
    "build_classifier",
    "encode_images",
    "encode_texts",
    "evaluate",
    "geometry",
    "linear_probe",
    "retrieval",
    "run_evaluation",
    "run_scheduled",
    "write_json",
    "zeroshot_classification",
]
