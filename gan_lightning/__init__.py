"""gan-lightning: GAN variants for PyTorch Lightning 2.x, trained from one YAML file."""

import warnings

from gan_lightning import strategies  # registers the "gan_ddp" strategy names
from gan_lightning.errors import ConfigurationError

__version__ = "0.1.0"

# Lightning 2.6 warns at every step-based ModelCheckpoint save under manual optimization that
# the checkpoint holds the weights after the step's updates. For a GAN that is the intended
# content (checkpoint "step=k" = the state after k steps), so the warning only adds noise.
warnings.filterwarnings(
    "ignore", message="Using ModelCheckpoint with manual optimization", category=UserWarning
)

__all__ = ["ConfigurationError", "__version__", "strategies"]
