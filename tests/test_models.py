"""--arch resolution: every accepted form, kwargs parsing, and the errors users will hit."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest
import torch.nn as nn

from compress.archs.cifar_resnet import CifarResNet
from compress.archs.digits import DigitNet
from compress.errors import ArchError
from compress.models.arch import ALIASES, canonical_arch, default_preset_for, parse_arch_kwargs, resolve_arch


def test_parse_arch_kwargs_types():
    got = parse_arch_kwargs("num_classes=100, width=0.5,pretrained=false,aux=True,norm=None,name=wide,q='7'")
    assert got == {"num_classes": 100, "width": 0.5, "pretrained": False, "aux": True, "norm": None,
                   "name": "wide", "q": "7"}
    assert type(got["num_classes"]) is int and type(got["width"]) is float
    assert parse_arch_kwargs(None) == {} and parse_arch_kwargs("  ") == {}


@pytest.mark.parametrize("bad", ["num_classes", "=3", "1x=2"])
def test_parse_arch_kwargs_rejects(bad):
    with pytest.raises(ArchError, match=r"is not key=value") as err:
        parse_arch_kwargs(bad)
    assert err.value.hint == "write them like num_classes=100,width=0.5"


def test_aliases():
    assert set(ALIASES) == {"cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56",
                            "cifar_resnet110", "digits", "segdigits", "detdigits"}
    assert canonical_arch("cifar_resnet56") == "compress.archs.cifar_resnet:resnet56"
    model = resolve_arch("cifar_resnet20", {"num_classes": 100})
    assert isinstance(model, CifarResNet) and model.linear.out_features == 100
    assert len(model.layer1) == 3
    assert isinstance(resolve_arch("digits", {}), DigitNet)


def test_torchvision():
    model = resolve_arch("torchvision:resnet18", {"num_classes": 7})
    assert model.fc.out_features == 7  # random init: weights=None, nothing downloaded


def test_module_factory_and_class():
    assert isinstance(resolve_arch("compress.archs.digits:digitnet", {"num_classes": 3}), DigitNet)
    assert isinstance(resolve_arch("compress.archs.digits:DigitNet", {}), DigitNet)  # a class is a factory too


def test_file_factory(tmp_path):
    src = tmp_path / "my_net.py"
    src.write_text(textwrap.dedent("""
        import torch.nn as nn
        PREPROCESS = "cifar"
        def tiny(width=4):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())
        def broken():
            raise ValueError("width must be even")
        def not_a_model():
            return 42
    """))
    model = resolve_arch(f"{src}:tiny", {"width": 6})
    assert isinstance(model, nn.Sequential) and model[0].out_channels == 6
    assert default_preset_for(f"{src}:tiny") == "cifar"
    with pytest.raises(ArchError, match=r"raised ValueError: width must be even") as err:
        resolve_arch(f"{src}:broken", {})
    assert err.value.hint == "check --arch-kwargs"
    with pytest.raises(ArchError, match=r"returned int, not a torch.nn.Module"):
        resolve_arch(f"{src}:not_a_model", {})
    with pytest.raises(ArchError, match=r"has no factory 'tinny'; did you mean tiny\?"):
        resolve_arch(f"{src}:tinny", {})


def test_file_that_fails_to_import(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("import torch\nraise RuntimeError('boom')\n")
    with pytest.raises(ArchError, match=r"importing .*bad.py raised RuntimeError: boom"):
        resolve_arch(f"{src}:net", {})


def test_unexpected_kwarg_is_reported():
    with pytest.raises(ArchError, match=r"compress.archs.digits:digitnet\(widht=2\) raised TypeError"):
        resolve_arch("digits", {"widht": 2})


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchvision:resnet181", "torchvision has no model 'resnet181'; did you mean resnet18"),
        ("compress.archs.cifar_resnt:resnet20", "no module named 'compress.archs.cifar_resnt'; did you mean compress.archs.cifar_resnet"),
        ("compress.archs.cifar_resnet:resnet21", "has no factory 'resnet21'; did you mean"),
        ("cifar_resnet2", "not a known alias nor of the form module:factory; did you mean cifar_resnet32, cifar_resnet20"),
        ("missing_dir/net.py:net", "file missing_dir/net.py does not exist"),
    ],
)
def test_resolution_errors(spec, message):
    with pytest.raises(ArchError) as err:
        resolve_arch(spec, {})
    assert message in str(err.value)
    assert err.value.exit_code == 3


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_timm_missing_says_how_to_install():
    with pytest.raises(ArchError) as err:
        resolve_arch("timm:resnet18", {})
    assert "needs the timm package" in err.value.message
    assert err.value.hint == "pip install timm"


def test_default_preset_for():
    assert default_preset_for("cifar_resnet20") == "cifar"
    assert default_preset_for("digits") == "cifar"
    assert default_preset_for("torchvision:resnet18") == "imagenet"
    assert default_preset_for("timm:anything") == "imagenet"
    assert default_preset_for("torch.nn:Linear") is None  # module without PREPROCESS
    assert default_preset_for(None) is None
