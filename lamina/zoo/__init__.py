"""Classic models (``lamina.zoo.DigitsMLP``, ...) and the recipes that reproduce the
notes' experiments (``lamina train NAME``; ``lamina recipes`` lists them)."""
import importlib

from .anbn import NextSymbolRNN, StackRNN
from .autoencoders import AutoEncoder, SigmoidAutoEncoder, TiedAutoEncoder
from .char_rnn import CharRNN
from .char_transformer import CharTransformer
from .ctc_digits import CTCReader
from .dcgan import DCDiscriminator, DCGenerator
from .digits_mlp import DigitsMLP
from .fcn import FCN
from .fashion_mlp import MLP
from .gan import Discriminator, Generator
from .inception import InceptionNet
from .learn_to_execute import ProgramExecutor
from .lenet import LeNet5
from .memnet import MemN2N
from .multitask import TwoHeadCNN
from .perceptron import Perceptron
from .pixelcnn import MaskedConv2d, PixelCNN
from .rbm import RBM
from .recipe import Recipe, Setup
from .resnet import PlainNet, ResNetSmall
from .seq2seq_attention import AttentionSeq2Seq
from .seqclass import SeqClassifier
from .stacked_ae import StackedAutoEncoder
from .transformer_seq2seq import TransformerSeq2Seq
from .unet import UNet
from .vae import VAE
from .wavenet import WaveNet
from .vgg import VGGSmall
from .word2vec import SkipGram

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
    "seq2seq-attention": "lamina.zoo.seq2seq_attention",
    "transformer-seq2seq": "lamina.zoo.transformer_seq2seq",
    "char-rnn": "lamina.zoo.char_rnn",
    "char-transformer": "lamina.zoo.char_transformer",
    "word2vec": "lamina.zoo.word2vec",
    "learn-to-execute": "lamina.zoo.learn_to_execute",
    "ctc": "lamina.zoo.ctc_digits",
    "pca-vs-ae": "lamina.zoo.pca_vs_ae",
    "tied-ae": "lamina.zoo.tied_ae",
    "denoising-ae": "lamina.zoo.denoising_ae",
    "contractive-ae": "lamina.zoo.contractive_ae",
    "stacked-ae-pretrain": "lamina.zoo.stacked_ae",
    "rbm": "lamina.zoo.rbm",
    "vae": "lamina.zoo.vae",
    "pixelcnn": "lamina.zoo.pixelcnn",
    "wavenet": "lamina.zoo.wavenet",
    "gan": "lamina.zoo.gan",
    "dcgan": "lamina.zoo.dcgan",
}


def get_recipe(name):
    """The registered Recipe called ``name`` (KeyError listing the known ones)."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of: " + ", ".join(RECIPES))
    return importlib.import_module(RECIPES[name]).RECIPE


__all__ = ["DigitsMLP", "MLP", "LeNet5", "Perceptron", "TwoHeadCNN", "VGGSmall", "ResNetSmall",
           "PlainNet", "InceptionNet", "FCN", "UNet", "SeqClassifier", "NextSymbolRNN", "StackRNN",
           "MemN2N", "AttentionSeq2Seq", "TransformerSeq2Seq", "CharRNN", "CharTransformer",
           "SkipGram", "ProgramExecutor", "CTCReader", "AutoEncoder",
           "SigmoidAutoEncoder", "TiedAutoEncoder", "StackedAutoEncoder", "RBM", "VAE", "MaskedConv2d",
           "PixelCNN", "WaveNet", "Generator", "Discriminator", "DCGenerator",
           "DCDiscriminator", "Recipe", "Setup", "RECIPES", "get_recipe"]
