"""Classic models (``lamina.zoo.DigitsMLP``, ...) and the recipes that reproduce the
notes' experiments (``lamina train NAME``; ``lamina recipes`` lists them)."""
import importlib

from .anbn import NextSymbolRNN, StackRNN
from .digits_mlp import DigitsMLP
from .fcn import FCN
from .fashion_mlp import MLP
from .inception import InceptionNet
from .lenet import LeNet5
from .memnet import MemN2N
from .multitask import TwoHeadCNN
from .perceptron import Perceptron
from .recipe import Recipe, Setup
from .resnet import PlainNet, ResNetSmall
from .seqclass import SeqClassifier
from .unet import UNet
from .vgg import VGGSmall

RECIPES = {
    "perceptron": "lamina.zoo.perceptron",
    "polyfit": "lamina.zoo.polyfit",
    "digits-logreg": "lamina.zoo.digits_logreg",
    "digits-mlp": "lamina.zoo.digits_mlp",
    "fashion-mlp": "lamina.zoo.fashion_mlp",
    "lenet5": "lamina.zoo.lenet",
    "multitask": "lamina.zoo.multitask",
    "transfer": "lamina.zoo.transfer",
    "inspect": "lamina.zoo.inspect_cnn",
    "vgg-small": "lamina.zoo.vgg",
    "resnet": "lamina.zoo.resnet",
    "inception": "lamina.zoo.inception",
    "fcn": "lamina.zoo.fcn",
    "unet": "lamina.zoo.unet",
    "seqclass": "lamina.zoo.seqclass",
    "anbn": "lamina.zoo.anbn",
    "memnet": "lamina.zoo.memnet",
}


def get_recipe(name):
    """The registered Recipe called ``name`` (KeyError listing the known ones)."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of: " + ", ".join(RECIPES))
    return importlib.import_module(RECIPES[name]).RECIPE


__all__ = ["DigitsMLP", "MLP", "LeNet5", "Perceptron", "TwoHeadCNN", "VGGSmall", "ResNetSmall",
           "PlainNet", "InceptionNet", "FCN", "UNet", "SeqClassifier", "NextSymbolRNN", "StackRNN",
           "MemN2N", "Recipe", "Setup", "RECIPES", "get_recipe"]
