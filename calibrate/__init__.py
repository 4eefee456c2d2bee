"""Unlabeled image folders: discovery, decoding, preprocessing, sampling, calibration readers."""

from .errors import CalibrationError
from .folder import IMAGE_EXTENSIONS, ImageList, find_images, load_rgb, scan_folder
from .labels import read_labels_csv
from .loader import ImageDataset, LabelledFolder, default_workers, make_loader, preload, preload_fitting, preload_labelled
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PRESETS, Preprocess, parse_input_size, resolve_preprocess
from .split import CalibrationSplit, split_images

__all__ = [
    "CalibrationError",
    "CalibrationSplit",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "ImageList",
    "LabelledFolder",
    "PRESETS",
    "Preprocess",
    "default_workers",
    "find_images",
    "load_rgb",
    "make_loader",
    "parse_input_size",
    "preload",
    "preload_fitting",
    "preload_labelled",
    "read_labels_csv",
    "resolve_preprocess",
    "scan_folder",
    "split_images",
]
