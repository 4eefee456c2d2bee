"""Deployment: ONNX export and verification, INT8, TensorRT, measurement and reports."""
