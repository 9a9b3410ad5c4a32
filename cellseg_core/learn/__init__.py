"""Learned segmentation: models fitted on masks, behind the engine's ``Segmentation``.

Every model has ``fit(images, masks)``, ``segment(image) -> Segmentation`` (and
``predict_proba``, but the baselines), so everything that takes a preset's
:class:`~cellseg_core.Params` (``evaluate``, the command line's ``--model``, the
app's pages) can take a model instead (see :mod:`cellseg_core.methods`).

========== =========================================================================
features   :class:`FeatureSettings`, :func:`pixel_features`: smoothed intensity, edges
           and texture at several scales, on chosen colour channels, at a reduced scale
pixel      :class:`PixelClassifier`: gradient-boosted trees (or a random forest) on
           class-balanced sampled pixels, probabilities blurred and upsampled, argmax,
           the engine's clean-up; ``auto_context=True``: ilastik's second stage
baselines  :class:`KMeansBaseline`, :class:`MeanShiftBaseline`: unsupervised clusters
           matched to classes by Dice (what supervision adds)
clusters   the ECSE 415 study's k-means / mean-shift per image, its Dice matching
           (surplus clusters wrong), the K sweep (:func:`.clusters.cluster_sweep`)
forests    the study's supervised side: :class:`.forests.StudyForest` (random forests on
           raw gray pixels, 9x9 patches or multiscale features, one per chunk of
           the data, mode filter), misclassification rates, the ensemble's curve
unet       :class:`UNetModel`: the course's Lab 06 U-Net (optional PyTorch)
ensemble   :class:`ProbabilityEnsemble`: the mean of several models' probabilities
nuclei     :class:`NucleusModel`: the built-in nucleus U-Net (ONNX, onnxruntime, no
           PyTorch): interior/boundary classes, instances by marker watershed
objects    :class:`ObjectClassifier`, :func:`object_features`, :func:`class_counts`:
           cell classes from per-nucleus features (QuPath's object classifier)
modelfile  the model-file format (:data:`FORMAT_VERSION`, no-code payloads)
registry   :func:`load_model`: any model file, by kind
training   :func:`train_on_dataset`
base       :data:`DEFAULT_CLEANUP`, :data:`IGNORE`, :func:`uncertainty`
========== =========================================================================
"""
from .base import DEFAULT_CLEANUP, IGNORE, uncertainty
from .baselines import KMeansBaseline, MeanShiftBaseline
from .ensemble import ProbabilityEnsemble
from .features import CHANNELS, FeatureSettings, pixel_features
from .nuclei import BUILTIN_MODEL, NucleusModel
from .modelfile import FORMAT, FORMAT_VERSION, PICKLE_ENV, pickle_models_allowed
from .objects import ObjectClassifier, class_counts, object_features
from .pixel import ESTIMATORS, PixelClassifier
from .registry import load_model
from .training import train_on_dataset
from .unet import INSTALL_HINT, MissingDeepExtra, UNetModel, torch_available

__all__ = ["FORMAT", "FORMAT_VERSION", "PICKLE_ENV", "CHANNELS", "ESTIMATORS", "IGNORE",
           "DEFAULT_CLEANUP", "FeatureSettings", "pixel_features", "PixelClassifier",
           "KMeansBaseline", "MeanShiftBaseline", "UNetModel", "ProbabilityEnsemble",
           "MissingDeepExtra", "INSTALL_HINT", "torch_available", "train_on_dataset",
           "load_model", "pickle_models_allowed", "uncertainty", "NucleusModel",
           "BUILTIN_MODEL", "ObjectClassifier", "object_features", "class_counts"]
