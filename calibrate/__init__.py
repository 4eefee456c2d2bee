"""Unlabeled image folders: discovery, decoding, preprocessing, sampling, calibration readers."""
