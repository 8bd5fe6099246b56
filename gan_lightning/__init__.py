"""gan-lightning: GAN variants for PyTorch Lightning 2.x, trained from one YAML file."""

from gan_lightning import strategies  # registers the "gan_ddp" strategy names
from gan_lightning.errors import ConfigurationError

__version__ = "0.1.0"

__all__ = ["ConfigurationError", "__version__", "strategies"]
