"""Classic models and the recipes that reproduce the notes' experiments."""
from .digits_mlp import DigitsMLP

RECIPES = {
    "digits-mlp": "lamina.zoo.digits_mlp",
}

__all__ = ["DigitsMLP", "RECIPES"]
