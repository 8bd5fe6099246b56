"""Data modules: bundled and stacked digits, torchvision, image folders, 2-D Gaussian mixtures."""

from gan_lightning.data.base import GANDataModule
from gan_lightning.data.digits import DigitsDataModule
from gan_lightning.data.mixtures import GaussianMixtureDataModule
from gan_lightning.data.stacked import StackedDigitsDataModule
from gan_lightning.data.vision import ImageFolderDataModule, TorchvisionDataModule

__all__ = [
    "DigitsDataModule",
    "GANDataModule",
    "GaussianMixtureDataModule",
    "ImageFolderDataModule",
    "StackedDigitsDataModule",
    "TorchvisionDataModule",
]
