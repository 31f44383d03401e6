"""dcgan: a deep convolutional GAN on Fashion-MNIST (Radford, Metz & Chintala 2015).

The DCGAN recipe: only convolutional layers — strided convolutions in the
discriminator instead of pooling, transposed ("fractionally strided") convolutions in
the generator instead of upsampling — with batch normalization, ReLU in G and leaky
ReLU (slope 0.2) in D, a tanh output, weights drawn from N(0, 0.02) and Adam with
lr 2e-4, betas (0.5, 0.999). At 28×28 the generator goes 1 → 7 → 14 → 28:

    z (N, latent, 1, 1) -ConvT 7×7-> (N, 2c, 7, 7) -BN-ReLU-ConvT 4×4 s2-> (N, c, 14, 14)
      -BN-ReLU-ConvT 4×4 s2-> (N, 1, 28, 28) -tanh

and the discriminator mirrors it: conv 4×4 s2 (28 → 14), leaky ReLU, conv 4×4 s2
(14 → 7), BN, leaky ReLU, conv 7×7 to one logit (no batch norm on D's input layer, as
in the paper). The training loop, the figures (samples of a fixed latent batch every
``sample_every`` epochs, latent interpolation) and the evaluation (a LeNet-5's
confidence and class-histogram entropy on generated and real images) are those of
:mod:`lamina.zoo.gan`.

The convolutions run in NumPy, so the default trains on a ``subset`` of the training
images with ``channels`` = 32 (c above) to keep the recipe to a few minutes on a CPU.
"""
from lamina import nn

from .gan import GANRecipe


def dcgan_init(module, std=0.02):
    """DCGAN initialization in place: convolution weights ~ N(0, std), biases 0; batch
    norm weights ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


class DCGenerator(nn.Module):
    """(N, latent_dim) latents -> (N, 1, 28, 28) images in [-1, 1] by three transposed
    convolutions, 1×1 → 7×7 → 14×14 → 28×28 with 2c and c channels between (c =
    ``channels``), batch norm and ReLU after the first two, tanh at the end."""

    def __init__(self, latent_dim=64, channels=32):
        super().__init__()
        self.latent_dim = latent_dim
        c = channels
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * c, 7, bias=False),                 # 7×7
            nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False),     # 14×14
            nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),                     # 28×28
            nn.Tanh())
        dcgan_init(self)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"DCGenerator: expected latents (N, {self.latent_dim}), got "
                             f"shape {tuple(z.shape)}")
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCDiscriminator(nn.Module):
    """(N, 1, 28, 28) images in [-1, 1] -> (N,) logits of "real": strided convolutions
    28 → 14 → 7 with c and 2c channels (leaky ReLU; batch norm on the second), then a
    7×7 convolution to one value."""

    def __init__(self, channels=32, slope=0.2):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(slope),         # 14×14
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),              # 7×7
            nn.BatchNorm2d(2 * c), nn.LeakyReLU(slope),
            nn.Conv2d(2 * c, 1, 7))                                               # 1×1
        dcgan_init(self)

    def forward(self, x):
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"DCDiscriminator: expected images (N, 1, 28, 28), got shape "
                             f"{tuple(x.shape)}")
        return self.net(x).reshape(-1)


class DCGANRecipe(GANRecipe):
    name = "dcgan"
    summary = ("DCGAN (strided convs, transposed convs, batch norm) on Fashion-MNIST: samples, "
               "interpolation, classifier confidence and class-histogram entropy")
    flatten = False
    defaults = dict(epochs=6, batch_size=64, lr=2e-4, beta1=0.5, latent_dim=64, channels=32,
                    subset=20000, seed=0, sample_every=2, n_fixed=64, n_eval=1000,
                    classifier_epochs=4, classifier_subset=0)
    quick = dict(epochs=3, subset=2000, batch_size=16, channels=16, sample_every=1, n_eval=500,
                 classifier_epochs=2, classifier_subset=5000)

    def build(self, cfg):
        return (DCGenerator(cfg["latent_dim"], cfg["channels"]),
                DCDiscriminator(cfg["channels"]))


RECIPE = DCGANRecipe()
