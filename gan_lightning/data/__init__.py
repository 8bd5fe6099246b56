"""Data modules: bundled digits, torchvision datasets and image folders."""

from gan_lightning.data.base import GANDataModule
from gan_lightning.data.digits import DigitsDataModule
from gan_lightning.data.vision import ImageFolderDataModule, TorchvisionDataModule

__all__ = ["DigitsDataModule", "GANDataModule", "ImageFolderDataModule", "TorchvisionDataModule"]
